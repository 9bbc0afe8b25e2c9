"""Settings: environment, the optional file, and refusals that name the variable."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import click
import pytest
from pydantic import ValidationError

from berkas.cli.main import main
from berkas.client import profiles
from berkas.config import load_settings
from berkas.config_names import CONFIG_FILE_VARIABLE, ENVIRONMENT_ONLY
from berkas.core.egress import parse_networks
from berkas.storage_url import s3_bucket_and_prefix


def test_the_config_file_fills_in_and_the_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "berkas.env"
    config.write_text("BERKAS_NODE_ID=42\nBERKAS_ENV=production\nBERKAS_PORT=9000\n")
    monkeypatch.setenv("BERKAS_CONFIG_FILE", str(config))
    monkeypatch.setenv("BERKAS_ENV", "staging")

    settings = load_settings(port=9100)

    assert settings.node_id == 42  # from the file
    assert settings.env == "staging"  # the environment beats the file
    assert settings.port == 9100  # a CLI flag beats both


def test_a_missing_config_file_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BERKAS_CONFIG_FILE", str(tmp_path / "nope.env"))
    with pytest.raises(ValueError, match="BERKAS_CONFIG_FILE"):
        load_settings()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("public_url", "http://"),
        ("public_url", "ftp://example.com"),
        ("link_secret", "short"),
        ("node_id", 10_000),
        ("fetch_allow_networks", "10.0.0.1/8"),
        ("fetch_allow_networks", "not-a-network"),
        ("fetch_allow_networks", "0.0.0.0/0"),
        ("fetch_allow_networks", "::/0"),
        ("storage_url", "gs://bucket/prefix"),
        ("storage_url", "s3://Upper_Case/prefix"),
        ("storage_url", "s3://ab/prefix"),
        ("storage_url", "s3://bucket/../prefix"),
        ("storage_url", "s3://bucket/pre fix"),
        ("storage_url", "s3://bucket/prefix?region=x"),
        ("s3_endpoint_url", "ftp://rgw.example.com"),
        ("s3_endpoint_url", "http://key:secret@rgw.example.com"),
        ("s3_addressing_style", "sideways"),
        ("rsa_key_bits", 1024),
        ("rate_limit_per_second", -1),
        ("rate_limit_per_second", "inf"),
        ("upload_rate_burst", -1),
        ("max_concurrent_uploads", -1),
        ("fetch_refusals_per_hour", "nan"),
        # A zero deadline or cap would refuse every client (api/connections.py).
        ("header_timeout_seconds", 0),
        ("body_idle_timeout_seconds", -1),
        ("keepalive_timeout_seconds", 0),
        ("max_connections", 0),
    ],
)
def test_insecure_or_malformed_values_are_refused_at_start(field: str, value: object) -> None:
    with pytest.raises(ValidationError):
        load_settings(**{field: value})


def test_an_s3_storage_url_is_accepted_with_its_settings() -> None:
    settings = load_settings(
        storage_url="s3://berkas-docs/prod/eu",
        s3_endpoint_url="http://127.0.0.1:7480",
        s3_addressing_style="path",
    )

    assert s3_bucket_and_prefix(settings.resolved_storage_url) == ("berkas-docs", "prod/eu")
    assert s3_bucket_and_prefix("s3://berkas-docs") == ("berkas-docs", "")
    assert settings.s3_region == "us-east-1"


def test_a_malformed_s3_url_names_the_variable_and_the_accepted_form() -> None:
    with pytest.raises(ValueError, match=r"BERKAS_STORAGE_URL .*s3://bucket/prefix"):
        s3_bucket_and_prefix("s3://Bad_Bucket/x")


def test_log_level_is_case_insensitive() -> None:
    assert load_settings(log_level="INFO").log_level == "info"


def test_allow_lists_parse_from_comma_separated_text() -> None:
    settings = load_settings(
        fetch_allow_networks="127.0.0.0/8, ::1/128", fetch_allow_ports="80,8443"
    )
    assert settings.fetch_allow_networks == (
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    )
    assert settings.fetch_allow_ports == (80, 8443)


@pytest.mark.parametrize("text", ["10.0.0.1/8", "not-a-network", "0.0.0.0/0", "::/0"])
def test_a_bad_allowed_network_is_refused_by_core_with_the_variable_named(text: str) -> None:
    with pytest.raises(ValueError, match=r"^BERKAS_FETCH_ALLOW_NETWORKS: ") as from_core:
        parse_networks([text], field="BERKAS_FETCH_ALLOW_NETWORKS")
    with pytest.raises(ValidationError) as from_config:
        load_settings(fetch_allow_networks=f"127.0.0.0/8, {text}")

    [error] = from_config.value.errors()
    assert str(error["msg"]) == f"Value error, {from_core.value}"


def test_a_port_outside_tcp_range_is_refused_with_the_variable_named() -> None:
    with pytest.raises(ValidationError, match="BERKAS_FETCH_ALLOW_PORTS: 70000 is not a TCP port"):
        load_settings(fetch_allow_ports="443,70000")


# Strict names: a misspelt variable stops start-up instead of leaving a default in place.


@pytest.mark.parametrize("name", ["BERKAS_LINK_SECERT", "berkas_link_secert", "BERKAS_LINKSECRET"])
def test_a_misspelt_environment_variable_is_refused_naming_the_nearest(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(name, "x" * 40)
    with pytest.raises(ValueError, match="did you mean") as info:
        load_settings()
    assert str(info.value) == f"{name}: unknown; did you mean BERKAS_LINK_SECRET?"


def test_a_misspelt_key_in_the_config_file_is_refused_naming_the_nearest_and_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "berkas.env"
    config.write_text("BERKAS_NODE_ID=42\nBERKAS_LINK_SECERT=" + "x" * 40 + "\n")
    monkeypatch.setenv(CONFIG_FILE_VARIABLE, str(config))
    with pytest.raises(ValueError, match="did you mean") as info:
        load_settings()
    assert str(info.value) == (
        f"BERKAS_LINK_SECERT (in {config}): unknown; did you mean BERKAS_LINK_SECRET?"
    )


def test_a_config_file_that_is_not_utf8_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "berkas.env"
    config.write_bytes(b"BERKAS_ENV=\xff\xfe\n")
    monkeypatch.setenv(CONFIG_FILE_VARIABLE, str(config))
    expected = re.escape(f"BERKAS_CONFIG_FILE: {config} is not a readable file")
    with pytest.raises(ValueError, match=f"^{expected}"):
        load_settings()


def test_a_config_file_key_without_the_prefix_is_refused_naming_the_full_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "berkas.env"
    config.write_text("PORT=9000\n")
    monkeypatch.setenv(CONFIG_FILE_VARIABLE, str(config))
    with pytest.raises(ValueError, match=r"^PORT \(in .*\): unknown; did you mean BERKAS_PORT\?$"):
        load_settings()


def test_a_name_close_to_nothing_points_at_the_configuration_table(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BERKAS_FOO", "1")
    with pytest.raises(ValueError, match=r"README\.md, section Configuration") as info:
        load_settings()
    assert str(info.value).startswith("BERKAS_FOO: unknown setting; ")


def test_every_unknown_name_is_reported_on_its_own_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "berkas.env"
    config.write_text("BERKAS_DATADIR=/srv/berkas\n")
    monkeypatch.setenv(CONFIG_FILE_VARIABLE, str(config))
    monkeypatch.setenv("BERKAS_PROT", "9000")
    monkeypatch.setenv("BERKAS_LINK_SECERT", "x" * 40)
    with pytest.raises(ValueError, match="BERKAS_PROT") as info:
        load_settings()
    assert str(info.value).splitlines() == [
        "BERKAS_LINK_SECERT: unknown; did you mean BERKAS_LINK_SECRET?",
        "BERKAS_PROT: unknown; did you mean BERKAS_PORT?",
        f"BERKAS_DATADIR (in {config}): unknown; did you mean BERKAS_DATA_DIR?",
    ]


def test_partner_cli_names_and_the_config_file_variable_are_allowed_in_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "berkas.env"
    config.write_text("BERKAS_NODE_ID=7\n")
    monkeypatch.setenv(CONFIG_FILE_VARIABLE, str(config))
    monkeypatch.setenv("BERKAS_CLIENT_BASE_URL", "http://127.0.0.1:8000")
    monkeypatch.setenv("BERKAS_CLIENT_ID", "BRN-0001-1")
    monkeypatch.setenv("BERKAS_CLIENT_SECRET", "SK-x")
    monkeypatch.setenv("OTHER_APP_SECRET", "not ours")  # outside BERKAS_*: none of our business

    assert load_settings().node_id == 7


def test_partner_cli_names_are_read_in_upper_case_only(monkeypatch: pytest.MonkeyPatch) -> None:
    # click reads BERKAS_CLIENT_ID with exact case; a lower-case one would be ignored.
    monkeypatch.setenv("berkas_client_id", "BRN-0001-1")
    with pytest.raises(ValueError, match="did you mean BERKAS_CLIENT_ID"):
        load_settings()


@pytest.mark.parametrize("name", ["BERKAS_CLIENT_SECRET", "BERKAS_CONFIG_FILE"])
def test_environment_only_names_in_the_config_file_are_refused(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The file is read by the server only; such a line would silently do nothing.
    config = tmp_path / "berkas.env"
    config.write_text(f"{name}=value\n")
    monkeypatch.setenv(CONFIG_FILE_VARIABLE, str(config))
    with pytest.raises(ValueError, match=f"^{name} .*: read from the environment only"):
        load_settings()


def test_the_allow_list_is_exactly_what_the_cli_reads_from_the_environment() -> None:
    def envvars(command: click.Command) -> set[str]:
        found = {
            name
            for param in command.params
            for name in ([param.envvar] if isinstance(param.envvar, str) else param.envvar or [])
        }
        if isinstance(command, click.Group):
            for sub in command.commands.values():
                found |= envvars(sub)
        return found

    # The partner CLI reads its connection variables through the SDK (profiles.py), so a
    # flag, the environment and a profile are resolved in one place.
    sdk = {profiles.ENV_BASE_URL, profiles.ENV_CLIENT_ID, profiles.ENV_SECRET_KEY}
    assert envvars(main) | {CONFIG_FILE_VARIABLE} | sdk == ENVIRONMENT_ONLY


def test_an_unknown_keyword_from_code_is_refused_too() -> None:
    with pytest.raises(ValidationError, match="link_secert"):
        load_settings(link_secert="x" * 40)


@pytest.mark.parametrize(("value", "expected"), [("auto", "auto"), ("0", 0), ("9999", 9999)])
def test_a_node_id_is_a_number_or_auto(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str, expected: object
) -> None:
    monkeypatch.setenv("BERKAS_NODE_ID", value)
    assert load_settings(data_dir=tmp_path).node_id == expected


@pytest.mark.parametrize("value", ["10000", "-1", "any", "AUTO1"])
def test_a_node_id_outside_the_range_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("BERKAS_NODE_ID", value)
    with pytest.raises(ValidationError):
        load_settings(data_dir=tmp_path)


def test_presigned_links_need_an_s3_store(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="BERKAS_LINK_MODE=presigned needs an S3 store"):
        load_settings(data_dir=tmp_path, link_mode="presigned")
    settings = load_settings(data_dir=tmp_path, link_mode="presigned", storage_url="s3://docs/kyc")
    assert settings.link_mode == "presigned"


def test_the_public_s3_endpoint_is_checked_like_the_private_one(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="BERKAS_S3_PUBLIC_ENDPOINT_URL must not carry"):
        load_settings(data_dir=tmp_path, s3_public_endpoint_url="https://k:s@rgw.example.com")


def test_encryption_at_rest_is_on_in_proxy_mode_and_cannot_be_asked_of_presigned(
    tmp_path: Path,
) -> None:
    assert load_settings(data_dir=tmp_path).encrypts_at_rest
    assert not load_settings(data_dir=tmp_path, encrypt_at_rest=False).encrypts_at_rest
    presigned = {"link_mode": "presigned", "storage_url": "s3://docs/kyc"}
    assert not load_settings(data_dir=tmp_path, **presigned).encrypts_at_rest
    with pytest.raises(ValidationError, match="BERKAS_ENCRYPT_AT_REST=true needs"):
        load_settings(data_dir=tmp_path, encrypt_at_rest=True, **presigned)


def test_categories_that_keep_metadata_are_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BERKAS_KEEP_METADATA_CATEGORIES", "logo, PHOTO_PROOF")
    assert load_settings(data_dir=tmp_path).keep_metadata_categories == {"LOGO", "PHOTO_PROOF"}
    monkeypatch.setenv("BERKAS_KEEP_METADATA_CATEGORIES", "LOGO,SELFIE")
    with pytest.raises(ValidationError, match=r"SELFIE is no category \(categories are"):
        load_settings(data_dir=tmp_path)


def test_replay_records_outlive_every_accepted_replay() -> None:
    # Unset: twice the window plus a minute, the longest a replay can still be accepted.
    assert load_settings().replay_retention == 2 * 300 + 60
    assert load_settings(timestamp_window_seconds=900).replay_retention == 1860
    assert load_settings(replay_retention_seconds=600).replay_retention == 600
    with pytest.raises(ValidationError, match="shorter than twice BERKAS_TIMESTAMP_WINDOW"):
        load_settings(replay_retention_seconds=599)
    with pytest.raises(ValidationError, match=r"at least 1800"):
        load_settings(timestamp_window_seconds=900, replay_retention_seconds=1799)


def test_the_replaced_replay_setting_says_what_replaced_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BERKAS_REPLAY_RETENTION_HOURS", "48")
    with pytest.raises(ValueError, match="BERKAS_REPLAY_RETENTION_HOURS: replaced") as info:
        load_settings()
    assert "BERKAS_IDEMPOTENCY_RETENTION_HOURS" in str(info.value)


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        (
            "retention_days_by_category",
            "DOCUMENTS=30",
            "BERKAS_RETENTION_DAYS_BY_CATEGORY: DOCUMENTS is no category (did you mean DOCUMENT?",
        ),
        ("retention_days_by_category", "PASSPORT=3", "PASSPORT is no category (categories are"),
        (
            "keep_metadata_categories",
            "LOGOS",
            "BERKAS_KEEP_METADATA_CATEGORIES: LOGOS is no category (did you mean LOGO?",
        ),
    ],
)
def test_a_category_typo_is_refused_with_the_nearest_name(
    variable: str, value: str, said: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        load_settings(**{variable: value})
    assert said in str(refused.value)
    assert load_settings(retention_days_by_category="DOCUMENT=30").retention_days_by_category == {
        "DOCUMENT": 30.0
    }


def test_workers_whose_node_numbers_would_pass_9999_are_refused() -> None:
    load_settings(workers=4, node_id=9996)  # 9996-9999: the last four numbers
    with pytest.raises(ValidationError, match="node numbers 9997-10000, past 9999"):
        load_settings(workers=4, node_id=9997)
    load_settings(workers=64, node_id="auto")  # each worker takes a free number


def test_metrics_on_the_partner_port_are_refused_with_more_than_one_worker() -> None:
    load_settings(workers=1, metrics_port="main")
    with pytest.raises(ValidationError, match="BERKAS_METRICS_PORT=main cannot be used"):
        load_settings(workers=2, metrics_port="main")


def test_workers_metrics_ports_must_be_ports_and_miss_the_partner_port() -> None:
    assert load_settings(port=8000, metrics_port="9000", workers=3).worker_metrics_listener(2) == (
        "127.0.0.1",
        9002,
    )
    with pytest.raises(ValidationError, match="ports 7999-8001"):
        load_settings(port=8000, metrics_port="7999", workers=3)
    with pytest.raises(ValidationError, match="ports 65534-65536"):
        load_settings(port=8000, metrics_port="65534", workers=3)
