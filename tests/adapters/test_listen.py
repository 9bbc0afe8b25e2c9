"""The socket ``berkas serve`` binds first: a taken port is one line naming host:port."""

from __future__ import annotations

import asyncio
import socket

import pytest

from berkas.adapters.listen import CannotListen, listen


def test_a_free_port_is_bound_and_listening() -> None:
    with listen("127.0.0.1", 0) as sock:
        host, port = sock.getsockname()
        assert host == "127.0.0.1"
        # Connectable already: the kernel queues connections until uvicorn accepts them.
        with socket.create_connection((host, port), timeout=5):
            pass


@pytest.mark.parametrize("reuse", [False, True])
def test_a_taken_port_is_refused_naming_host_and_port(reuse: bool) -> None:
    with socket.socket() as squatter:
        if reuse:  # bind alone would succeed beside it; listen() reports the clash
            squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]

        with pytest.raises(CannotListen) as refused:
            listen("127.0.0.1", port)

    assert str(refused.value) == (
        f"cannot listen on 127.0.0.1:{port}: address already in use "
        "(another process listens there; choose another --port)"
    )


def test_an_address_that_is_not_local_is_refused_with_the_reason() -> None:
    # 192.0.2.0/24 is TEST-NET-1 (RFC 5737): never an address of this machine.
    with pytest.raises(CannotListen, match=r"^cannot listen on 192\.0\.2\.1:8000: .*assign"):
        listen("192.0.2.1", 8000)


def test_accepted_connections_have_nagle_switched_off() -> None:
    # asyncio sets TCP_NODELAY only on sockets whose proto is TCP; a listener made with
    # proto 0 gave every upload answer a delayed-ACK stall (28 ms -> 72 ms in make bench).

    async def accept_one() -> int:
        seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                sock = transport.get_extra_info("socket")
                seen.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        listener = listen("127.0.0.1", 0)
        server = await asyncio.get_running_loop().create_server(Probe, sock=listener)
        async with server:
            port = listener.getsockname()[1]
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            result = await asyncio.wait_for(seen, 5)
            writer.close()
        return result

    assert asyncio.run(accept_one()) == 1
