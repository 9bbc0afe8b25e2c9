"""The egress guard at its edges: every address-table row at both ends, numeric host and
control-character properties, and the exact refusal a caller sees (issue 19, item 6).

The address tables below are written out from the IANA special-purpose registries (RFC
6890 and the RFCs named per row), not read from ``core/egress.py``: halving a range or
dropping a row there must fail here.
"""

from __future__ import annotations

import ipaddress
import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from berkas.core.egress import (
    EgressPolicy,
    check_address,
    classify,
    parse_networks,
    parse_url,
    static_addresses,
)
from berkas.core.errors import FetchRefused

POLICY = EgressPolicy()
PROPERTY = settings(max_examples=300, deadline=None)
CGNAT = "shared address space (CGNAT)"

# (first, a sample inside, last) of each row, the class they must get, and the public
# neighbours just outside the row (none where the neighbour is itself not public).
V4_ROWS = [
    (("169.254.169.254",), "link-local (cloud metadata)", ()),  # IMDS
    (("169.254.170.2",), "link-local (cloud metadata)", ()),  # ECS task metadata
    (("100.100.100.200",), "shared address space (cloud metadata)", ()),  # Alibaba
    (("0.0.0.0", "0.128.0.1", "0.255.255.255"), "unspecified", ("1.0.0.0",)),  # noqa: S104
    (("10.0.0.0", "10.100.200.1", "10.255.255.255"), "private", ("9.255.255.255", "11.0.0.0")),
    (
        ("100.64.0.0", "100.100.1.2", "100.127.255.255"),
        CGNAT,
        ("100.63.255.255", "100.128.0.0"),
    ),
    (
        ("127.0.0.0", "127.1.2.3", "127.255.255.255"),
        "loopback",
        ("126.255.255.255", "128.0.0.0"),
    ),
    (
        ("169.254.0.0", "169.254.200.1", "169.254.255.255"),
        "link-local",
        ("169.253.255.255", "169.255.0.0"),
    ),
    (
        ("172.16.0.0", "172.24.1.1", "172.31.255.255"),
        "private",
        ("172.15.255.255", "172.32.0.0"),
    ),
    (
        ("192.0.0.0", "192.0.0.100", "192.0.0.255"),
        "reserved (IETF protocol assignments)",
        ("191.255.255.255", "192.0.1.0"),
    ),
    (("192.0.2.0", "192.0.2.128", "192.0.2.255"), "documentation", ("192.0.1.255", "192.0.3.0")),
    (
        ("192.88.99.0", "192.88.99.1", "192.88.99.255"),
        "reserved (6to4 relay anycast)",
        ("192.88.98.255", "192.88.100.0"),
    ),
    (
        ("192.168.0.0", "192.168.200.50", "192.168.255.255"),
        "private",
        ("192.167.255.255", "192.169.0.0"),
    ),
    (
        ("198.18.0.0", "198.19.0.1", "198.19.255.255"),
        "benchmarking",
        ("198.17.255.255", "198.20.0.0"),
    ),
    (
        ("198.51.100.0", "198.51.100.7", "198.51.100.255"),
        "documentation",
        ("198.51.99.255", "198.51.101.0"),
    ),
    (
        ("203.0.113.0", "203.0.113.9", "203.0.113.255"),
        "documentation",
        ("203.0.112.255", "203.0.114.0"),
    ),
    (("224.0.0.0", "232.1.2.3", "239.255.255.255"), "multicast", ("223.255.255.255",)),
    (("240.0.0.0", "250.1.2.3", "255.255.255.254"), "reserved", ()),
    (("255.255.255.255",), "broadcast", ()),
]
# The metadata addresses sit inside wider rows: their neighbours keep the wider class.
V4_NEIGHBOURS: list[tuple[str, str | None]] = [
    ("169.254.169.253", "link-local"),
    ("169.254.169.255", "link-local"),
    ("169.254.170.1", "link-local"),
    ("169.254.170.3", "link-local"),
    ("100.100.100.199", CGNAT),
    ("100.100.100.201", CGNAT),
]
ONES = "ffff:ffff:ffff:ffff"
V6_ROWS = [
    (("fd00:ec2::254",), "unique-local (cloud metadata)", ()),
    (("100::", "100::1234", f"100::{ONES}"), "reserved (discard-only)", ()),
    (
        ("2001:2::", "2001:2:0:1234::1", f"2001:2:0:ffff:ffff:{ONES[5:]}"),
        "benchmarking",
        (),
    ),
    # 2001::/32 is Teredo (its embedded addresses decide), so this row is probed above it.
    (
        ("2001:1::", "2001:100::1", f"2001:1ff:ffff:ffff:{ONES}"),
        "reserved (IETF protocol assignments)",
        ("2001:200::", f"2000:ffff:ffff:ffff:{ONES}"),
    ),
    (
        ("2001:db8::", "2001:db8:1234::5", f"2001:db8:ffff:ffff:{ONES}"),
        "documentation",
        (f"2001:db7:ffff:ffff:{ONES}", "2001:db9::"),
    ),
    (
        ("3fff::", "3fff:800::1", f"3fff:fff:ffff:ffff:{ONES}"),
        "documentation",
        (f"3ffe:ffff:ffff:ffff:{ONES}", "3fff:1000::"),
    ),
    (("5f00::", "5f00:1234::1", f"5f00:ffff:ffff:ffff:{ONES}"), "reserved (SRv6)", ()),
    (("fc00::", "fd12:3456::1", f"fdff:ffff:ffff:ffff:{ONES}"), "unique-local", ()),
    (("fe80::", "fe90::1", f"febf:ffff:ffff:ffff:{ONES}"), "link-local", ()),
    (("fec0::", "fed0::1", f"feff:ffff:ffff:ffff:{ONES}"), "site-local", ()),
    (("ff00::", "ff02::1", f"ffff:ffff:ffff:ffff:{ONES}"), "multicast", ()),
]
V6_NEIGHBOURS: list[tuple[str, str | None]] = [
    ("fd00:ec2::253", "unique-local"),
    ("fd00:ec2::255", "unique-local"),
    ("100:0:0:1::", "reserved"),  # just past 100::/64, outside 2000::/3
    (f"ff:ffff:ffff:ffff:{ONES}", "reserved"),  # just before it
    (f"2001:1:ffff:ffff:{ONES}", "reserved (IETF protocol assignments)"),  # before 2001:2::/48
    ("2001:2:1::", "reserved (IETF protocol assignments)"),  # after it
    (f"5eff:ffff:ffff:ffff:{ONES}", "reserved"),
    ("5f01::", "reserved"),
    (f"fbff:ffff:ffff:ffff:{ONES}", "reserved"),
    ("fe00::", "reserved"),
    (f"fe7f:ffff:ffff:ffff:{ONES}", "reserved"),
    # Global unicast is 2000::/3 only (RFC 4291 2.4): both its ends pass, both neighbours not.
    ("2000::", None),
    (f"3fff:ffff:ffff:ffff:{ONES}", None),
    (f"1fff:ffff:ffff:ffff:{ONES}", "reserved"),
    ("4000::", "reserved"),
]


Rows = list[tuple[tuple[str, ...], str, tuple[str, ...]]]


def _cases(rows: Rows) -> list[tuple[str, str | None]]:
    return [(address, kind) for inside, kind, _ in rows for address in inside]


def _outside(rows: Rows) -> list[str]:
    return [address for _, _, outside in rows for address in outside]


@pytest.mark.parametrize(
    ("address", "kind"), _cases(V4_ROWS) + _cases(V6_ROWS) + V4_NEIGHBOURS + V6_NEIGHBOURS
)
def test_each_row_holds_at_both_ends_and_inside(address: str, kind: str | None) -> None:
    assert classify(address) == kind
    if kind is None:
        check_address(address, POLICY)
    else:
        with pytest.raises(FetchRefused) as caught:
            check_address(ipaddress.ip_address(address), POLICY)
        assert caught.value.code == "address_not_allowed"
        assert f"({kind})" in caught.value.message


@pytest.mark.parametrize("address", _outside(V4_ROWS) + _outside(V6_ROWS))
def test_the_public_neighbours_of_each_row_pass(address: str) -> None:
    assert classify(address) is None
    check_address(address, POLICY)


@pytest.mark.parametrize(("address", "kind"), _cases(V4_ROWS) + V4_NEIGHBOURS)
def test_each_ipv4_row_holds_through_every_ipv6_wrapping(address: str, kind: str) -> None:
    n = int(ipaddress.IPv4Address(address))
    for wrapped in (
        (0xFFFF << 32) | n,  # ::ffff:0:0/96
        n,  # ::/96, IPv4-compatible (beyond ::1 and ::)
        (0x0064FF9B << 96) | n,  # 64:ff9b::/96
        (0x0064FF9B0001 << 80) | n,  # 64:ff9b:1::/96
        (0x2002 << 112) | (n << 80),  # 2002::/16
    ):
        v6 = ipaddress.IPv6Address(wrapped)
        if v6 in (ipaddress.IPv6Address("::"), ipaddress.IPv6Address("::1")):
            continue
        assert classify(v6) == kind


# --- numeric hosts ------------------------------------------------------------------


@st.composite
def numeric_spellings(draw: st.DrawFn) -> tuple[ipaddress.IPv4Address, str]:
    """An IPv4 address and one of the ways WHATWG URL and inet_aton let a host spell it:
    1 to 4 parts (the last covers the remaining bytes), each decimal, octal or hex."""
    value = draw(st.integers(0, 2**32 - 1))
    address = ipaddress.IPv4Address(value)
    count = draw(st.integers(1, 4))
    parts = [(value >> (8 * (3 - i))) & 0xFF for i in range(count - 1)]
    parts.append(value & ((1 << (8 * (5 - count))) - 1))
    texts = []
    for part in parts:
        base = draw(st.sampled_from(["dec", "oct", "hex"]))
        if base == "dec":
            texts.append(str(part))
        elif base == "oct":
            texts.append("0" * draw(st.integers(1, 3)) + format(part, "o"))
        else:
            digits = "0" * draw(st.integers(0, 2)) + format(part, draw(st.sampled_from("xX")))
            if part == 0 and draw(st.booleans()):
                digits = ""  # "0x" alone is zero
            texts.append(draw(st.sampled_from(["0x", "0X"])) + digits)
    trailing_dot = draw(st.booleans())
    return address, ".".join(texts) + ("." if trailing_dot else "")


@PROPERTY
@given(numeric_spellings())
@example((ipaddress.IPv4Address("73.150.2.210"), "1234567890"))  # every decimal digit
@example((ipaddress.IPv4Address("0.5.57.119"), "001234567"))  # every octal digit
@example((ipaddress.IPv4Address("255.255.255.254"), "255.255.255.254"))
@example((ipaddress.IPv4Address("255.1.2.3"), "0xff.1.0x203"))
@example((ipaddress.IPv4Address("127.0.0.1"), "0x7F.000.0.01"))
def test_every_numeric_spelling_is_the_address_it_denotes(
    case: tuple[ipaddress.IPv4Address, str],
) -> None:
    address, spelling = case
    target = parse_url(f"http://{spelling}/x", POLICY)
    assert target.host == str(address)
    assert target.address == address
    assert static_addresses(target) == (address,)  # never resolved through DNS
    assert classify(target.host) == classify(address)


@st.composite
def overflowing_spellings(draw: st.DrawFn) -> str:
    """A numeric host one of whose parts is too large for the place it stands in."""
    count = draw(st.integers(1, 4))
    limits = [256] * (count - 1) + [256 ** (5 - count)]
    parts = [draw(st.integers(0, limit - 1)) for limit in limits]
    wrong = draw(st.integers(0, count - 1))
    parts[wrong] = limits[wrong] + draw(st.integers(0, 2**40))
    base = draw(st.sampled_from(["{}", "0{:o}", "0x{:x}"]))
    return ".".join(base.format(p) for p in parts)


@PROPERTY
@given(overflowing_spellings())
@example("1.2.3.4.0")  # five parts, the last 0
@example("256.0.0.1")
@example("0.0.65536")
@example("4294967296")
def test_numeric_hosts_that_overflow_are_refused(spelling: str) -> None:
    with pytest.raises(FetchRefused) as caught:
        parse_url(f"http://{spelling}/", POLICY)
    assert caught.value.code == "url_invalid"
    assert caught.value.message == "file_url host looks numeric but is not a valid IPv4 address"


@pytest.mark.parametrize("host", ["cdn.0xg", "files.0x7g", "a.1x", "0x.example", "1e9.example"])
def test_names_that_only_start_like_numbers_are_names(host: str) -> None:
    target = parse_url(f"http://{host}/", POLICY)
    assert target.host == host
    assert static_addresses(target) is None  # resolved, then checked address by address


# --- control and whitespace characters ------------------------------------------------

UNPRINTABLE = st.characters(categories=["Cc", "Cf", "Co", "Cn", "Cs", "Zl", "Zp", "Zs"])
BASES = [
    "http://files.example.com/a/b.png?sig=x",
    "https://127.0.0.1/",
    "http://[2001:db8::1]:443/x",
]


@PROPERTY
@given(st.sampled_from(BASES), st.integers(min_value=0), UNPRINTABLE)
@example(BASES[0], len(BASES[0]), "\x00")  # NUL at the end of the path
@example(BASES[0], 30, "\x7f")  # DEL in the path
@example(BASES[0], 26, "\u202e")  # RIGHT-TO-LEFT OVERRIDE in the path
@example("http://127.0.0.1/", 16, "\u200b")  # 127.0.0.<ZWSP>1
@example(BASES[0], 9, " ")
@example(BASES[0], 9, "\xa0")
@example(BASES[0], 9, "\u2028")
@example(BASES[0], 9, "\x85")
def test_a_control_or_space_character_anywhere_is_refused(base: str, index: int, ch: str) -> None:
    index %= len(base) + 1
    url = base[:index] + ch + base[index:]
    with pytest.raises(FetchRefused) as caught:
        parse_url(url, POLICY)
    assert caught.value.code == "url_invalid"
    assert caught.value.message == (
        "file_url contains whitespace or control characters; percent-encode them"
    )


# --- the rest of parse_url, exactly -----------------------------------------------------


@pytest.mark.parametrize(
    ("url", "code", "message"),
    [
        ("", "url_invalid", "file_url is empty; expected an http:// or https:// URL"),
        (
            "http://a.example\\b",
            "url_invalid",
            "file_url contains a backslash; use '/' or percent-encode it",
        ),
        ("http:a.example/", "url_invalid", "file_url must look like http://host/path"),
        (
            "http://?@127.0.0.1/",
            "url_invalid",
            "file_url has no host; expected http(s)://host/path",
        ),
        ("http:///etc/passwd", "url_invalid", "file_url has no host; expected http(s)://host/path"),
        (
            "http://user@a.example/",
            "url_credentials_not_allowed",
            "file_url contains credentials (user@host); they are not accepted, "
            "use a pre-signed URL instead",
        ),
        (
            "http",
            "url_scheme_not_allowed",
            "file_url has no scheme; it must start with http:// or https://",
        ),
        (
            "1http://a.example/",
            "url_scheme_not_allowed",
            "file_url has no scheme; it must start with http:// or https://",
        ),
        (
            "httpé://a.example/",
            "url_scheme_not_allowed",
            "file_url has no scheme; it must start with http:// or https://",
        ),
        (
            "ht/tp://a.example/",
            "url_scheme_not_allowed",
            "file_url has no scheme; it must start with http:// or https://",
        ),
        (
            "s3://bucket/key",
            "url_scheme_not_allowed",
            "file_url scheme 's3' is not accepted; use http or https",
        ),
        (
            "git+ssh://a.example/",
            "url_scheme_not_allowed",
            "file_url scheme 'git+ssh' is not accepted; use http or https",
        ),
        (
            "abcdefghijklmnopqrstuvwxyz0123://a.example/",
            "url_scheme_not_allowed",
            "file_url scheme 'abcdefghijklmnopqrst' is not accepted; use http or https",
        ),
        (
            "http://[::1/",
            "url_invalid",
            "file_url has an unterminated IPv6 address; expected [address]",
        ),
        (
            "http://[fe80::1%25eth0]/",
            "url_invalid",
            "file_url has an IPv6 zone identifier; zones are not accepted",
        ),
        ("http://[::g]/", "url_invalid", "file_url has a malformed IPv6 address in brackets"),
        (
            "http://[::1]x]/",
            "url_invalid",
            "file_url has text after the IPv6 address; expected :port or /",
        ),
        (
            "http://[::1]:/",
            "url_invalid",
            "file_url has a malformed port; expected a number 1..65535",
        ),
        (
            "http://a.example:000080/",
            "url_invalid",
            "file_url has a malformed port; expected a number 1..65535",
        ),
        (
            "http://a.example:0/",
            "url_invalid",
            "file_url port 0 is out of range; expected 1..65535",
        ),
        (
            "http://a.example:65536/",
            "url_invalid",
            "file_url port 65536 is out of range; expected 1..65535",
        ),
        (
            "http://%31%32%37.0.0.1/",
            "url_invalid",
            "file_url host is percent-encoded; write the host name plainly",
        ),
        (
            "http://::1/",
            "url_invalid",
            "file_url host contains ':'; write IPv6 addresses in brackets",
        ),
        (
            "http://" + "é" * 60 + ".example/",
            "url_invalid",
            "file_url host is not a valid internationalised name",
        ),
        (
            "http://a..example/",
            "url_invalid",
            "file_url host has an empty label; expected a name like files.example.com",
        ),
        (
            "http://a*b.example/",
            "url_invalid",
            "file_url host has characters not allowed in a host name",
        ),
        (
            "http://" + "a" * 64 + ".example/",
            "url_invalid",
            "file_url host name is too long (RFC 1035: 253 characters, 63 a label)",
        ),
    ],
)
def test_each_refusal_has_its_code_and_words(url: str, code: str, message: str) -> None:
    with pytest.raises(FetchRefused) as caught:
        parse_url(url, POLICY)
    assert (caught.value.code, caught.value.message) == (code, message)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("1ftp://a/", "callback_url has no scheme; it must start with http:// or https://"),
        ("http://[::1/", "callback_url has an unterminated IPv6 address; expected [address]"),
        (
            "http://a..b/",
            "callback_url host has an empty label; expected a name like files.example.com",
        ),
        ("http://a.example:x/", "callback_url has a malformed port; expected a number 1..65535"),
    ],
)
def test_refusals_name_the_field_they_were_given(url: str, message: str) -> None:
    with pytest.raises(FetchRefused) as caught:
        parse_url(url, POLICY, field="callback_url")
    assert caught.value.message == message


def test_a_url_of_exactly_the_maximum_length_passes_and_one_more_is_refused() -> None:
    policy = EgressPolicy(max_url_length=40)
    url = "https://files.example.com/" + "a" * 14
    assert len(url) == 40
    assert parse_url(url, policy).path_and_query == "/" + "a" * 14
    with pytest.raises(FetchRefused) as caught:
        parse_url(url + "b", policy)
    assert caught.value.message == "file_url is 41 characters long; at most 40 are accepted"


def test_a_url_without_a_path_requests_the_root() -> None:
    target = parse_url("https://files.example.com", POLICY)
    assert target.path_and_query == "/"
    assert target.url == "https://files.example.com/"


def test_only_the_first_hash_starts_the_fragment() -> None:
    assert parse_url("http://a.example/a?b=1#c#d", POLICY).path_and_query == "/a?b=1"


def test_a_bracketed_address_keeps_its_port() -> None:
    policy = EgressPolicy(allow_ports=frozenset({443, 8443}))
    target = parse_url("http://[2001:4860::1]:8443/x", policy)
    assert (target.port, target.host_header) == (8443, "[2001:4860::1]:8443")
    assert target.url == "http://[2001:4860::1]:8443/x"
    assert parse_url("https://[2001:4860::1]:443/", policy).host_header == "[2001:4860::1]"
    with pytest.raises(FetchRefused) as caught:
        parse_url("http://[2001:4860::1]:8080/", policy)
    assert caught.value.code == "url_port_not_allowed"


@pytest.mark.parametrize(("text", "port"), [("1", 1), ("65535", 65535), ("00080", 80)])
def test_the_edge_ports_are_read(text: str, port: int) -> None:
    policy = EgressPolicy(allow_ports=frozenset({1, 80, 65535}))
    assert parse_url(f"http://a.example:{text}/", policy).port == port
    assert parse_url(f"http://[2001:4860::1]:{text}/", policy).port == port


def test_a_name_of_every_allowed_character_passes() -> None:
    host = "abcdefghijklmnopqrstuvwxyz-0123456789_.example"
    assert parse_url(f"http://{host.upper()}/", POLICY).host == host


def test_names_at_the_dns_length_limits_pass_and_one_more_is_refused() -> None:
    label = "a" * 63
    longest = f"{label}.{label}.{label}.{'b' * 61}"
    assert len(longest) == 253
    assert parse_url(f"http://{longest}/", POLICY).host == longest
    for too_long in (longest + "b", f"{label}b.example"):
        with pytest.raises(FetchRefused) as caught:
            parse_url(f"http://{too_long}/", POLICY)
        assert "too long" in caught.value.message


# --- addresses as resolvers hand them over ------------------------------------------


@PROPERTY
@given(
    st.ip_addresses(v=6) | st.sampled_from(["::1", "fe80::1", "fd00:ec2::254", "2001:db8::1"]),
    st.text(st.characters(codec="ascii", categories=["L", "N"]), min_size=1, max_size=8),
)
@example("::1", "lo")
def test_a_scope_never_changes_the_class(address: object, scope: str) -> None:
    text = str(address)
    assert classify(f"{text}%{scope}") == classify(text)
    assert classify(ipaddress.IPv6Address(f"{text}%{scope}")) == classify(text)


def test_an_allowed_scoped_address_is_allowed() -> None:
    policy = EgressPolicy(allow_networks=parse_networks(["::1/128"]))
    check_address("::1%lo", policy)
    check_address(ipaddress.IPv6Address("::1%lo"), policy)


def test_the_refusal_names_the_class_in_full_words() -> None:
    with pytest.raises(FetchRefused) as caught:
        check_address("192.168.1.1", POLICY)
    assert caught.value.message == (
        "file_url leads to a non-public address (private); berkas fetches only from "
        "public addresses"
    )


# --- policy validation, at its edges ----------------------------------------------------


def test_the_smallest_sane_policy_is_accepted() -> None:
    policy = EgressPolicy(
        allow_ports=frozenset({1, 65535}),
        max_redirects=0,
        connect_timeout=0.5,
        read_timeout=0.5,
        total_timeout=0.5,
        max_url_length=16,
    )
    assert policy.max_redirects == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"allow_networks": (ipaddress.ip_network("0.0.0.0/0"),)},
            "allow_networks: 0.0.0.0/0 allows every address and so switches the fetch guard "
            "off; name the networks you trust",
        ),
        ({"allow_ports": frozenset({80, 0})}, "allow_ports: 0 is not a TCP port"),
        (
            {"allow_ports": frozenset()},
            "allow_ports is empty; name at least one port (or disable fetching)",
        ),
        ({"max_redirects": -1}, "max_redirects must be 0 or more; got -1"),
        ({"read_timeout": 0}, "read_timeout must be a positive number of seconds"),
        ({"max_url_length": 15}, "max_url_length must be at least 16; got 15"),
    ],
)
def test_a_refused_policy_says_which_setting_and_why(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=rf"^{re.escape(message)}$"):
        EgressPolicy(**kwargs)  # type: ignore[arg-type]


def test_parse_networks_names_its_field_when_refusing_a_catch_all() -> None:
    with pytest.raises(
        ValueError, match=r"^BERKAS_FETCH_ALLOW_NETWORKS: ::/0 allows every address"
    ):
        parse_networks(["::/0"], field="BERKAS_FETCH_ALLOW_NETWORKS")
