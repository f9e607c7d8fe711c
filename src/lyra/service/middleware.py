"""A pure ASGI middleware timing each request for the metrics and, optionally, one JSON log line."""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lyra.log import get_logger
from lyra.metrics import Metrics

access_log = get_logger("lyra.service.access")


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

        async def observe_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, observe_send)
        finally:
            elapsed = time.perf_counter() - started
            # The route's pattern, not the path: unknown paths must not grow the label set.
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.observe_http(route, scope["method"], status, elapsed)
            if self.log_requests and access_log.isEnabledFor(logging.INFO):
                access_log.info("%s", _line(scope, status, elapsed))


def _line(scope: Scope, status: int, elapsed: float) -> str:
    state: dict[str, Any] = scope.get("state") or {}
    return orjson.dumps({
        "ts": round(time.time(), 3), "method": scope["method"], "path": scope["path"], "status": status,
        "ms": round(elapsed * 1000, 2), "client": state.get("client"),
    }).decode()
