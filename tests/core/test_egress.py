"""The egress policy: URL normalisation, address classes, and what operators may widen."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from berkas.core.egress import (
    EgressPolicy,
    check_address,
    check_ports,
    classify,
    parse_networks,
    parse_url,
    static_addresses,
)
from berkas.core.errors import FetchRefused

POLICY = EgressPolicy()


def refused(url: str, policy: EgressPolicy = POLICY) -> FetchRefused:
    with pytest.raises(FetchRefused) as info:
        parse_url(url, policy)
    return info.value


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("http://127.1/", "127.0.0.1"),
        ("http://2130706433/", "127.0.0.1"),
        ("http://0x7f000001/", "127.0.0.1"),
        ("http://0X7F000001/", "127.0.0.1"),
        ("http://0177.0.0.1/", "127.0.0.1"),
        ("http://0x7f.1/", "127.0.0.1"),
        ("http://127.0.0.1./", "127.0.0.1"),
        ("http://0/", "0.0.0.0"),  # noqa: S104  # an address under test; nothing binds
        ("http://0x/", "0.0.0.0"),  # noqa: S104  # as above
        ("http://169.254.43518/", "169.254.169.254"),
        ("http://[::FFFF:127.0.0.1]/", "::ffff:7f00:1"),
        ("http://[0:0:0:0:0:0:0:1]/", "::1"),
        ("http://Files.Example.COM./x", "files.example.com"),
        ("http://bücher.example/", "xn--bcher-kva.example"),
    ],
)
def test_hosts_are_normalised_to_the_address_or_name_they_denote(url: str, host: str) -> None:
    assert parse_url(url, POLICY).host == host


def test_numeric_hosts_never_reach_dns_they_are_addresses() -> None:
    target = parse_url("http://0x7f000001:443/a", POLICY)
    assert static_addresses(target) == (ipaddress.ip_address("127.0.0.1"),)


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST.", "api.localhost"])
def test_localhost_names_are_loopback_without_asking_dns(host: str) -> None:
    addresses = static_addresses(parse_url(f"http://{host}/", POLICY))
    assert addresses is not None
    assert {classify(a) for a in addresses} == {"loopback"}


def test_plain_names_need_resolving() -> None:
    assert static_addresses(parse_url("https://files.example.com/", POLICY)) is None


def test_target_keeps_path_and_query_drops_fragment_and_names_non_default_ports() -> None:
    target = parse_url("HTTPS://Files.Example.com:80/a/b.png?sig=x%2Fy#frag", POLICY)
    assert target.scheme == "https"
    assert target.port == 80
    assert target.path_and_query == "/a/b.png?sig=x%2Fy"
    assert target.host_header == "files.example.com:80"
    assert target.url == "https://files.example.com:80/a/b.png?sig=x%2Fy"


def test_default_port_is_left_out_of_host_header_and_ipv6_is_bracketed() -> None:
    assert parse_url("https://files.example.com:443", POLICY).host_header == "files.example.com"
    assert parse_url("http://[2001:4860::1]/", POLICY).host_header == "[2001:4860::1]"
    assert parse_url("http://x.example?q=1", POLICY).path_and_query == "/?q=1"


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("", "url_invalid"),
        ("http://", "url_invalid"),
        ("http:///etc/passwd", "url_invalid"),
        ("http:example.com/", "url_invalid"),
        ("http://exa mple.com/", "url_invalid"),
        ("http://example.com/\t", "url_invalid"),
        ("http://example.com\\@127.0.0.1/", "url_invalid"),
        ("http://%31%32%37.0.0.1/", "url_invalid"),
        ("http://1.2.3.4.5/", "url_invalid"),
        ("http://256.0.0.1/", "url_invalid"),
        ("http://0x100000000/", "url_invalid"),
        ("http://08.0.0.1/", "url_invalid"),
        ("http://1_0.0.0.1/", "url_invalid"),
        ("http://a..b/", "url_invalid"),
        ("http://[::1/", "url_invalid"),
        ("http://[::1]x/", "url_invalid"),
        ("http://[fe80::1%25eth0]/", "url_invalid"),
        ("http://[::ffff:0177.0.0.1]/", "url_invalid"),
        ("http://::1/", "url_invalid"),
        ("http://example.com:/", "url_invalid"),
        ("http://example.com:0/", "url_invalid"),
        ("http://example.com:65536/", "url_invalid"),
        ("http://example.com:+80/", "url_invalid"),
        ("http://" + "a" * 64 + ".example/", "url_invalid"),
        ("http://example.com/" + "a" * 2048, "url_invalid"),
        ("ftp://example.com/", "url_scheme_not_allowed"),
        ("example.com/a.png", "url_scheme_not_allowed"),
        ("//example.com/a.png", "url_scheme_not_allowed"),
        ("http://example.com:8080/", "url_port_not_allowed"),
        ("http://user:pw@example.com/", "url_credentials_not_allowed"),
        ("http://@example.com/", "url_credentials_not_allowed"),
    ],
)
def test_refused_urls_carry_their_own_code(url: str, code: str) -> None:
    assert refused(url).code == code


def test_messages_name_the_field_and_what_is_accepted() -> None:
    assert refused("http://example.com:8080/").message == (
        "file_url port 8080 is not accepted; allowed ports: 80, 443"
    )
    assert "use http or https" in refused("gopher://example.com/").message
    assert "at most 2048" in refused("http://example.com/" + "a" * 3000).message


def test_operators_may_allow_more_ports_and_longer_urls() -> None:
    policy = EgressPolicy(allow_ports=frozenset({443, 8443}), max_url_length=5000)
    assert parse_url("https://example.com:8443/" + "a" * 3000, policy).port == 8443
    assert refused("http://example.com/", policy).code == "url_port_not_allowed"


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("::1", "loopback"),
        ("0.0.0.0", "unspecified"),  # noqa: S104  # as above
        ("0.1.2.3", "unspecified"),
        ("::", "unspecified"),
        ("10.1.2.3", "private"),
        ("172.31.255.255", "private"),
        ("192.168.0.1", "private"),
        ("100.64.0.1", "shared address space (CGNAT)"),
        ("169.254.169.254", "link-local (cloud metadata)"),
        ("169.254.170.2", "link-local (cloud metadata)"),
        ("100.100.100.200", "shared address space (cloud metadata)"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("febf::1", "link-local"),
        ("fd00:ec2::254", "unique-local (cloud metadata)"),
        ("fd12:3456::1", "unique-local"),
        ("fec0::1", "site-local"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("ff02::1", "multicast"),
        ("255.255.255.255", "broadcast"),
        ("240.0.0.1", "reserved"),
        ("192.0.0.8", "reserved (IETF protocol assignments)"),
        ("192.0.2.1", "documentation"),
        ("198.51.100.7", "documentation"),
        ("203.0.113.9", "documentation"),
        ("2001:db8::1", "documentation"),
        ("3fff::1", "documentation"),
        ("198.18.0.1", "benchmarking"),
        ("2001:2::1", "benchmarking"),
        ("100::1", "reserved (discard-only)"),
        ("2001:10::1", "reserved (IETF protocol assignments)"),
        ("4000::1", "reserved"),
        # Wrapped IPv4: the packet ends at the embedded address.
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "link-local (cloud metadata)"),
        ("::127.0.0.1", "loopback"),
        ("::10.0.0.1", "private"),
        ("64:ff9b::10.0.0.1", "private"),
        ("64:ff9b::127.0.0.1", "loopback"),
        ("64:ff9b:1::a9fe:a9fe", "link-local (cloud metadata)"),
        ("64:ff9b:1:ab::808:808", "reserved (NAT64 local-use)"),
        ("2002:a00:1::1", "private"),
        ("2002:7f00:1::", "loopback"),
        ("2002:a9fe:a9fe::", "link-local (cloud metadata)"),
        ("2001:0:4136:e378:8000:63bf:f5ff:fffe", "private"),  # Teredo client 10.0.0.1
        ("2001:0:a00:1:8000:63bf:f7f7:f7f7", "private"),  # Teredo server 10.0.0.1
    ],
)
def test_non_public_addresses_are_named_by_class(address: str, kind: str) -> None:
    assert classify(address) == kind


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "1.1.1.1",
        "93.184.216.34",
        "2606:4700:4700::1111",
        "2001:4860:4860::8888",
        "::ffff:8.8.8.8",
        "64:ff9b::8.8.8.8",
        "64:ff9b:1::8.8.8.8",
        "2002:808:808::1",
        "2001:0:4136:e378:8000:63bf:f7f7:f7f7",  # Teredo, public server and client 8.8.8.8
    ],
)
def test_public_addresses_pass(address: str) -> None:
    assert classify(address) is None
    check_address(address, POLICY)


@given(st.ip_addresses(v=4))
def test_ipv6_wrappings_of_an_ipv4_address_classify_like_it(v4: ipaddress.IPv4Address) -> None:
    n = int(v4)
    wrapped = [
        ipaddress.IPv6Address((0xFFFF << 32) | n),  # IPv4-mapped
        ipaddress.IPv6Address((0x0064FF9B << 96) | n),  # NAT64 well-known
        ipaddress.IPv6Address((0x2002 << 112) | (n << 80)),  # 6to4
    ]
    for address in wrapped:
        assert classify(address) == classify(v4)


@given(st.ip_addresses(network="10.0.0.0/8") | st.ip_addresses(network="fc00::/7"))
def test_every_address_of_a_private_range_is_refused(address: ipaddress._BaseAddress) -> None:
    assert isinstance(address, ipaddress.IPv4Address | ipaddress.IPv6Address)
    with pytest.raises(FetchRefused) as info:
        check_address(address, POLICY)
    assert info.value.code == "address_not_allowed"


def test_refusal_names_the_class_never_the_address() -> None:
    with pytest.raises(FetchRefused) as info:
        check_address("10.20.30.40", POLICY)
    assert info.value.code == "address_not_allowed"
    assert "private" in info.value.message
    assert "10.20.30.40" not in info.value.message


def test_allowed_networks_let_operators_reach_named_internal_ranges() -> None:
    policy = EgressPolicy(allow_networks=parse_networks(["127.0.0.0/8", "10.1.0.0/16"]))
    check_address("127.0.0.1", policy)
    check_address("10.1.2.3", policy)
    for still_refused in ("10.2.0.1", "::1", "169.254.169.254"):
        with pytest.raises(FetchRefused):
            check_address(still_refused, policy)


def test_allowed_ipv4_network_does_not_match_ipv6_addresses_by_integer_value() -> None:
    # ipaddress's ``in`` compares integers only; ::a01:203 must not count as 10.1.2.3.
    policy = EgressPolicy(allow_networks=(ipaddress.ip_network("10.1.0.0/16"),))
    with pytest.raises(FetchRefused):
        check_address("::a01:203", policy)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"allow_networks": (ipaddress.ip_network("0.0.0.0/0"),)},
        {"allow_networks": (ipaddress.ip_network("::/0"),)},
        {"allow_ports": frozenset({0})},
        {"allow_ports": frozenset()},
        {"max_redirects": -1},
        {"connect_timeout": 0},
        {"total_timeout": -1.0},
        {"max_url_length": 0},
    ],
)
def test_unsafe_or_nonsensical_policies_are_refused_at_start_up(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"\w"):
        EgressPolicy(**kwargs)  # type: ignore[arg-type]


def test_parse_networks_refuses_host_bits_so_a_typo_cannot_widen_the_list() -> None:
    with pytest.raises(ValueError, match=r"^allow_networks: '10\.0\.0\.1/8' is not a CIDR network"):
        parse_networks(["10.0.0.1/8"])
    assert parse_networks([]) == ()


@pytest.mark.parametrize("text", ["0.0.0.0/0", "::/0"])
def test_parse_networks_refuses_a_catch_all_that_would_switch_the_guard_off(text: str) -> None:
    with pytest.raises(ValueError, match="allows every address"):
        parse_networks([text])


def test_parse_networks_names_the_field_it_is_given_and_keeps_both_families() -> None:
    assert parse_networks(["127.0.0.0/8", "::1/128"], field="X") == (
        ipaddress.ip_network("127.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
    )
    with pytest.raises(ValueError, match=r"^X: 'nope' is not a CIDR network"):
        parse_networks(["nope"], field="X")


@pytest.mark.parametrize("port", [0, 65536, -1])
def test_check_ports_refuses_what_is_not_a_tcp_port(port: int) -> None:
    with pytest.raises(ValueError, match=rf"^allow_ports: {port} is not a TCP port"):
        check_ports([80, port])
    check_ports([1, 80, 65535])


def test_default_user_agent_names_berkas() -> None:
    assert POLICY.user_agent.startswith("berkas/")
