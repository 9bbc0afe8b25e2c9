"""The SSRF-guarded fetcher against real loopback servers.

No test leaves loopback: every fetcher here uses ``LoopbackOnlyNetwork``, which records
each TCP connect and refuses any that is not to a loopback address, and a ``FakeResolver``
(the system resolver is only asked about a literal address).
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import socket
import ssl
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence

import anyio
import httpcore
import pytest

from berkas.adapters.fetch import GuardedFetcher, system_resolver
from berkas.core.codes import Code
from berkas.core.egress import EgressPolicy, FetchResult
from berkas.core.errors import FetchRefused, PayloadTooLarge
from tests.support.fixture_server import (
    FixtureServer,
    drip,
    endless,
    free_port,
    redirect,
    send,
    tls_pair,
    wait_until,
)

pytestmark = pytest.mark.anyio

MB = 1_000_000
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)


@pytest.fixture
def anyio_backend() -> str:
    # The fetcher's total bound and default resolver are asyncio's (as is uvicorn).
    return "asyncio"


class CountingStream(httpcore.AsyncNetworkStream):
    """A real connection that adds every byte read from it to its network's tally."""

    def __init__(self, inner: httpcore.AsyncNetworkStream, network: LoopbackOnlyNetwork) -> None:
        self._inner = inner
        self._network = network

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        data = await self._inner.read(max_bytes, timeout=timeout)
        self._network.bytes_read += len(data)
        return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout=timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        inner = await self._inner.start_tls(ssl_context, server_hostname, timeout)
        return CountingStream(inner, self._network)

    def get_extra_info(self, info: str) -> object:
        return self._inner.get_extra_info(info)


class LoopbackOnlyNetwork(httpcore.AsyncNetworkBackend):
    """Records every connect and counts every byte read; only loopback connects are made."""

    def __init__(self) -> None:
        self.connects: list[tuple[str, int]] = []
        self.bytes_read = 0
        self._real = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.connects.append((host, port))
        if not ipaddress.ip_address(host).is_loopback:
            raise httpcore.ConnectError(f"test network refuses non-loopback {host}")
        return CountingStream(await self._real.connect_tcp(host, port, timeout=timeout), self)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("no unix sockets in tests")

    async def sleep(self, seconds: float) -> None:
        await self._real.sleep(seconds)


class FakeResolver:
    """Answers from a table; a list of answers per name gives one answer per lookup."""

    def __init__(self, answers: Mapping[str, Sequence[Sequence[str]]] | None = None) -> None:
        self.answers = dict(answers or {})
        self.calls: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.calls.append((host, port))
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        answers = self.answers[host]
        return list(answers[min(len(self.calls_for(host)) - 1, len(answers) - 1)])

    def calls_for(self, host: str) -> list[tuple[str, int]]:
        return [call for call in self.calls if call[0] == host]


class Collected:
    """A ``FetchSink`` keeping what it got; it counts against ``max_bytes`` as the spool does."""

    def __init__(self, max_bytes: int = MB) -> None:
        self.chunks: list[bytes] = []
        self.max_bytes = max_bytes
        self.announced: list[int] = []

    def _refuse(self) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"over the {self.max_bytes} bytes LOGO accepts", code=Code.FILE_TOO_LARGE
        )

    def expect(self, length: int) -> None:
        self.announced.append(length)
        if length > self.max_bytes:
            raise self._refuse()

    async def write(self, chunk: bytes) -> None:
        if len(self.data) + len(chunk) > self.max_bytes:
            raise self._refuse()
        self.chunks.append(chunk)

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks)


def fetcher(
    policy: EgressPolicy,
    answers: Mapping[str, Sequence[Sequence[str]]] | None = None,
    **kwargs: object,
) -> tuple[GuardedFetcher, FakeResolver, LoopbackOnlyNetwork]:
    resolver, network = FakeResolver(answers), LoopbackOnlyNetwork()
    return GuardedFetcher(policy, resolver, network=network, **kwargs), resolver, network  # type: ignore[arg-type]


async def refusal(guarded: GuardedFetcher, url: str, sink: Collected | None = None) -> FetchRefused:
    with pytest.raises(FetchRefused) as info:
        await guarded.fetch(url, sink or Collected())
    return info.value


@pytest.fixture
def server() -> Iterator[FixtureServer]:
    with FixtureServer("127.0.0.1") as running:
        yield running


def allowing(*servers: FixtureServer, **kwargs: object) -> EgressPolicy:
    """Loopback allowed and the fixtures' ports open, everything else default."""
    ports = frozenset({80, 443, *(s.port for s in servers)})
    return EgressPolicy(allow_networks=LOOPBACK, allow_ports=ports, **kwargs)  # type: ignore[arg-type]


# --- Hostile URLs under the default policy: refused, and nothing connected. ---------------

# The sentinel fixture listens on 127.0.0.1:{port}; every URL naming it must be refused
# before a connection is made. "{port}" is the sentinel's port.
HOSTILE = [
    # loopback, however it is spelled
    ("http://127.0.0.1:{port}/", "address_not_allowed"),
    ("http://127.1:{port}/", "address_not_allowed"),
    ("http://2130706433:{port}/", "address_not_allowed"),
    ("http://0x7f000001:{port}/", "address_not_allowed"),
    ("http://0177.0.0.1:{port}/", "address_not_allowed"),
    ("http://0x7f.0.0.1:{port}/", "address_not_allowed"),
    ("http://127.0.0.1.:{port}/", "address_not_allowed"),
    ("http://127.000.000.001:{port}/", "address_not_allowed"),
    ("http://[::1]:{port}/", "address_not_allowed"),
    ("http://[::ffff:127.0.0.1]:{port}/", "address_not_allowed"),
    ("http://[::ffff:7f00:1]:{port}/", "address_not_allowed"),
    ("http://[::127.0.0.1]:{port}/", "address_not_allowed"),
    ("http://localhost:{port}/", "address_not_allowed"),
    ("http://LOCALHOST.:{port}/", "address_not_allowed"),
    ("http://uploads.localhost:{port}/", "address_not_allowed"),
    ("http://loopback.test:{port}/", "address_not_allowed"),
    # unspecified (Linux connects these to the local host)
    ("http://0.0.0.0:{port}/", "address_not_allowed"),
    ("http://0:{port}/", "address_not_allowed"),
    ("http://[::]:{port}/", "address_not_allowed"),
    # cloud metadata
    ("http://169.254.169.254/latest/meta-data/", "address_not_allowed"),
    ("http://169.254.43518/latest/meta-data/", "address_not_allowed"),
    ("http://[fd00:ec2::254]/latest/meta-data/", "address_not_allowed"),
    ("http://metadata.google.internal/computeMetadata/v1/", "address_not_allowed"),
    ("http://[::ffff:169.254.169.254]/", "address_not_allowed"),
    ("http://100.100.100.200/latest/meta-data/", "address_not_allowed"),
    # private, shared, link-local, multicast, broadcast, reserved, documentation, benchmark
    ("http://10.0.0.1/", "address_not_allowed"),
    ("http://172.16.0.1/", "address_not_allowed"),
    ("http://192.168.1.1/", "address_not_allowed"),
    ("http://100.64.0.1/", "address_not_allowed"),
    ("http://[fe80::1]/", "address_not_allowed"),
    ("http://[fc00::1]/", "address_not_allowed"),
    ("http://224.0.0.1/", "address_not_allowed"),
    ("http://255.255.255.255/", "address_not_allowed"),
    ("http://240.0.0.1/", "address_not_allowed"),
    ("http://192.0.2.1/", "address_not_allowed"),
    ("http://198.18.0.1/", "address_not_allowed"),
    ("http://[2001:db8::1]/", "address_not_allowed"),
    # IPv6 forms that carry a private IPv4 address
    ("http://[64:ff9b::a00:1]/", "address_not_allowed"),
    ("http://[64:ff9b::7f00:1]:{port}/", "address_not_allowed"),
    ("http://[64:ff9b:1::a00:1]/", "address_not_allowed"),
    ("http://[2002:a00:1::1]/", "address_not_allowed"),
    ("http://[2002:7f00:1::1]:{port}/", "address_not_allowed"),
    ("http://[2001:0:4136:e378:8000:63bf:f5ff:fffe]/", "address_not_allowed"),
    # names whose DNS answers are not all public
    ("http://internal.test/", "address_not_allowed"),
    ("http://mixed.test/", "address_not_allowed"),
    ("http://mapped.test/", "address_not_allowed"),
    # credentials
    ("http://user:pass@127.0.0.1:{port}/", "url_credentials_not_allowed"),
    ("http://good.example@127.0.0.1:{port}/", "url_credentials_not_allowed"),
    ("http://@127.0.0.1:{port}/", "url_credentials_not_allowed"),
    ("http://user@files.example.com/", "url_credentials_not_allowed"),
    # schemes
    ("file:///etc/passwd", "url_scheme_not_allowed"),
    ("gopher://127.0.0.1:{port}/_GET%20/", "url_scheme_not_allowed"),
    ("ftp://127.0.0.1:{port}/", "url_scheme_not_allowed"),
    ("data:image/png;base64,iVBORw0KGgo=", "url_scheme_not_allowed"),
    ("javascript:alert(1)", "url_scheme_not_allowed"),
    ("dict://127.0.0.1:{port}/info", "url_scheme_not_allowed"),
    ("ws://127.0.0.1:{port}/", "url_scheme_not_allowed"),
    ("//127.0.0.1:{port}/", "url_scheme_not_allowed"),
    # ports (the default policy allows 80 and 443 only)
    ("http://files.example.com:22/", "url_port_not_allowed"),
    ("http://files.example.com:6379/", "url_port_not_allowed"),
    ("https://files.example.com:8443/", "url_port_not_allowed"),
    ("http://127.0.0.1:25/", "url_port_not_allowed"),
    # malformed
    ("http://127.0.0.1:{port}/" + "a" * 2100, "url_invalid"),
    ("http://127.0.0.1:{port}\\@files.example.com/", "url_invalid"),
    ("http://%31%32%37.0.0.1:{port}/", "url_invalid"),
    ("http:/127.0.0.1:{port}/", "url_invalid"),
    ("http://127.0.0.1:{port}/ HTTP/1.1\r\nHost: x", "url_invalid"),
    ("http://[::1%25lo]:{port}/", "url_invalid"),
    ("http://1.2.3.4.5/", "url_invalid"),
    ("http://127.0.0.1:0/", "url_invalid"),
    # DNS
    ("http://does-not-exist.test/", "dns_failed"),
    ("http://empty-answer.test/", "dns_failed"),
]

HOSTILE_DNS: dict[str, list[list[str]]] = {
    "loopback.test": [["127.0.0.1"]],
    "metadata.google.internal": [["169.254.169.254"]],
    "internal.test": [["10.1.2.3"]],
    "mixed.test": [["93.184.216.34", "10.0.0.7"]],
    "mapped.test": [["2606:4700::1111", "::ffff:10.0.0.7"]],
    "empty-answer.test": [[]],
}


@pytest.fixture(scope="module")
def sentinel() -> Iterator[FixtureServer]:
    with FixtureServer("127.0.0.1") as running:
        running.route("/", send(200, b"should never be served"))
        yield running


def test_hostile_table_is_big_enough() -> None:
    assert len(HOSTILE) >= 50


@pytest.mark.parametrize(("template", "code"), HOSTILE)
async def test_hostile_url_is_refused_before_any_connection(
    sentinel: FixtureServer, template: str, code: str
) -> None:
    url = template.replace("{port}", str(sentinel.port))
    # The default policy, except that the sentinel's port is open: a URL wrongly let
    # through would then really reach the sentinel instead of failing on the port.
    policy = EgressPolicy(allow_ports=frozenset({80, 443, sentinel.port}))
    guarded, _resolver, network = fetcher(policy, HOSTILE_DNS)

    error = await refusal(guarded, url)

    assert error.code == code, error.message
    assert network.connects == []
    assert sentinel.connections == []


async def test_literal_addresses_and_localhost_never_ask_the_resolver(
    sentinel: FixtureServer,
) -> None:
    policy = EgressPolicy(allow_ports=frozenset({80, 443, sentinel.port}))
    guarded, resolver, _ = fetcher(policy, HOSTILE_DNS)
    for url in ("http://0x7f000001:{port}/", "http://[::1]/", "http://LOCALHOST.:{port}/"):
        await refusal(guarded, url.replace("{port}", str(sentinel.port)))
    assert resolver.calls == []


async def test_address_refusal_names_the_class_not_what_the_name_resolved_to() -> None:
    guarded, _, _ = fetcher(EgressPolicy(), HOSTILE_DNS)
    error = await refusal(guarded, "http://metadata.google.internal/computeMetadata/v1/")
    assert "link-local (cloud metadata)" in error.message
    assert "169.254" not in error.message
    error = await refusal(guarded, "http://internal.test/")
    assert "private" in error.message
    assert "10.1.2.3" not in error.message


# --- The happy path, pinned to the checked address. ---------------------------------------


async def test_fetch_delivers_the_exact_bytes_and_names_berkas(server: FixtureServer) -> None:
    body = os.urandom(300_000)
    server.route("/kyc/ktp.png", send(200, body, content_type="image/png"))
    guarded, resolver, network = fetcher(allowing(server), {"files.partner.test": [["127.0.0.1"]]})
    sink = Collected()

    result = await guarded.fetch(f"http://files.partner.test:{server.port}/kyc/ktp.png", sink)

    assert hashlib.sha256(sink.data).hexdigest() == hashlib.sha256(body).hexdigest()
    assert result == FetchResult(
        url=f"http://files.partner.test:{server.port}/kyc/ktp.png",
        status=200,
        content_type="image/png",
        size=len(body),
    )
    [seen] = server.requests
    assert seen.headers["host"] == f"files.partner.test:{server.port}"
    assert seen.headers["user-agent"].startswith("berkas/")
    assert seen.headers["accept-encoding"] == "identity"
    # The request kept the name; the TCP connection went to the address that was checked.
    assert network.connects == [("127.0.0.1", server.port)]
    assert resolver.calls == [("files.partner.test", server.port)]


async def test_default_network_and_system_resolver_work_for_a_literal_address(
    server: FixtureServer,
) -> None:
    server.route("/a", send(200, b"hello"))
    sink = Collected()
    result = await GuardedFetcher(allowing(server)).fetch(server.url("/a"), sink)
    assert (result.status, sink.data) == (200, b"hello")
    # getaddrinfo on a numeric host answers without DNS.
    assert await system_resolver("127.0.0.1", 80) == ["127.0.0.1"]


async def test_ipv6_literal_is_pinned_and_bracketed_in_host() -> None:
    with FixtureServer("::1") as v6:
        v6.route("/x", send(200, b"six"))
        policy = EgressPolicy(
            allow_networks=(ipaddress.ip_network("::1/128"),), allow_ports=frozenset({v6.port})
        )
        guarded, resolver, network = fetcher(policy)
        sink = Collected()
        await guarded.fetch(f"http://[0:0::1]:{v6.port}/x", sink)
        assert sink.data == b"six"
        assert v6.requests[0].headers["host"] == f"[::1]:{v6.port}"
        assert network.connects == [("::1", v6.port)]
        assert resolver.calls == []


# --- DNS: every answer checked, one lookup per hop, never a second one. ----------------


async def test_a_name_answering_public_and_private_is_refused(server: FixtureServer) -> None:
    server.route("/", send(200, b"x"))
    guarded, _, network = fetcher(
        EgressPolicy(
            allow_networks=(ipaddress.ip_network("127.0.0.1/32"),),
            allow_ports=frozenset({server.port}),
        ),
        {"both.test": [["127.0.0.1", "10.0.0.1"]]},
    )
    error = await refusal(guarded, f"http://both.test:{server.port}/")
    assert error.code == "address_not_allowed"
    assert network.connects == []
    assert server.connections == []


async def test_rebinding_name_is_looked_up_once_and_the_connection_goes_to_that_answer(
    server: FixtureServer,
) -> None:
    # First answer allowed (127.0.0.1 plays "public" here), any later one private.
    server.route("/doc", send(200, b"document"))
    policy = EgressPolicy(
        allow_networks=(ipaddress.ip_network("127.0.0.1/32"),),
        allow_ports=frozenset({server.port}),
    )
    guarded, resolver, network = fetcher(policy, {"rebind.test": [["127.0.0.1"], ["10.0.0.1"]]})
    sink = Collected()

    await guarded.fetch(f"http://rebind.test:{server.port}/doc", sink)

    assert sink.data == b"document"
    assert resolver.calls == [("rebind.test", server.port)]
    assert network.connects == [("127.0.0.1", server.port)]


async def test_each_redirect_hop_is_resolved_once_and_checked_again(
    server: FixtureServer,
) -> None:
    server.route("/hop", redirect(f"http://rebind.test:{server.port}/doc"))
    server.route("/doc", send(200, b"document"))
    policy = EgressPolicy(
        allow_networks=(ipaddress.ip_network("127.0.0.1/32"),),
        allow_ports=frozenset({server.port}),
    )
    guarded, resolver, network = fetcher(policy, {"rebind.test": [["127.0.0.1"], ["10.0.0.1"]]})

    error = await refusal(guarded, f"http://rebind.test:{server.port}/hop")

    assert error.code == "address_not_allowed"
    assert "after 1 redirect" in error.message
    assert resolver.calls == [("rebind.test", server.port)] * 2
    assert network.connects == [("127.0.0.1", server.port)]
    assert [r.path for r in server.requests] == ["/hop"]


async def test_unresolvable_name_is_dns_failed_and_names_the_host() -> None:
    guarded, _, network = fetcher(EgressPolicy())
    error = await refusal(guarded, "https://nowhere.test/a.png")
    assert error.code == "dns_failed"
    assert "nowhere.test" in error.message
    assert network.connects == []


# --- Redirects. -------------------------------------------------------------------------


@pytest.fixture
def second_loopback() -> Iterator[FixtureServer]:
    # 127.0.0.2 is loopback too, and outside the 127.0.0.1/32 the tests below allow.
    with FixtureServer("127.0.0.2") as running:
        running.route("/", send(200, b"internal admin panel"))
        yield running


def only_first_loopback(*servers: FixtureServer, **kwargs: object) -> EgressPolicy:
    return EgressPolicy(
        allow_networks=(ipaddress.ip_network("127.0.0.1/32"),),
        allow_ports=frozenset({80, 443, *(s.port for s in servers)}),
        **kwargs,  # type: ignore[arg-type]
    )


async def test_redirect_to_a_disallowed_address_is_refused_at_the_hop(
    server: FixtureServer, second_loopback: FixtureServer
) -> None:
    server.route("/start", redirect(second_loopback.url("/")))
    guarded, _, network = fetcher(only_first_loopback(server, second_loopback))

    error = await refusal(guarded, server.url("/start"))

    assert error.code == "address_not_allowed"
    assert "loopback" in error.message
    assert second_loopback.connections == []
    assert network.connects == [("127.0.0.1", server.port)]


async def test_redirect_to_a_name_resolving_to_a_disallowed_address_is_refused(
    server: FixtureServer, second_loopback: FixtureServer
) -> None:
    server.route("/start", redirect(f"http://admin.test:{second_loopback.port}/"))
    guarded, _, _ = fetcher(
        only_first_loopback(server, second_loopback), {"admin.test": [["127.0.0.2"]]}
    )
    error = await refusal(guarded, f"http://127.0.0.1:{server.port}/start")
    assert error.code == "address_not_allowed"
    assert second_loopback.connections == []


@pytest.mark.parametrize(
    ("location", "code"),
    [
        ("file:///etc/passwd", "url_scheme_not_allowed"),
        ("http://169.254.169.254/latest/meta-data/", "address_not_allowed"),
        ("http://user:pw@127.0.0.1/", "url_credentials_not_allowed"),
        ("http://127.0.0.1:22/", "url_port_not_allowed"),
    ],
)
async def test_every_hop_is_checked_like_the_first_url(
    server: FixtureServer, location: str, code: str
) -> None:
    server.route("/start", redirect(location, status=301))
    guarded, _, network = fetcher(only_first_loopback(server))
    error = await refusal(guarded, server.url("/start"))
    assert error.code == code
    assert network.connects == [("127.0.0.1", server.port)]


async def test_allowed_redirects_are_followed_relative_locations_included(
    server: FixtureServer,
) -> None:
    server.route("/a", redirect("/b", status=307))
    server.route("/b", redirect(f"http://files.partner.test:{server.port}/c?x=1", status=308))
    server.route("/c", send(200, b"final"))
    guarded, _, _ = fetcher(allowing(server), {"files.partner.test": [["127.0.0.1"]]})
    sink = Collected()

    result = await guarded.fetch(server.url("/a"), sink)

    assert sink.data == b"final"
    assert result.url == f"http://files.partner.test:{server.port}/c?x=1"
    assert [r.path for r in server.requests] == ["/a", "/b", "/c?x=1"]
    assert server.requests[-1].headers["host"] == f"files.partner.test:{server.port}"


async def test_a_redirect_loop_stops_at_the_limit(server: FixtureServer) -> None:
    server.route("/loop", redirect("/loop"))
    guarded, _, _ = fetcher(allowing(server))
    error = await refusal(guarded, server.url("/loop"))
    assert error.code == "too_many_redirects"
    assert len(server.requests) == 4  # the request and 3 redirects (the default limit)


async def test_the_redirect_limit_is_configurable(server: FixtureServer) -> None:
    server.route("/once", redirect("/done"))
    server.route("/done", send(200, b"ok"))
    guarded, _, _ = fetcher(allowing(server, max_redirects=0))
    assert (await refusal(guarded, server.url("/once"))).code == "too_many_redirects"
    assert [r.path for r in server.requests] == ["/once"]


async def test_redirect_without_location_is_fetch_failed(server: FixtureServer) -> None:
    server.route("/bad", send(302, b""))
    guarded, _, _ = fetcher(allowing(server))
    error = await refusal(guarded, server.url("/bad"))
    assert error.code == "fetch_failed"
    assert "302" in error.message


# --- TLS: the name is kept for SNI and certificate checks while the IP is pinned. -------


@pytest.fixture
def tls_server() -> Iterator[tuple[FixtureServer, ssl.SSLContext]]:
    server_ctx, client_ctx = tls_pair("public.test")
    with FixtureServer("127.0.0.1", tls=server_ctx) as running:
        yield running, client_ctx


async def test_https_uses_the_name_for_sni_and_certificate_while_connecting_to_the_ip(
    tls_server: tuple[FixtureServer, ssl.SSLContext],
) -> None:
    server, client_ctx = tls_server
    server.route("/doc.pdf", send(200, b"%PDF-1.7 secure", content_type="application/pdf"))
    guarded, _, network = fetcher(
        allowing(server), {"public.test": [["127.0.0.1"]]}, ssl_context=client_ctx
    )
    sink = Collected()

    result = await guarded.fetch(f"https://public.test:{server.port}/doc.pdf", sink)

    assert sink.data == b"%PDF-1.7 secure"
    assert result.url == f"https://public.test:{server.port}/doc.pdf"
    assert server.sni == ["public.test"]
    assert server.requests[0].headers["host"] == f"public.test:{server.port}"
    assert network.connects == [("127.0.0.1", server.port)]


async def test_certificate_for_another_name_is_refused(
    tls_server: tuple[FixtureServer, ssl.SSLContext],
) -> None:
    server, client_ctx = tls_server
    server.route("/", send(200, b"x"))
    guarded, _, _ = fetcher(
        allowing(server), {"other.test": [["127.0.0.1"]]}, ssl_context=client_ctx
    )
    error = await refusal(guarded, f"https://other.test:{server.port}/")
    assert error.code == "fetch_failed"
    assert "127.0.0.1" not in error.message
    assert server.requests == []


async def test_https_to_http_downgrade_is_refused(
    tls_server: tuple[FixtureServer, ssl.SSLContext], server: FixtureServer
) -> None:
    tls, client_ctx = tls_server
    tls.route("/down", redirect(f"http://public.test:{server.port}/plain"))
    server.route("/plain", send(200, b"plaintext"))
    guarded, _, _ = fetcher(
        allowing(tls, server), {"public.test": [["127.0.0.1"]]}, ssl_context=client_ctx
    )
    error = await refusal(guarded, f"https://public.test:{tls.port}/down")
    assert error.code == "redirect_not_allowed"
    assert server.connections == []


# --- Time, size and upstream failures. -------------------------------------------------


# The tests below that wait on a timeout run under HANG_LIMIT, so a fetcher that stopped
# enforcing its bound fails the test instead of hanging the whole run.
HANG_LIMIT = 10


async def test_slow_drip_is_cut_off_by_the_total_timeout(server: FixtureServer) -> None:
    server.route("/drip", drip(0.05))
    guarded, _, _ = fetcher(allowing(server, read_timeout=5.0, total_timeout=0.5))
    started = time.monotonic()
    with anyio.fail_after(HANG_LIMIT):
        error = await refusal(guarded, server.url("/drip"))
    assert error.code == "fetch_timeout"
    assert time.monotonic() - started < 2.5  # 0.5 s bound plus generous scheduling slack


async def test_a_stalled_read_is_cut_off_by_the_read_timeout(server: FixtureServer) -> None:
    server.route("/stall", drip(60.0))
    guarded, _, _ = fetcher(allowing(server, read_timeout=0.3, total_timeout=30.0))
    started = time.monotonic()
    with anyio.fail_after(HANG_LIMIT):
        error = await refusal(guarded, server.url("/stall"))
    assert error.code == "fetch_timeout"
    assert time.monotonic() - started < 2.5


async def test_a_hanging_resolver_is_cut_off_by_the_total_timeout() -> None:
    class Hanging(FakeResolver):
        async def __call__(self, host: str, port: int) -> list[str]:
            await httpcore.AnyIOBackend().sleep(60)
            return []

    guarded = GuardedFetcher(
        EgressPolicy(total_timeout=0.3), Hanging(), network=LoopbackOnlyNetwork()
    )
    started = time.monotonic()
    with anyio.fail_after(HANG_LIMIT):
        error = await refusal(guarded, "https://slow-dns.test/")
    assert error.code == "fetch_timeout"
    assert time.monotonic() - started < 2.5


async def test_an_endless_body_stops_at_the_cap(server: FixtureServer) -> None:
    server.route("/endless", endless(chunk=65536))
    guarded, _, network = fetcher(allowing(server))
    sink = Collected(MB)
    with anyio.fail_after(HANG_LIMIT), pytest.raises(PayloadTooLarge) as refused:
        await guarded.fetch(server.url("/endless"), sink)
    assert refused.value.code == "file_too_large"
    assert len(sink.data) <= MB  # the chunk that crossed the cap never reached the sink
    assert len(sink.data) > MB - 65536 * 2
    # Reading stops at the cap too: at most one more read (httpcore asks for 64 KiB at a
    # time) past it, plus the status line and headers.
    assert len(sink.data) < network.bytes_read <= MB + 65536 + 1024, network.bytes_read


async def test_a_declared_oversize_body_is_refused_before_reading_it(server: FixtureServer) -> None:
    server.route("/big", send(200, b"x" * 2000))
    guarded, _, _ = fetcher(allowing(server))
    sink = Collected(1000)
    with pytest.raises(PayloadTooLarge, match="1000 bytes LOGO accepts"):
        await guarded.fetch(server.url("/big"), sink)
    # The sink heard the announced length and refused it before any body byte arrived.
    assert sink.announced == [2000]
    assert sink.chunks == []


async def test_a_body_exactly_at_the_cap_is_accepted(server: FixtureServer) -> None:
    server.route("/exact", send(200, b"x" * 1000))
    guarded, _, _ = fetcher(allowing(server))
    result = await guarded.fetch(server.url("/exact"), Collected(1000))
    assert result.size == 1000


async def test_the_sinks_own_size_error_propagates_unchanged(server: FixtureServer) -> None:
    server.route("/doc", send(200, b"x" * 5000))

    class StrictSink(Collected):
        async def write(self, chunk: bytes) -> None:
            raise PayloadTooLarge("file is too large for DOCUMENT/KTP", code=Code.FILE_TOO_LARGE)

    guarded, _, _ = fetcher(allowing(server))
    with pytest.raises(PayloadTooLarge, match="DOCUMENT/KTP"):
        await guarded.fetch(server.url("/doc"), StrictSink())


async def test_upstream_error_is_fetch_failed_with_status_only(server: FixtureServer) -> None:
    server.route("/missing", send(404, b"<h1>internal-secret stack trace</h1>"))
    server.route("/oops", send(500, b"db password=hunter2"))
    guarded, _, _ = fetcher(allowing(server))
    for path, status in (("/missing", 404), ("/oops", 500)):
        error = await refusal(guarded, server.url(path))
        assert error.code == "fetch_failed"
        assert error.message == f"file_url could not be fetched: upstream answered HTTP {status}"


async def test_connection_refused_is_fetch_failed_without_internal_details() -> None:
    port = free_port()
    guarded, _, _ = fetcher(
        EgressPolicy(allow_networks=LOOPBACK, allow_ports=frozenset({port})),
        {"files.partner.test": [["127.0.0.1"]]},
    )
    error = await refusal(guarded, f"http://files.partner.test:{port}/")
    assert error.code == "fetch_failed"
    assert "127.0.0.1" not in error.message
    assert "Errno" not in error.message


async def test_server_threads_saw_no_unexpected_errors(server: FixtureServer) -> None:
    # Guards the fixture itself: a clean fetch leaves no handler error behind.
    server.route("/ok", send(200, b"ok"))
    guarded, _, _ = fetcher(allowing(server))
    await guarded.fetch(server.url("/ok"), Collected())
    assert wait_until(lambda: len(server.requests) == 1)
    assert server.errors == []
