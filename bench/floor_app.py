"""The least a token endpoint can do: RS256-sign a token and answer it, in a bare ASGI app.

No signature check, no database, no framework: uvicorn (httptools, uvloop, as berkas
serves) calls this function, which signs the peer's claim set with a 2048-bit key made
at start and answers it as JSON; ``/healthz`` answers a constant. make bench runs it
pinned like the others, so its token rate is the most any Python server issuing RS256
tokens reaches on this core, and its ``token/healthz`` the highest that ratio can be
(bench/README.md "The floor").

    python -m uvicorn bench.floor_app:app --http httptools --loop uvloop
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]

TOKEN_LIFETIME_S = 300
# The size berkas and the peer sign with (berkas's keys: at least 2048 bits).
_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PUBLIC_KEY = _KEY.public_key()
_HEALTHY = b'{"status":"ok"}'


def token_body(client_id: str = "floor-client") -> bytes:
    """The answer to one token request: a fresh RS256 token, as the peer shapes it."""
    now = int(time.time())
    claims = {"sub": client_id, "iat": now, "exp": now + TOKEN_LIFETIME_S}
    token = jwt.encode(claims, _KEY, algorithm="RS256")
    return json.dumps({"access_token": token, "token_type": "Bearer"}).encode()


async def app(
    scope: Scope,
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:  # the request body is read (and dropped), as a real endpoint must
        more = (await receive()).get("more_body", False)
    body = _HEALTHY if scope["path"] == "/healthz" else token_body()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
