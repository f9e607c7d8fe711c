"""Pure ASGI middlewares: timing each request for the metrics (and optionally one JSON log line),
and answering an unexpected exception without dropping the client's connection."""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lyra.ids import new_id
from lyra.log import get_logger
from lyra.observe.metrics import Metrics
from lyra.service.errors import from_unexpected

access_log = get_logger("lyra.service.access")
# A caller's own request id is echoed when it is a plain token (letters, digits, - _ . :), up to 128.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def request_id_of(scope: Scope) -> str:
    """The caller's `x-request-id` when it is a plain token, else a new one: every answer carries it."""
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = bytes(value).decode("latin-1")
            if _REQUEST_ID.match(text):
                return text
    return f"req-{new_id()}"


class ObserveRequests:
    """Counts every request by route and status; logs method, path, status, client and duration.

    Headers and bodies are never logged, so neither a client token nor a prompt reaches the log.
    """

    def __init__(self, app: ASGIApp, *, metrics: Metrics, log_requests: bool = False) -> None:
        self.app = app
        self.metrics = metrics
        self.log_requests = log_requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        request_id = request_id_of(scope)

        async def observe_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()),
                                                  (b"x-request-id", request_id.encode())]}
            await send(message)

        self.metrics.http_in_flight.inc()
        try:
            await self.app(scope, receive, observe_send)
        finally:
            self.metrics.http_in_flight.dec()
            elapsed = time.perf_counter() - started
            # The route's pattern, not the path: unknown paths must not grow the label set.
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.observe_http(route, scope["method"], status, elapsed)
            if self.log_requests and access_log.isEnabledFor(logging.INFO):
                access_log.info("%s", _line(scope, status, elapsed))


class AnswerUnexpected:
    """An exception no route handled becomes a 500 (or a 503 for a store outage) in OpenAI's shape.

    Starlette's own last-resort handler answers and then re-raises, and uvicorn closes the
    connection on any exception, so the client's next request on that keep-alive connection
    fails. Answering here, where the exception ends, keeps the connection. A response already
    started cannot be replaced: the exception goes on, and closing the connection is the only
    honest way to tell the client its answer is cut short.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked_send)
        except Exception as exc:
            if started:
                raise
            response = from_unexpected(exc, f"{scope['method']} {scope['path']}").response()
            await response(scope, receive, send)


def _line(scope: Scope, status: int, elapsed: float) -> str:
    state: dict[str, Any] = scope.get("state") or {}
    return orjson.dumps({
        "ts": round(time.time(), 3), "method": scope["method"], "path": scope["path"], "status": status,
        "ms": round(elapsed * 1000, 2), "client": state.get("client"),
    }).decode()
