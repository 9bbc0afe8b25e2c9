"""Who a request came from, as seen through the reverse proxies an operator trusts.

The audit trail records the client's address (docs/design.md 6.3). Behind a proxy the TCP peer is
the proxy; the client is in ``X-Forwarded-For``, which every hop appends to and which a
client can pre-fill with anything. So the list is read from the right, skipping the
addresses of trusted proxies, and the first address that is not one is the client's
(RFC 7239 section 7.4 on the header's spoofability; MDN "X-Forwarded-For", "Selecting an
IP address": the rightmost untrusted entry). With no trusted proxy configured the peer
is the answer and the header is ignored.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from berkas.core.egress import IPNetwork


def client_address(
    peer: str | None, forwarded_for: str | None, trusted: Sequence[IPNetwork]
) -> str | None:
    """The client's address: ``peer`` unless it is a trusted proxy, then the rightmost
    ``X-Forwarded-For`` entry that is not a trusted proxy (the leftmost if all are)."""
    if peer is None or not trusted or not _trusted(peer, trusted) or not forwarded_for:
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _is_address(hop):
            return peer  # a malformed list: trust none of it
        if not _trusted(hop, trusted):
            return hop
    return hops[0] if hops else peer


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _trusted(address: str, trusted: Sequence[IPNetwork]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip.version == net.version and ip in net for net in trusted)
