"""Profiles in ``$XDG_CONFIG_HOME/berkas/config.toml``: read by tomllib, written 0600."""

from __future__ import annotations

import stat
import tomllib
from pathlib import Path

import pytest

from berkas.client import ConfigurationError, profiles


def test_a_saved_profile_reads_back_exactly_and_is_private(tmp_path: Path) -> None:
    path = tmp_path / "berkas" / "config.toml"
    tricky = 'SK-"quoted"\\back\nline\ttab\x7f ünï 😀'
    profiles.save_profile(
        path, "work", {"base_url": "http://h:1", "client_id": "BRN-1", "secret_key": tricky}
    )
    profiles.save_profile(
        path, "default", {"base_url": "http://h:2", "client_id": "BRN-2", "secret_key": "SK-2"}
    )

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    with path.open("rb") as handle:
        document = tomllib.load(handle)
    assert document["profiles"]["work"]["secret_key"] == tricky
    assert set(document["profiles"]) == {"work", "default"}
    assert list(path.parent.iterdir()) == [path]  # no temporary file left


def test_saving_keeps_what_else_the_file_holds(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('note = "hand-written"\n[profiles.old]\nclient_id = "BRN-0"\nretries = 3\n')
    profiles.save_profile(path, "new", {"client_id": "BRN-9"})
    with path.open("rb") as handle:
        document = tomllib.load(handle)
    assert document == {
        "note": "hand-written",
        "profiles": {"old": {"client_id": "BRN-0", "retries": 3}, "new": {"client_id": "BRN-9"}},
    }


def test_a_file_it_cannot_rewrite_faithfully_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("hosts = [1, 2]\n")
    with pytest.raises(ConfigurationError, match="cannot rewrite hosts"):
        profiles.save_profile(path, "work", {"client_id": "BRN-1"})
    assert path.read_text() == "hosts = [1, 2]\n"


@pytest.mark.parametrize("name", ["", "a b", "x]", "a.b", "ü"])
def test_profile_names_are_plain(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigurationError, match="profile name"):
        profiles.save_profile(tmp_path / "config.toml", name, {})


def test_config_path_follows_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert (
        profiles.config_path({"XDG_CONFIG_HOME": str(tmp_path)}) == tmp_path / "berkas/config.toml"
    )
    # The XDG spec: a relative XDG_CONFIG_HOME is invalid and ignored.
    default = tmp_path / "home/.config/berkas/config.toml"
    assert profiles.config_path({"XDG_CONFIG_HOME": "relative"}) == default
    assert profiles.config_path({}) == default


def test_flags_beat_the_environment_which_beats_the_profile(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    saved = {"base_url": "http://profile:1", "client_id": "BRN-P", "secret_key": "SK-P"}
    profiles.save_profile(path, "default", saved)
    env = {"BERKAS_CLIENT_ID": "BRN-E"}

    found = profiles.resolve(flags={"secret_key": "SK-F"}, env=env, path=path)
    assert (found.base_url, found.client_id, found.secret_key) == (
        "http://profile:1",
        "BRN-E",
        "SK-F",
    )
    assert found.profile == "default"

    nothing = profiles.resolve(env={}, path=tmp_path / "none.toml")
    assert (nothing.base_url, nothing.client_id, nothing.profile) == (
        "http://127.0.0.1:8000",
        None,
        None,
    )


def test_a_broken_config_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[profiles\n")
    with pytest.raises(ConfigurationError, match=r"cannot read .*config\.toml"):
        profiles.resolve(env={}, path=path)


def test_an_unwritable_place_is_a_configuration_error(tmp_path: Path) -> None:
    blocker = tmp_path / "berkas"
    blocker.write_text("a file where the directory should be")
    with pytest.raises(ConfigurationError, match=r"cannot (read|write) .*config\.toml"):
        profiles.save_profile(blocker / "config.toml", "work", {"client_id": "BRN-1"})
