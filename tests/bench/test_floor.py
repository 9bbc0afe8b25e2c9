"""bench/floor_app.py, the token floor: it must do the one piece of work it stands for,
signing a valid RS256 token per request, or its ceiling would be a fiction."""

from __future__ import annotations

import asyncio
import json
from collections.abc import MutableMapping
from typing import Any

import jwt

from bench.floor_app import PUBLIC_KEY, app


def _call(path: str, body: bytes = b"") -> tuple[int, dict[str, Any]]:
    sent: list[MutableMapping[str, Any]] = []
    chunks: list[MutableMapping[str, Any]] = [
        {"type": "http.request", "body": body[:5], "more_body": True},
        {"type": "http.request", "body": body[5:], "more_body": False},
    ]

    async def receive() -> MutableMapping[str, Any]:
        return chunks.pop(0)

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app({"type": "http", "method": "POST", "path": path}, receive, send))
    assert not chunks  # the whole body was read
    status = sent[0]["status"]
    answer = sent[1]["body"]
    assert dict(sent[0]["headers"])[b"content-length"] == str(len(answer)).encode()
    return status, json.loads(answer)


def test_each_token_request_gets_a_fresh_token_its_key_verifies() -> None:
    status, answer = _call("/v1.0/token", b'{"grant_type":"client_credentials"}')
    assert status == 200
    claims = jwt.decode(answer["access_token"], PUBLIC_KEY, algorithms=["RS256"])
    assert claims["sub"] == "floor-client"
    assert claims["exp"] - claims["iat"] == 300
    header = jwt.get_unverified_header(answer["access_token"])
    assert header["alg"] == "RS256"


def test_healthz_signs_nothing() -> None:
    assert _call("/healthz") == (200, {"status": "ok"})
