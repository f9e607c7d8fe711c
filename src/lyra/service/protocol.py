"""uvicorn's httptools protocol with the guards it lacks: a deadline for a request's headers, a
bound on their size (431), an OpenAI-shaped 503 (with Retry-After) past the connection bound, and
an OpenAI-shaped 400 for a request that is not HTTP.

uvicorn times out an idle keep-alive connection, but nothing else: a socket that connects and
sends nothing, or sends its headers a byte a minute (a slowloris), holds a connection forever.
Here a timer runs from the moment a connection opens, and again from the first byte of each
later request on it, until that request's headers are complete (and, for a request answered
before its body was read, until the rest of that body has come). A connection that never sent a
byte is just closed; one in the middle of its headers first gets a 408.

`lyra serve` passes this class to uvicorn (`http=`), which forces the httptools parser (a
dependency of Lyra) rather than h11; its workers read the deadline from LYRA_SERVE_HEADER_TIMEOUT.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import orjson
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.flow_control import service_unavailable
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

HEADER_TIMEOUT_ENV = "LYRA_SERVE_HEADER_TIMEOUT"
DEFAULT_HEADER_TIMEOUT_S = 10.0
MAX_HEAD_BYTES = 64 * 1024  # a request line and headers past this are refused (431): the parser has no bound
OVERLOADED_RETRY_AFTER_S = 1


def header_timeout_from_env() -> float:
    """LYRA_SERVE_HEADER_TIMEOUT in seconds, or the default when it is unset or not a positive number."""
    try:
        seconds = float(os.environ.get(HEADER_TIMEOUT_ENV) or DEFAULT_HEADER_TIMEOUT_S)
    except ValueError:
        return DEFAULT_HEADER_TIMEOUT_S
    return seconds if 0 < seconds < float("inf") else DEFAULT_HEADER_TIMEOUT_S


def _error_body(message: str, type_: str, code: str) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": type_, "param": None, "code": code}})


_HEADER_TIMEOUT_BODY = _error_body("the request's headers did not arrive in time", "invalid_request_error",
                                   "request_timeout")
_OVERLOADED_BODY = _error_body("the gateway is at its connection limit; retry shortly", "service_unavailable",
                               "overloaded")


class GuardedHttpProtocol(HttpToolsProtocol):
    """HttpToolsProtocol with a deadline and a size bound for a request's headers, and answers in
    OpenAI's error shape when overloaded or handed bytes that are not HTTP."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout_s = header_timeout_from_env()
        self._header_timer: asyncio.TimerHandle | None = None
        self._in_headers = False  # a request has begun and its headers are not complete yet
        self._head_bytes = 0
        self._head_too_large = False
        self._draining = False  # answered before its body was read: the rest must still arrive in time

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = True
        self._head_bytes = 0
        if self._header_timer is None:  # a later request on a kept-alive connection
            self._arm_header_timer()

    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value) + 4)  # with its ": " and CRLF
        super().on_header(name, value)

    def _count_head(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > MAX_HEAD_BYTES:
            # Raised inside a parser callback, it fails feed_data; uvicorn then calls send_400_response.
            self._head_too_large = True
            raise ValueError("the request's head is too large")

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._cancel_header_timer()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # An answer given before the body was read (413, 401): uvicorn keeps reading and dropping the
        # rest, and the client's next byte stops the keep-alive timer, so a body trickled forever
        # would hold the connection forever. The rest must come within the header deadline.
        if self.cycle is not None and self.cycle.more_body and not self.transport.is_closing():
            self._draining = True
            self._arm_header_timer()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        if self._draining:  # drained and now idle: the next request must begin, or it is closed, in time
            self._draining = False
            self._arm_header_timer()

    def send_400_response(self, msg: str) -> None:
        # uvicorn's answer to a request its parser rejects, in plain text; OpenAI's shape instead.
        if self._head_too_large:
            status = b"431 Request Header Fields Too Large"
            body = _error_body(f"the request line and headers are larger than this gateway accepts "
                               f"({MAX_HEAD_BYTES:,} bytes)", "invalid_request_error", "headers_too_large")
        else:
            status = b"400 Bad Request"
            body = _error_body(f"the request is not valid HTTP/1.1 ({msg.rstrip('.')})",
                               "invalid_request_error", "invalid_http")
        self.transport.write(b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\n"
                             b"connection: close\r\ncontent-length: " + str(len(body)).encode() + b"\r\n\r\n"
                             + body)
        self.transport.close()

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        # uvicorn picks its plain-text 503 app past limit_concurrency; answer in OpenAI's shape instead.
        chosen: Any = _overloaded if app is service_unavailable else app
        super()._start_asgi_task(cycle, chosen)

    def _arm_header_timer(self) -> None:
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if self._in_headers:  # a client mid-request may be listening; one that sent nothing is not
            self.transport.write(
                b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
                b"content-length: " + str(len(_HEADER_TIMEOUT_BODY)).encode() + b"\r\n\r\n"
                + _HEADER_TIMEOUT_BODY)
        self.transport.close()


async def _overloaded(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 503, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(_OVERLOADED_BODY)).encode()),
        (b"retry-after", str(OVERLOADED_RETRY_AFTER_S).encode()), (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": _OVERLOADED_BODY, "more_body": False})
