"""The SSRF-guarded fetcher for ``file_url`` (docs/design.md 4), on httpx.

Each hop: parse with ``core.egress``, resolve once, check every address, then connect
only to a checked address while Host, SNI and certificate checks keep the host name.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from urllib.parse import urljoin

import httpcore
import httpx

from berkas.core.codes import Code
from berkas.core.egress import (
    EgressPolicy,
    FetchResult,
    IPAddress,
    Target,
    check_address,
    parse_url,
    static_addresses,
)
from berkas.core.errors import FetchRefused
from berkas.core.ports import FetchSink

__all__ = ["FetchResult", "GuardedFetcher", "Resolver", "system_resolver"]

Resolver = Callable[[str, int], Awaitable[list[str]]]

# RFC 9110 15.4: the redirects that carry a Location to follow. 300 and 304 do not.
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


async def system_resolver(host: str, port: int) -> list[str]:
    """Resolve ``host`` with the system resolver (getaddrinfo), addresses in its order."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class GuardedFetcher:
    """Fetches a partner-named URL without becoming a way into our own network.

    ``network`` (an httpcore network backend) and ``ssl_context`` are for tests and for
    operators with a private CA; by default the real sockets and certifi's roots are used.
    """

    def __init__(
        self,
        policy: EgressPolicy,
        resolver: Resolver | None = None,
        *,
        network: httpcore.AsyncNetworkBackend | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._policy = policy
        self._resolve = resolver or system_resolver
        self._network = network
        self._ssl_context = ssl_context

    async def fetch(self, url: str, sink: FetchSink) -> FetchResult:
        """Fetch ``url``, passing each body chunk to ``sink``, which counts them against
        the cap (a ``Content-Length`` is announced to it first).

        Raises ``FetchRefused`` with its own code per cause (README, "Fetching by URL"), and lets
        whatever ``sink`` raises (e.g. ``PayloadTooLarge``) propagate unchanged.
        """
        total = self._policy.total_timeout
        try:
            # One bound over everything, DNS included: per-read timeouts alone let a server
            # drip one byte per read forever.
            async with asyncio.timeout(total):
                return await self._follow(url, sink)
        except TimeoutError as exc:
            raise FetchRefused(
                f"file_url did not finish within {total:g} s; berkas gives up after that",
                code=Code.FETCH_TIMEOUT,
            ) from exc

    async def _follow(self, url: str, sink: FetchSink) -> FetchResult:
        policy = self._policy
        target = parse_url(url, policy)
        hop = 0
        while True:
            try:
                addresses = await self._addresses(target)
            except FetchRefused as exc:
                if hop == 0:
                    raise
                raise _at_hop(exc, hop) from exc
            outcome = await self._exchange(target, addresses, sink)
            if isinstance(outcome, FetchResult):
                return outcome
            if hop == policy.max_redirects:
                raise FetchRefused(
                    f"file_url redirected more than {policy.max_redirects} times; "
                    "give the final URL instead",
                    code=Code.TOO_MANY_REDIRECTS,
                )
            hop += 1
            try:
                target = self._redirect(target, outcome)
            except FetchRefused as exc:
                raise _at_hop(exc, hop) from exc

    def _redirect(self, current: Target, location: str) -> Target:
        # The next hop is parsed and checked exactly like the first URL.
        following = parse_url(urljoin(current.url, location), self._policy)
        if current.scheme == "https" and following.scheme == "http":
            raise FetchRefused(
                "file_url redirected from https to http; berkas does not follow downgrades",
                code=Code.REDIRECT_NOT_ALLOWED,
            )
        return following

    async def _addresses(self, target: Target) -> tuple[IPAddress, ...]:
        addresses = static_addresses(target)
        if addresses is None:
            addresses = await self._lookup(target)
        # Every address must pass, not just the first: the connection may use any of them,
        # and a name answering public + private is a classic rebinding setup (OWASP SSRF
        # Prevention Cheat Sheet).
        for address in addresses:
            check_address(address, self._policy)
        return addresses

    async def _lookup(self, target: Target) -> tuple[IPAddress, ...]:
        failed = FetchRefused(
            f"file_url host {target.host} does not resolve; check the host name",
            code=Code.DNS_FAILED,
        )
        try:
            answers = await self._resolve(target.host, target.port)
            addresses = tuple(
                dict.fromkeys(ipaddress.ip_address(answer.split("%", 1)[0]) for answer in answers)
            )
        except (OSError, ValueError, UnicodeError) as exc:
            raise failed from exc
        if not addresses:
            raise failed
        return addresses

    async def _exchange(
        self,
        target: Target,
        addresses: tuple[IPAddress, ...],
        sink: FetchSink,
    ) -> FetchResult | str:
        policy = self._policy
        if self._ssl_context is None:
            self._ssl_context = httpx.create_ssl_context()  # certifi roots, built once, lazily
        network = self._network or httpcore.AnyIOBackend()
        pinned = _PinnedNetwork(target, addresses, network)
        transport = _PinnedTransport(pinned, self._ssl_context)
        timeout = httpx.Timeout(
            connect=policy.connect_timeout,
            read=policy.read_timeout,
            write=policy.read_timeout,
            pool=policy.connect_timeout,
        )
        headers = {
            "User-Agent": policy.user_agent,
            "Accept": "*/*",
            # Identity only, and the body is counted as it arrives on the wire (never
            # decoded), so a compressed bomb cannot expand past the cap.
            "Accept-Encoding": "identity",
        }
        try:
            async with (
                # trust_env=False: an HTTP(S)_PROXY in the environment would send the request
                # (and its name resolution) somewhere the policy never checked.
                httpx.AsyncClient(
                    transport=transport, timeout=timeout, follow_redirects=False, trust_env=False
                ) as client,
                client.stream("GET", target.url, headers=headers) as response,
            ):
                return await _consume(response, target, sink)
        except httpx.TimeoutException as exc:
            raise FetchRefused(
                "file_url did not answer in time (connect or read timeout)",
                code=Code.FETCH_TIMEOUT,
            ) from exc
        except httpx.HTTPError as exc:
            # Never echo the underlying error: it can name internal addresses or TLS details.
            raise FetchRefused(
                "file_url could not be fetched: the connection or TLS handshake failed",
                code=Code.FETCH_FAILED,
            ) from exc
        except httpx.InvalidURL as exc:
            raise FetchRefused("file_url is not a valid URL", code=Code.URL_INVALID) from exc


async def _consume(response: httpx.Response, target: Target, sink: FetchSink) -> FetchResult | str:
    status = response.status_code
    if status in _REDIRECTS:
        location: str | None = response.headers.get("location")
        if not location:
            raise FetchRefused(
                f"file_url could not be fetched: upstream answered HTTP {status} without a "
                "Location",
                code=Code.FETCH_FAILED,
            )
        return location
    if not 200 <= status < 300:
        # The status only: the upstream body may be an internal error page.
        raise FetchRefused(
            f"file_url could not be fetched: upstream answered HTTP {status}",
            code=Code.FETCH_FAILED,
        )
    declared: str = response.headers.get("content-length", "")
    if declared.isdigit():
        # Refused before any body byte is read; the sink names the requirement's cap.
        sink.expect(int(declared))
    size = 0
    async for chunk in response.aiter_raw():
        size += len(chunk)
        await sink.write(chunk)
    return FetchResult(
        url=target.url,
        status=status,
        content_type=response.headers.get("content-type"),
        size=size,
    )


def _at_hop(exc: FetchRefused, hop: int) -> FetchRefused:
    plural = "" if hop == 1 else "s"
    return FetchRefused(f"{exc.message} (after {hop} redirect{plural})", code=exc.code)


class _PinnedNetwork(httpcore.AsyncNetworkBackend):
    """Connects to the checked addresses only, whatever httpcore asks for.

    httpcore hands ``connect_tcp`` the URL's host name; resolving it again here would be
    a second lookup an attacker's DNS could answer differently (DNS rebinding).
    """

    def __init__(
        self,
        target: Target,
        addresses: tuple[IPAddress, ...],
        inner: httpcore.AsyncNetworkBackend,
    ) -> None:
        self._target = target
        self._addresses = addresses
        self._inner = inner

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        if host.lower() != self._target.host or port != self._target.port:
            raise httpcore.ConnectError("refusing a connection the egress policy did not check")
        error: Exception = httpcore.ConnectError("no address to connect to")
        for address in self._addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        raise error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("unix sockets are never used for file_url")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _PinnedTransport(httpx.AsyncBaseTransport):
    """httpx transport over an httpcore pool that uses ``_PinnedNetwork``.

    httpx's own transport does not take a network backend, so this is its request and
    response translation, without proxies, HTTP/2 or retries.
    """

    def __init__(self, network: _PinnedNetwork, ssl_context: ssl.SSLContext) -> None:
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            network_backend=network,
            max_connections=1,
            http1=True,
            http2=False,
            retries=0,
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        stream = request.stream
        if not isinstance(stream, httpx.AsyncByteStream):
            raise TypeError("the fetcher sends only async request bodies")
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=stream,
            extensions=request.extensions,
        )
        with _httpx_errors():
            core_response = await self._pool.handle_async_request(core_request)
        body = core_response.stream
        if not isinstance(body, AsyncIterable):
            raise TypeError("httpcore returned a sync body to an async pool")
        return httpx.Response(
            status_code=core_response.status,
            headers=core_response.headers,
            stream=_ResponseStream(body),
            extensions=core_response.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()


class _ResponseStream(httpx.AsyncByteStream):
    def __init__(self, stream: AsyncIterable[bytes]) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _httpx_errors():
            async for part in self._stream:
                yield part

    async def aclose(self) -> None:
        close = getattr(self._stream, "aclose", None)
        if close is not None:
            await close()


@contextlib.contextmanager
def _httpx_errors() -> Iterator[None]:
    # httpcore raises its own exception types; httpx callers expect httpx's.
    try:
        yield
    except httpcore.TimeoutException as exc:
        raise httpx.TimeoutException(str(exc)) from exc
    except (
        httpcore.NetworkError,
        httpcore.ProtocolError,
        httpcore.UnsupportedProtocol,
        httpcore.ProxyError,
    ) as exc:
        raise httpx.TransportError(str(exc)) from exc
