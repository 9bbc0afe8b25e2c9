"""The listening TCP socket ``berkas serve`` binds before it touches the data dir."""

from __future__ import annotations

import errno
import socket

# uvicorn's default accept backlog (uvicorn.Config(backlog=2048)).
BACKLOG = 2048


class CannotListen(Exception):
    """The address could not be bound (taken, not ours, or not a local address)."""


def listen(host: str, port: int) -> socket.socket:
    """Bind and listen on ``host``:``port``; raise ``CannotListen`` naming both.

    Binding comes first in ``serve`` so that a taken port is refused before any sweep,
    migration or lock: a mistyped ``--port`` must not disturb anything.
    """
    bare = host.strip("[]")
    # As uvicorn's Config.bind_socket: an address with a colon is IPv6, anything else
    # (an IPv4 address or a name such as localhost) is resolved as IPv4.
    family = socket.AF_INET6 if ":" in bare else socket.AF_INET
    shown = f"[{bare}]:{port}" if family == socket.AF_INET6 else f"{bare}:{port}"
    # proto=IPPROTO_TCP, not 0: asyncio switches Nagle off (TCP_NODELAY) only on sockets
    # whose proto says TCP (base_events._set_nodelay), and accepted sockets inherit it.
    # With proto 0 every response waits out the client's delayed ACK: a 5 MB upload went
    # from 28 ms to 72 ms (make bench).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        # SO_REUSEADDR (as uvicorn sets it) lets a restart bind while the last run's
        # connections sit in TIME_WAIT; on Linux it never lets two sockets listen on one
        # port (that would be SO_REUSEPORT, which is not set).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((bare, port))
        # listen() here too: with SO_REUSEADDR on both sides two sockets may bind one
        # port, and only listen() reports the clash.
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            reason = "address already in use (another process listens there; choose another --port)"
        else:
            reason = (exc.strerror or str(exc)).lower()
        raise CannotListen(f"cannot listen on {shown}: {reason}") from None
    return sock
