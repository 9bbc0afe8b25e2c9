"""Egress policy for ``file_url`` (docs/design.md 4): which URLs, ports and addresses a
fetch may reach.

Pure: parses and normalises URLs, classifies IP addresses and checks the operator's
allow-lists; ``adapters.fetch`` does the I/O.
"""

from __future__ import annotations

import functools
import ipaddress
import string
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeAlias

from berkas import __version__
from berkas.core.codes import Code
from berkas.core.errors import FetchRefused

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_USER_AGENT = f"berkas/{__version__} (+document fetcher)"
DEFAULT_PORTS = {"http": 80, "https": 443}
_HOST_CHARS = frozenset(string.ascii_lowercase + string.digits + "-_.")
_HEX = frozenset(string.hexdigits)
_OCT = frozenset(string.octdigits)
_DEC = frozenset(string.digits)


@dataclass(frozen=True, slots=True)
class EgressPolicy:
    """What a fetch may reach. The defaults are the safe ones; widening is configuration.

    ``allow_networks`` are CIDRs the operator trusts (a partner's own storage, or
    127.0.0.0/8 in tests): an address inside one passes even when it is not public.
    """

    allow_networks: tuple[IPNetwork, ...] = ()
    allow_ports: frozenset[int] = frozenset({80, 443})
    max_redirects: int = 3
    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    total_timeout: float = 30.0
    max_url_length: int = 2048
    user_agent: str = DEFAULT_USER_AGENT

    def __post_init__(self) -> None:
        # Refuse bad configuration at start-up, never at request time (STYLE).
        for network in self.allow_networks:
            _refuse_catch_all(network, "allow_networks")
        check_ports(self.allow_ports, field="allow_ports")
        if not self.allow_ports:
            raise ValueError("allow_ports is empty; name at least one port (or disable fetching)")
        if self.max_redirects < 0:
            raise ValueError(f"max_redirects must be 0 or more; got {self.max_redirects}")
        for name in ("connect_timeout", "read_timeout", "total_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be a positive number of seconds")
        if self.max_url_length < 16:
            raise ValueError(f"max_url_length must be at least 16; got {self.max_url_length}")


@dataclass(frozen=True, slots=True)
class Target:
    """A URL that passed ``parse_url``: every part normalised, nothing left to reinterpret.

    ``host`` is a lower-case ASCII name (IDNA applied, no trailing dot) or the canonical
    text of an IP address (IPv6 without brackets); ``host_header`` is what goes in Host.
    """

    scheme: str
    host: str
    port: int
    path_and_query: str
    host_header: str

    @property
    def url(self) -> str:
        """The normalised URL: the one the fetcher requests."""
        return f"{self.scheme}://{self.host_header}{self.path_and_query}"

    @property
    def address(self) -> IPAddress | None:
        """The IP address when the host is a literal one, else ``None``."""
        try:
            return ipaddress.ip_address(self.host)
        except ValueError:
            return None


@dataclass(frozen=True, slots=True)
class FetchResult:
    """What a completed fetch delivered: the final URL (after redirects) and the body size."""

    url: str
    status: int
    content_type: str | None
    size: int


def parse_url(url: str, policy: EgressPolicy, *, field: str = "file_url") -> Target:
    """Parse and normalise ``url``; raise ``FetchRefused`` with a ``url_*`` code if refused.

    Numeric hosts are read the way browsers (WHATWG URL "IPv4 parser") and glibc
    ``inet_aton`` read them, so ``127.1``, ``2130706433``, ``0x7f000001`` and
    ``0177.0.0.1`` all become ``127.0.0.1`` and are then classified like any address.
    """
    if len(url) > policy.max_url_length:
        raise _invalid(
            f"{field} is {len(url)} characters long; at most {policy.max_url_length} are accepted"
        )
    if not url:
        raise _invalid(f"{field} is empty; expected an http:// or https:// URL")
    # Whitespace, controls and backslashes are where parsers disagree (browsers read "\" as
    # "/", some strip tabs and newlines); refusing them leaves one reading of the URL.
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        raise _invalid(f"{field} contains whitespace or control characters; percent-encode them")
    if "\\" in url:
        raise _invalid(f"{field} contains a backslash; use '/' or percent-encode it")

    scheme, rest = _split_scheme(url, field)
    if not rest.startswith("//"):
        raise _invalid(f"{field} must look like {scheme}://host/path")
    rest = rest[2:]
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, remainder = rest[:end], rest[end:]
    if "@" in authority:
        # RFC 3986 3.2.1 userinfo: never forwarded, and "good.example@127.0.0.1" is the
        # classic way to make a URL look like it points elsewhere.
        raise FetchRefused(
            f"{field} contains credentials (user@host); they are not accepted, "
            "use a pre-signed URL instead",
            code=Code.URL_CREDENTIALS_NOT_ALLOWED,
        )
    host, literal, port = _split_authority(authority, scheme, field)
    if port not in policy.allow_ports:
        allowed = ", ".join(str(p) for p in sorted(policy.allow_ports))
        raise FetchRefused(
            f"{field} port {port} is not accepted; allowed ports: {allowed}",
            code=Code.URL_PORT_NOT_ALLOWED,
        )

    path_and_query = remainder.split("#", 1)[0]
    if not path_and_query.startswith("/"):
        path_and_query = "/" + path_and_query
    shown = f"[{host}]" if isinstance(literal, ipaddress.IPv6Address) else host
    host_header = shown if port == DEFAULT_PORTS[scheme] else f"{shown}:{port}"
    return Target(scheme, host, port, path_and_query, host_header)


def classify(address: IPAddress | str) -> str | None:
    """Return ``None`` for a public address, else the name of its class ("loopback", ...).

    IPv6 forms that carry an IPv4 address (mapped, compatible, NAT64, 6to4, Teredo) are
    unwrapped first: the packet ends up at the embedded IPv4 address, so that is what counts.
    Tables follow the IANA special-purpose registries (RFC 6890 and updates) rather than
    ``ipaddress.is_private``, whose answers changed between Python releases (CVE-2024-4032).
    """
    ip = _as_ip(address)
    if isinstance(ip, ipaddress.IPv4Address):
        return _lookup(ip, _v4_table())
    return _classify_v6(ip)


def check_address(address: IPAddress | str, policy: EgressPolicy) -> None:
    """Raise ``FetchRefused(code=Code.ADDRESS_NOT_ALLOWED)`` unless a fetch may reach ``address``.

    The message names the class of address only, never the address: echoing what an
    internal name resolves to would itself leak the internal network.
    """
    ip = _as_ip(address)
    for network in policy.allow_networks:
        # Compare like with like: ipaddress does not check versions in ``in``.
        if network.version == ip.version and ip in network:
            return
    kind = classify(ip)
    if kind is not None:
        raise FetchRefused(
            f"file_url leads to a non-public address ({kind}); berkas fetches only from "
            "public addresses",
            code=Code.ADDRESS_NOT_ALLOWED,
        )


def static_addresses(target: Target) -> tuple[IPAddress, ...] | None:
    """Addresses known without DNS: the literal IP, or loopback for ``localhost`` names.

    RFC 6761 6.3: "localhost" and names under it are loopback; applications may answer
    that themselves rather than ask a resolver. ``None`` means the name must be resolved.
    """
    if (literal := target.address) is not None:
        return (literal,)
    if target.host == "localhost" or target.host.endswith(".localhost"):
        return (ipaddress.IPv4Address("127.0.0.1"), ipaddress.IPv6Address("::1"))
    return None


def parse_networks(items: Iterable[str], *, field: str = "allow_networks") -> tuple[IPNetwork, ...]:
    """Parse the CIDRs an operator trusts; a ``ValueError`` names ``field`` and the item.

    The one place allow-lists are checked: ``config`` calls it for
    ``BERKAS_FETCH_ALLOW_NETWORKS`` (passing that name as ``field``).

    Host bits must be zero (``10.0.0.1/8`` is refused) so a typo cannot widen the list, and
    a /0 is refused because it would switch the guard off altogether.
    """
    networks: list[IPNetwork] = []
    for item in items:
        try:
            network = ipaddress.ip_network(item, strict=True)
        except ValueError as exc:
            raise ValueError(
                f"{field}: {item!r} is not a CIDR network without host bits (e.g. 203.0.113.0/24)"
            ) from exc
        _refuse_catch_all(network, field)
        networks.append(network)
    return tuple(networks)


def check_ports(ports: Iterable[int], *, field: str = "allow_ports") -> None:
    """Raise ``ValueError`` naming ``field`` unless every port is a TCP port (1..65535)."""
    for port in ports:
        if not 1 <= port <= 65535:
            raise ValueError(f"{field}: {port} is not a TCP port")


def _refuse_catch_all(network: IPNetwork, field: str) -> None:
    # 0.0.0.0/0 or ::/0 would let file_url reach loopback, the cloud metadata service and
    # every private range: that is switching the SSRF guard off, not widening it.
    if network.prefixlen == 0:
        raise ValueError(
            f"{field}: {network} allows every address and so switches the fetch guard off; "
            "name the networks you trust"
        )


def _invalid(message: str) -> FetchRefused:
    return FetchRefused(message, code=Code.URL_INVALID)


def _split_scheme(url: str, field: str) -> tuple[str, str]:
    scheme, colon, rest = url.partition(":")
    valid = (
        colon
        and scheme[:1].isascii()
        and scheme[:1].isalpha()
        and all(ch.isascii() and (ch.isalnum() or ch in "+-.") for ch in scheme)
    )
    if not valid:
        raise FetchRefused(
            f"{field} has no scheme; it must start with http:// or https://",
            code=Code.URL_SCHEME_NOT_ALLOWED,
        )
    scheme = scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise FetchRefused(
            f"{field} scheme '{scheme[:20]}' is not accepted; use http or https",
            code=Code.URL_SCHEME_NOT_ALLOWED,
        )
    return scheme, rest


def _split_authority(authority: str, scheme: str, field: str) -> tuple[str, IPAddress | None, int]:
    literal: IPAddress | None
    if authority.startswith("["):
        close = authority.find("]")
        if close < 0:
            raise _invalid(f"{field} has an unterminated IPv6 address; expected [address]")
        inner, after = authority[1:close], authority[close + 1 :]
        if "%" in inner:
            raise _invalid(f"{field} has an IPv6 zone identifier; zones are not accepted")
        try:
            literal = ipaddress.IPv6Address(inner)
        except ValueError:
            raise _invalid(f"{field} has a malformed IPv6 address in brackets") from None
        host = literal.compressed
        if after and not after.startswith(":"):
            raise _invalid(f"{field} has text after the IPv6 address; expected :port or /")
        port_text: str | None = after[1:] if after else None
    else:
        host_text, colon, tail = authority.rpartition(":")
        if not colon:
            host_text, port_text = authority, None
        else:
            port_text = tail
        host, literal = _normalise_host(host_text, field)
    if port_text is None:
        return host, literal, DEFAULT_PORTS[scheme]
    if not port_text or len(port_text) > 5 or not set(port_text) <= _DEC:
        raise _invalid(f"{field} has a malformed port; expected a number 1..65535")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise _invalid(f"{field} port {port} is out of range; expected 1..65535")
    return host, literal, port


def _normalise_host(text: str, field: str) -> tuple[str, ipaddress.IPv4Address | None]:
    if not text:
        raise _invalid(f"{field} has no host; expected http(s)://host/path")
    if "%" in text:
        raise _invalid(f"{field} host is percent-encoded; write the host name plainly")
    if ":" in text:
        raise _invalid(f"{field} host contains ':'; write IPv6 addresses in brackets")
    host = text
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError:
            raise _invalid(f"{field} host is not a valid internationalised name") from None
    host = host.lower()
    if host.endswith("."):
        host = host[:-1]
    labels = host.split(".")
    if not host or any(not label for label in labels):
        raise _invalid(f"{field} host has an empty label; expected a name like files.example.com")
    if not set(host) <= _HOST_CHARS:
        raise _invalid(f"{field} host has characters not allowed in a host name")
    if _ends_in_number(labels[-1]):
        # WHATWG URL host parser: a host whose last label is a number is an IPv4 address
        # or an error; glibc inet_aton reads the same forms. Never pass these to DNS.
        v4 = _parse_ipv4(labels)
        if v4 is None:
            raise _invalid(f"{field} host looks numeric but is not a valid IPv4 address")
        return str(v4), v4
    if len(host) > 253 or any(len(label) > 63 for label in labels):
        raise _invalid(f"{field} host name is too long (RFC 1035: 253 characters, 63 a label)")
    return host, None


def _ends_in_number(label: str) -> bool:
    if label.startswith("0x"):
        return set(label[2:]) <= _HEX
    return set(label) <= _DEC


def _parse_ipv4(labels: list[str]) -> ipaddress.IPv4Address | None:
    if len(labels) > 4:
        return None
    numbers: list[int] = []
    for label in labels:
        if label.startswith("0x"):
            digits, base, allowed = label[2:], 16, _HEX
        elif len(label) > 1 and label.startswith("0"):
            digits, base, allowed = label[1:], 8, _OCT
        else:
            digits, base, allowed = label, 10, _DEC
        # int() alone would also take "_" and signs; check the digits first.
        if not set(digits) <= allowed:
            return None
        numbers.append(int(digits, base) if digits else 0)
    *leading, last = numbers
    if any(n > 255 for n in leading) or last >= 256 ** (5 - len(numbers)):
        return None
    value = last
    for i, n in enumerate(leading):
        value += n << (8 * (3 - i))
    return ipaddress.IPv4Address(value)


def _as_ip(address: IPAddress | str) -> IPAddress:
    if isinstance(address, str):
        # Resolvers may return scoped IPv6 ("fe80::1%eth0"); the scope does not change
        # which class the address is in.
        address = ipaddress.ip_address(address.split("%", 1)[0])
    elif isinstance(address, ipaddress.IPv6Address) and address.scope_id:
        address = ipaddress.IPv6Address(int(address))
    return address


def _lookup(ip: IPAddress, table: tuple[tuple[IPNetwork, str], ...]) -> str | None:
    for network, kind in table:
        if ip in network:
            return kind
    return None


def _classify_v6(ip: ipaddress.IPv6Address) -> str | None:
    if ip.ipv4_mapped is not None:  # ::ffff:0:0/96, RFC 4291 2.5.5.2
        return classify(ip.ipv4_mapped)
    packed = ip.packed
    if ip == ipaddress.IPv6Address("::"):
        return "unspecified"
    if ip == ipaddress.IPv6Address("::1"):
        return "loopback"
    if packed[:12] == bytes(12):  # ::/96 "IPv4-compatible", RFC 4291 2.5.5.1 (deprecated)
        return classify(ipaddress.IPv4Address(packed[12:]))
    if ip in _net("64:ff9b::/96"):  # NAT64 well-known prefix, RFC 6052 2.1
        return classify(ipaddress.IPv4Address(packed[12:]))
    if ip in _net("64:ff9b:1::/48"):
        # RFC 8215 local-use NAT64: the operator picks the prefix length, and RFC 6052 2.2
        # puts the IPv4 address at a different place for each. Only 64:ff9b:1::/96 (the
        # rest of the prefix zero) has one reading; any other layout is refused outright.
        if packed[6:12] != bytes(6):
            return "reserved (NAT64 local-use)"
        return classify(ipaddress.IPv4Address(packed[12:]))
    if ip.sixtofour is not None:  # 2002::/16, RFC 3056
        return classify(ip.sixtofour)
    if ip.teredo is not None:  # 2001::/32, RFC 4380: (server, client), client de-obfuscated
        server, client = ip.teredo
        return classify(client) or classify(server)
    kind = _lookup(ip, _v6_table())
    if kind is None and ip not in _net("2000::/3"):
        # Only 2000::/3 is allocated as global unicast (RFC 4291 2.4); the rest is reserved.
        return "reserved"
    return kind


@functools.cache
def _net(text: str) -> IPNetwork:
    return ipaddress.ip_network(text)


def _table(rows: tuple[tuple[str, str], ...]) -> tuple[tuple[IPNetwork, str], ...]:
    return tuple((_net(cidr), kind) for cidr, kind in rows)


# Order matters: the first matching row names the class (exact metadata addresses first).
# Built into networks on first use (cached), not at import.
_V4_ROWS = (
    ("169.254.169.254/32", "link-local (cloud metadata)"),  # AWS, GCP, Azure, OCI IMDS
    ("169.254.170.2/32", "link-local (cloud metadata)"),  # AWS ECS task metadata
    ("100.100.100.200/32", "shared address space (cloud metadata)"),  # Alibaba Cloud
    ("0.0.0.0/8", "unspecified"),  # RFC 1122 "this network"; Linux connects 0.0.0.0 to itself
    ("10.0.0.0/8", "private"),  # RFC 1918
    ("100.64.0.0/10", "shared address space (CGNAT)"),  # RFC 6598
    ("127.0.0.0/8", "loopback"),  # RFC 1122
    ("169.254.0.0/16", "link-local"),  # RFC 3927
    ("172.16.0.0/12", "private"),  # RFC 1918
    ("192.0.0.0/24", "reserved (IETF protocol assignments)"),  # RFC 6890
    ("192.0.2.0/24", "documentation"),  # RFC 5737
    ("192.88.99.0/24", "reserved (6to4 relay anycast)"),  # RFC 7526
    ("192.168.0.0/16", "private"),  # RFC 1918
    ("198.18.0.0/15", "benchmarking"),  # RFC 2544
    ("198.51.100.0/24", "documentation"),  # RFC 5737
    ("203.0.113.0/24", "documentation"),  # RFC 5737
    ("224.0.0.0/4", "multicast"),  # RFC 5771
    ("255.255.255.255/32", "broadcast"),  # RFC 919
    ("240.0.0.0/4", "reserved"),  # RFC 1112
)
_V6_ROWS = (
    ("fd00:ec2::254/128", "unique-local (cloud metadata)"),  # AWS IMDS over IPv6
    ("100::/64", "reserved (discard-only)"),  # RFC 6666
    ("2001:2::/48", "benchmarking"),  # RFC 5180
    ("2001::/23", "reserved (IETF protocol assignments)"),  # RFC 2928
    ("2001:db8::/32", "documentation"),  # RFC 3849
    ("3fff::/20", "documentation"),  # RFC 9637
    ("5f00::/16", "reserved (SRv6)"),  # RFC 9602
    ("fc00::/7", "unique-local"),  # RFC 4193
    ("fe80::/10", "link-local"),  # RFC 4291
    ("fec0::/10", "site-local"),  # RFC 3879 (deprecated)
    ("ff00::/8", "multicast"),  # RFC 4291
)


@functools.cache
def _v4_table() -> tuple[tuple[IPNetwork, str], ...]:
    return _table(_V4_ROWS)


@functools.cache
def _v6_table() -> tuple[tuple[IPNetwork, str], ...]:
    return _table(_V6_ROWS)
