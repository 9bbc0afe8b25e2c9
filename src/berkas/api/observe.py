"""What a request leaves behind for the operator: its id, one access line, and the format
log lines are written in (``BERKAS_LOG_FORMAT``).

Every request gets an id: the caller's own ``Request-Id`` when it sent a usable one (DOKU
clients send one with every signed call, and name it when they ask for support), else a
fresh one. It is returned in the ``Request-Id`` response header, in the body of every 5xx,
and on every log line the request causes, so a partner's complaint, the access line and a
traceback meet on one string.

The access line names the route template (``/v1/file/{file_id}``), never the raw path or
query: a link's query string is a bearer credential for a KYC scan (its signature), and
tokens and secrets travel only in headers, which are never logged.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from berkas.services.clients import CLIENT_ID_PATTERN

access_log = logging.getLogger("berkas.access")
log = logging.getLogger(__name__)

# The longest caller-chosen id echoed back (DOKU's Request-Id is 1..128 characters).
MAX_REQUEST_ID = 128
REQUEST_ID_HEADER = b"request-id"


@dataclass
class RequestContext:
    """Filled in while a request runs (from worker threads too: the object is shared)."""

    request_id: str
    client_id: str | None = None
    # Who a refused caller said it was (a token's claim, a signed request's Client-Id):
    # never verified, so logged apart from client_id and marked so.
    claimed_client_id: str | None = None
    error_code: str | None = None
    # An upload: its category as sent (checked before it becomes a metric label), whether
    # it came by file_url, and what was stored.
    upload_category: str | None = None
    fetched: bool = False
    stored_bytes: int | None = None
    replayed: bool = False


_CURRENT: ContextVar[RequestContext | None] = ContextVar("berkas_request", default=None)


def current() -> RequestContext | None:
    """The request being served in this context, if any."""
    return _CURRENT.get()


def note_client(client_id: str) -> None:
    """The caller is known (authenticated): its id goes on the access line."""
    context = _CURRENT.get()
    if context is not None:
        context.client_id = client_id


def note_claimed(client_id: str | None) -> None:
    """Authentication failed: the client the caller claimed to be goes on the access line,
    marked unverified (an operator looking for a partner's failed calls finds them). Only
    an id a client could have (CLIENT_ID_PATTERN): it is caller text, so nothing else
    reaches a log line (no newlines, no forged fields)."""
    context = _CURRENT.get()
    if context is not None and client_id is not None and CLIENT_ID_PATTERN.fullmatch(client_id):
        context.claimed_client_id = client_id


def note_error(code: str) -> None:
    """The request is answered with the error ``code``."""
    context = _CURRENT.get()
    if context is not None:
        context.error_code = code


def note_upload(category: str | None, *, fetched: bool) -> None:
    """An upload's form is read: what it asks to store, and how."""
    context = _CURRENT.get()
    if context is not None:
        context.upload_category, context.fetched = category, fetched


def note_stored(size: int, *, replayed: bool) -> None:
    """The upload is answered with a stored file (``replayed``: an earlier upload's)."""
    context = _CURRENT.get()
    if context is not None:
        context.stored_bytes, context.replayed = size, replayed


def request_id_of(scope: Scope) -> str:
    """The caller's ``Request-Id`` when it is 1..128 visible ASCII characters (safe to
    echo in a header and a log line), else a fresh random id."""
    for name, value in scope.get("headers", ()):
        if name == REQUEST_ID_HEADER:
            text = bytes(value).decode("latin-1")
            if 0 < len(text) <= MAX_REQUEST_ID and all(" " < c < "\x7f" for c in text):
                return text
            break
    return uuid.uuid4().hex


class RequestLog:
    """Pure ASGI middleware: the request id in and out, and one access line per request.

    ``observe(method, template, status, seconds, context)`` is called once per request
    as well (the metrics), with what the line shows.
    """

    def __init__(
        self,
        app: ASGIApp,
        crash_body: Callable[[], bytes],
        observe: Callable[[str, str, int, float, RequestContext], None] | None = None,
    ) -> None:
        self.app = app
        self.crash_body = crash_body
        self.observe = observe

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        context = RequestContext(request_id_of(scope))
        token = _CURRENT.set(context)
        status = 500
        started = False
        start = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = int(message["status"]), True
                headers = list(message.get("headers", ()))
                if not any(name.lower() == REQUEST_ID_HEADER for name, _ in headers):
                    headers.append((REQUEST_ID_HEADER, context.request_id.encode()))
                    message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            # Here, not in Starlette's outermost ServerErrorMiddleware, so the one log
            # line with the traceback and the 500 both carry this request's id.
            log.error("unhandled error", exc_info=exc, extra={"request_id": context.request_id})
            context.error_code = "internal_error"
            if started:
                raise  # half an answer is out: the server can only drop the connection
            await send_with_id(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send_with_id({"type": "http.response.body", "body": self.crash_body()})
        finally:
            seconds = time.perf_counter() - start
            # The template (/file/{file_id}), never the raw path or its query.
            template = route_template(scope)
            method = scope.get("method", "")
            if self.observe is not None:
                self.observe(method, template, status, seconds, context)
            if access_log.isEnabledFor(logging.INFO):  # the fields are built only if so
                _access_line(method, template, status, seconds, context)
            _CURRENT.reset(token)


def _access_line(
    method: str, template: str, status: int, seconds: float, context: RequestContext
) -> None:
    claimed = context.claimed_client_id if context.client_id is None else None
    access_log.info(
        "%s %s %d %.1fms%s%s%s request_id=%s",
        method,
        template,
        status,
        seconds * 1000,
        f" code={context.error_code}" if context.error_code else "",
        f" client={context.client_id}" if context.client_id else "",
        f" claimed_client={claimed} (unverified)" if claimed else "",
        context.request_id,
        extra={
            "method": method,
            "route": template,
            "status": status,
            "duration_ms": round(seconds * 1000, 3),
            "error_code": context.error_code,
            "client_id": context.client_id,
            "claimed_client_id": claimed,
            "request_id": context.request_id,
        },
    )


def route_template(scope: Scope) -> str:
    """The route that answered, as a template (``/file/{file_id}``); a mounted app (the
    docs' assets) as its mount path plus ``{path:path}``; ``unmatched`` when no route
    answered (a 404)."""
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    if path:
        return str(path)
    endpoint = scope.get("endpoint")
    if endpoint is not None and scope.get("root_path"):
        # Starlette's Mount leaves no route, only its app and the path it matched.
        return f"{scope['root_path']}/{{path:path}}"
    if endpoint is not None:
        # A plain Starlette Route (FastAPI's own /openapi.json) leaves only its endpoint;
        # FastAPI's APIRoute alone puts itself in the scope.
        for candidate in getattr(scope.get("router"), "routes", ()):
            if getattr(candidate, "endpoint", None) is endpoint:
                return str(candidate.path)
    return "unmatched"


class _RequestIdFilter(logging.Filter):
    """Puts the current request's id on every record made while serving it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            context = _CURRENT.get()
            record.request_id = context.request_id if context is not None else None
        return True


_FIELDS = (
    "method",
    "route",
    "status",
    "duration_ms",
    "error_code",
    "client_id",
    "claimed_client_id",
)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the request's fields and,
    for an error, its traceback."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            line["request_id"] = request_id
        for name in _FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                line[name] = value
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``time level logger message [request_id=…]`` and a traceback below, if any."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        request_id = getattr(record, "request_id", None)
        if request_id is not None and record.name != access_log.name:
            first, newline, rest = text.partition("\n")
            text = f"{first} request_id={request_id}{newline}{rest}"
        return text


def configure(level: str, fmt: str) -> dict[str, Any]:
    """Log to stderr at ``level`` in ``fmt`` (``text`` or ``json``); returns the
    ``log_config`` uvicorn is given, so its own loggers use the same handler and its
    access log (which prints raw paths with their query strings) stays off."""
    formatter: logging.Formatter = JsonFormatter() if fmt == "json" else TextFormatter()
    formatter.converter = time.gmtime
    handler = logging.StreamHandler()
    handler.setFormatter(formatter)
    handler.addFilter(_RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Migration chatter (plugin set-up, "Context impl") is not the operator's.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # Pillow's plugins log every EXIF and TIFF tag they read at DEBUG (camera make and
    # model, GPS position): the very metadata berkas strips before storing must never
    # reach a log either, at any level the operator chooses.
    logging.getLogger("PIL").setLevel(logging.INFO)
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "loggers": {
            # Propagate to the root handler above; no handlers of uvicorn's own.
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": False, "level": "CRITICAL"},
        },
    }
