"""Settings: environment, the optional file, and refusals that name the variable."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from pydantic import ValidationError

from berkas.config import load_settings
from berkas.core.egress import parse_networks


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
        ("storage_url", "s3://bucket/prefix"),
        ("rsa_key_bits", 1024),
    ],
)
def test_insecure_or_malformed_values_are_refused_at_start(field: str, value: object) -> None:
    with pytest.raises(ValidationError):
        load_settings(**{field: value})


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
