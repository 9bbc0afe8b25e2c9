"""The audit trail's client address through trusted proxies."""

from __future__ import annotations

import pytest

from berkas.core.egress import parse_networks
from berkas.core.forwarded import client_address

PROXIES = parse_networks(["10.0.0.0/8"])


@pytest.mark.parametrize(
    ("peer", "header", "trusted", "expected"),
    [
        ("203.0.113.5", None, (), "203.0.113.5"),
        ("10.0.0.2", "198.51.100.7", (), "10.0.0.2"),  # no proxy trusted: header ignored
        ("203.0.113.5", "198.51.100.7", PROXIES, "203.0.113.5"),  # peer is no proxy
        ("10.0.0.2", "198.51.100.7", PROXIES, "198.51.100.7"),
        ("10.0.0.2", "1.2.3.4, 198.51.100.7, 10.0.0.9", PROXIES, "198.51.100.7"),  # spoofed left
        ("10.0.0.2", "10.0.0.7, 10.0.0.9", PROXIES, "10.0.0.7"),
        ("10.0.0.2", "198.51.100.7, not-an-ip", PROXIES, "10.0.0.2"),
        ("10.0.0.2", "", PROXIES, "10.0.0.2"),
        (None, "198.51.100.7", PROXIES, None),
    ],
)
def test_client_address(
    peer: str | None, header: str | None, trusted: tuple[object, ...], expected: str | None
) -> None:
    assert client_address(peer, header, trusted) == expected  # type: ignore[arg-type]
