"""The socket ``berkas serve`` binds first: a taken port is one line naming host:port."""

from __future__ import annotations

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
