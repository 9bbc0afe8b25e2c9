"""The error envelope (DESIGN 2.5) as a partner sees it, checked the same way by every suite."""

from __future__ import annotations

import httpx


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, str]:
    """The response is exactly ``{"error": {"code", "message", "type"}}`` with ``code``,
    plus, on a 5xx, ``request_id``: the ``Request-Id`` response header's value.

    All are strings, the message is not empty and no traceback leaks into the body.
    Returns the error, for assertions on its message and type.
    """
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert isinstance(body, dict), body
    assert set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error, dict), body
    if status >= 500:
        assert error.pop("request_id") == response.headers["request-id"], response.headers
    assert set(error) == {"code", "message", "type"}, body
    assert all(isinstance(value, str) for value in error.values()), error
    assert error["code"] == code, error
    assert error["message"], error
    assert "Traceback" not in response.text
    assert 'File "' not in response.text
    return dict(error)
