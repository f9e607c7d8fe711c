"""The gateway against hostile or broken clients: nothing a client sends gets a 5xx or a traceback.

Integers past 64 bits, NaN, lone surrogates, bodies that are not objects, odd headers, query
strings and methods all get a 4xx in OpenAI's error shape, naming the field where there is one;
an unexpected error keeps the keep-alive connection; a ledger that cannot be reached is a 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson
import pytest
from gateway_support import MESSAGES, OPS_TOKEN, running
from quant_support import QUANT_TOKEN, quant_config_text
from sqlalchemy.engine import make_url
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from lyra import Lyra
from lyra.service import create_app
from lyra.service.outage import store_outage
from lyra.service.protocol import GuardedHttpProtocol
from lyra.simulator import Simulator
from support import engine_env

AUTH = {"Authorization": f"Bearer {QUANT_TOKEN}", "Content-Type": "application/json"}
BIG = 2**64  # one past what orjson (and so the upstream body and the cache key) can carry
CHAT = {"model": "tier:fast", "messages": MESSAGES, "max_tokens": 20}
Http = tuple[aiohttp.ClientSession, str]


async def _boom(request: Request) -> Response:
    raise RuntimeError("a bug, with a secret in its text: sk-or-v1-" + "a" * 40)


@contextlib.asynccontextmanager
async def gateway(sim: Simulator, tmp_path: Path, *, ledger_url: str | None = None) -> AsyncIterator[str]:
    """A gateway on loopback in front of `sim`, with a route that fails the way a bug would."""
    path = tmp_path / "lyra.toml"
    path.write_text(quant_config_text())
    environ = engine_env(sim) | {"LYRA_LEDGER_URL": ledger_url or f"sqlite:///{tmp_path / 'ledger.db'}"}
    app = create_app(Lyra.from_config(path, environ=environ))
    app.router.routes.append(Route("/v1/boom", _boom, methods=["GET"]))
    async with guarded(app) as url:
        yield url


@contextlib.asynccontextmanager
async def guarded(app: object) -> AsyncIterator[str]:
    """Serve `app` on a free loopback port as `lyra serve` does (its HTTP protocol); yield its /v1 URL."""
    async with running(app, http=GuardedHttpProtocol, ws="none", limit_concurrency=1000) as url:
        yield url


@pytest.fixture
async def http(sim: Simulator, tmp_path: Path) -> AsyncIterator[Http]:
    async with gateway(sim, tmp_path) as base, aiohttp.ClientSession() as session:
        yield session, base


def error_of(status: int, raw: bytes) -> dict[str, Any]:
    """OpenAI's error body, exactly; and never a 5xx."""
    assert status < 500, raw
    payload = orjson.loads(raw)
    assert set(payload) == {"error"} and set(payload["error"]) == {"message", "type", "param", "code"}, payload
    error: dict[str, Any] = payload["error"]
    return error


async def send(http: Http, method: str, path: str, data: bytes | None = None,
               headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    session, base = http
    async with session.request(method, base + path, data=data, headers=AUTH if headers is None else headers) as r:
        return r.status, await r.read()


def bars(n: int = 3) -> list[dict[str, Any]]:
    return [{"time": f"2025-01-{day:02d}", "open": 10, "high": 11, "low": 9, "close": 10, "volume": 1000}
            for day in range(1, n + 1)]


@pytest.mark.parametrize(("path", "body", "param"), [
    ("/chat/completions", CHAT | {"seed": BIG}, "seed"),
    ("/chat/completions", CHAT | {"seed": -(2**63) - 1}, "seed"),
    ("/chat/completions", CHAT | {"provider": {"order": ["a"], "max_price": {"prompt": BIG}}},
     "provider.max_price.prompt"),
    ("/chat/completions", CHAT | {"response_format": {"type": "json_schema", "json_schema": {
        "name": "x", "schema": {"type": "integer", "maximum": 10**30}}}}, "response_format.json_schema.schema.maximum"),
    ("/chat/completions", CHAT | {"messages": [{"role": "user", "content": "hi", "extra": BIG}]},
     "messages[0].extra"),
    ("/chat/completions", CHAT | {"messages": [{"role": "user", "content": [{"type": "text", "text": "a", "n": BIG}]}]},
     "messages[0].content[0].n"),
    ("/chat/completions", CHAT | {"max_tokens": BIG}, "max_tokens"),
    ("/chat/completions", CHAT | {"user": 10**400}, "user"),
    ("/consensus", {"messages": [{"role": "user", "content": "hi", "extra": BIG}]}, "messages[0].extra"),
    ("/consensus", {"messages": MESSAGES, "notional": BIG}, "notional"),
    ("/decide", {"symbol": "X", "bars": [*bars(2), {**bars(1)[0], "volume": BIG}]}, "bars[2].volume"),
    ("/decide", {"sample": "GOOGL", "proposed_notional": BIG}, "proposed_notional"),
])
async def test_an_integer_past_64_bits_anywhere_is_a_400_naming_it(http: Http, path: str, body: dict[str, Any],
                                                                   param: str) -> None:
    status, raw = await send(http, "POST", path, json.dumps(body).encode())  # orjson cannot write BIG
    error = error_of(status, raw)
    assert status == 400 and error["param"] == param, error
    assert error["message"].startswith(param) and "64-bit" in error["message"]


@pytest.mark.parametrize(("raw", "param", "words"), [
    (b'{"model": "tier:fast", "messages": [], "temperature": NaN}', "temperature", "NaN"),
    (b'{"model": "tier:fast", "messages": [{"role": "user", "content": "hi"}], "seed": Infinity}', "seed", "NaN"),
    (b'{"model": "tier:fast", "messages": [{"role": "user", "content": "hi"}], "temperature": 1e999}',
     "temperature", "NaN"),
    (b'{"model": "tier:fast", "messages": [{"role": "user", "content": "\\ud800"}]}', "messages[0].content",
     "surrogate"),
    (b'{"model": "tier:fast", "messages": [{"role": "user", "content": "hi", "\\udfff": 1}]}', "messages[0]",
     "surrogate"),
    (b'\xff\xfe{"model": 1}', None, "UTF-8"),
    (b'{"model": "tier:\xc3(fast"}', None, "UTF-8"),
    (b'[1, 2, 3]', None, "JSON object"),
    (b'"a string"', None, "JSON object"),
    (b'42', None, "JSON object"),
    (b'null', None, "JSON object"),
    (b'', None, "JSON"),
    (b'[' * 5000 + b']' * 5000, None, "JSON"),
    (b'{"model": ' + b'9' * 5000 + b'}', None, "JSON"),
    (b'{"model": "tier:fast", "model": "tier:fast", "messages": 5}', "messages", "array"),
    (b'{"model": "' + b'm' * 100_000 + b'", "messages": []}', "model", "at most"),
])
async def test_a_body_that_cannot_travel_is_a_400(http: Http, raw: bytes, param: str | None, words: str) -> None:
    status, answer = await send(http, "POST", "/chat/completions", raw)
    error = error_of(status, answer)
    assert status == 400, error
    assert error["param"] == param and words in error["message"], error


@pytest.mark.parametrize("extra", [
    {"max_tokens": -1}, {"max_tokens": 0}, {"max_tokens": 2**63}, {"max_completion_tokens": 10**12},
    {"n": 0}, {"n": 2**63}, {"n": -5}, {"temperature": -1}, {"temperature": 1e308}, {"temperature": "hot"},
    {"stop": "x" * 200_000}, {"stop": [["nested"]] * 1000}, {"user": "u" * 500_000}, {"seed": "7"},
    {"stream": "yes"}, {"stream_options": {"include_usage": 3}}, {"response_format": {"type": "xml"}},
    {"response_format": []}, {"provider": [1]}, {"tools": {}}, {"messages": {"role": "user"}},
    {"messages": [None]}, {"messages": [{"role": "user", "content": {"a": 1}}]},
    {"messages": [{"role": "user", "content": [None, 1]}]},
])
async def test_odd_values_in_a_chat_body_are_never_a_5xx(http: Http, extra: dict[str, Any]) -> None:
    status, answer = await send(http, "POST", "/chat/completions", orjson.dumps(CHAT | extra))
    assert status < 500, answer
    if status != 200:
        error_of(status, answer)


@pytest.mark.parametrize("headers", [
    {"Content-Type": "text/plain"}, {"Content-Type": "application/json; charset=latin-1"},
    {"Content-Type": "multipart/form-data; boundary=x"},
    {"Content-Encoding": "gzip"}, {"Authorization": "Bearer"}, {"Authorization": "Basic dXNlcjpwYXNz"},
    {"Authorization": "Bearer " + "x" * 8000}, {"Authorization": "bearer  " + QUANT_TOKEN + " "},
    {"Accept": "text/event-stream"}, {"Transfer-Encoding": "chunked"},
])
async def test_odd_headers_are_never_a_5xx(http: Http, headers: dict[str, str]) -> None:
    status, answer = await send(http, "POST", "/chat/completions", orjson.dumps(CHAT), AUTH | headers)
    assert status < 500, answer
    if status != 200:
        error_of(status, answer)


@pytest.mark.parametrize(("path", "param"), [
    ("/report?day=9999-12-31", "day"), ("/report?day=0001-01-01", "day"), ("/report?day=2025-02-30", "day"),
    ("/report?day=" + "9" * 5000, "day"), ("/report?since=" + "9" * 400 + "d", "since"),
    ("/report?since=99999999999999999999w", "since"), ("/report?since=0001-01-01", "since"),
    ("/report?since=9999-12-31T23:59:59-23:59", "since"), ("/report?since=%00", "since"),
    ("/report?day=2025-01-01&since=1d", "day"),
    ("/usage?since=" + "9" * 400 + "d", "since"), ("/usage?since=1e9999d", "since"),
    ("/usage?since=0001-01-01T00:00:00%2B14:00", "since"), ("/usage?by=%ff%fe", "by"),
    ("/usage?by=model&by=../../etc", None),
])
async def test_a_bad_query_is_a_400_naming_it(http: Http, path: str, param: str | None) -> None:
    status, answer = await send(http, "GET", path)
    error = error_of(status, answer) if status != 200 else None
    if param is not None:
        assert status == 400 and error is not None and error["param"] == param, answer


@pytest.mark.parametrize(("method", "path"), [
    ("PUT", "/chat/completions"), ("DELETE", "/consensus"), ("PATCH", "/decide"), ("POST", "/models"),
    ("OPTIONS", "/chat/completions"), ("GET", "/chat/completions"), ("POST", "/usage"), ("TRACE", "/report"),
    ("PROPFIND", "/budget"), ("GET", "/nowhere/../../etc/passwd"), ("GET", "/%ff%fe"),
])
async def test_an_odd_method_or_path_answers_in_the_error_shape(http: Http, method: str, path: str) -> None:
    status, answer = await send(http, method, path, b"{}")
    assert status in (404, 405), answer
    error_of(status, answer)


async def test_an_unexpected_error_is_a_500_that_keeps_the_connection(http: Http,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="lyra.service")
    parts = urlsplit(http[1])
    assert parts.hostname is not None and parts.port is not None
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        answers = []
        for path in ("/v1/boom", "/v1/boom", "/healthz"):  # one connection, kept alive throughout
            writer.write(f"GET {path} HTTP/1.1\r\nHost: lyra\r\n\r\n".encode())
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
            length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            answers.append((head, await asyncio.wait_for(reader.readexactly(length), 30)))
    finally:
        writer.close()
    for head, body in answers[:2]:
        assert head.startswith(b"HTTP/1.1 500") and b"connection: close" not in head.lower()
        payload = orjson.loads(body)
        assert payload == {"error": {"message": "internal error", "type": "server_error", "param": None,
                                     "code": "internal_error"}}
    assert answers[2][0].startswith(b"HTTP/1.1 200") and orjson.loads(answers[2][1]) == {"status": "ok"}
    assert "unexpected RuntimeError while serving GET /v1/boom" in caplog.text
    assert "sk-or-v1" not in caplog.text and "a bug" not in caplog.text  # the type only, never the text


@pytest.mark.parametrize("request_bytes", [
    b"GET /v1/models HTTP/1.1\r\nHost: lyra\r\nContent-Length: -5\r\n\r\n",
    b"GET /v1/models HTTP/1.1\r\nHost: lyra\r\nContent-Length: 99999999999999999999999\r\n\r\n",
    b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n{}",
    b"G\x00T / HTTP/1.1\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    b"GET /v1/models HTTP/1.1\r\nBad Header: x\r\n\r\n",
])
async def test_a_request_that_is_not_http_gets_a_400_in_the_error_shape(http: Http, request_bytes: bytes) -> None:
    parts = urlsplit(http[1])
    assert parts.hostname is not None and parts.port is not None
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(request_bytes)
        raw = await asyncio.wait_for(reader.read(), 30)  # the server answers, then closes
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), raw
    assert error_of(400, body)["code"] == "invalid_http"


@pytest.mark.parametrize("head", [
    b"GET /v1/models?" + b"q" * 70_000 + b" HTTP/1.1\r\nHost: lyra\r\n\r\n",
    b"GET /v1/models HTTP/1.1\r\nHost: lyra\r\nX-Junk: " + b"j" * 70_000 + b"\r\n\r\n",
    b"GET /v1/models HTTP/1.1\r\n" + b"X-A: b\r\n" * 12_000 + b"\r\n",
])
async def test_a_request_head_past_the_bound_gets_a_431(http: Http, head: bytes) -> None:
    parts = urlsplit(http[1])
    assert parts.hostname is not None and parts.port is not None
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(head)
        raw = await asyncio.wait_for(reader.read(), 30)
    finally:
        writer.close()
    status_line, _, body = raw.partition(b"\r\n\r\n")
    assert status_line.startswith(b"HTTP/1.1 431"), raw[:200]
    assert error_of(431, body)["code"] == "headers_too_large"


class _Proxy:
    """A TCP relay to a real server that can be cut, as a network partition would.

    It runs its own event loop in a thread: the ledger's driver is synchronous, and would block
    a relay on the test's loop while it waits for that very relay.
    """

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.cut = False
        self.writers: set[asyncio.StreamWriter] = set()
        self.loop = asyncio.new_event_loop()
        self.port = 0

    def start(self) -> int:
        started = threading.Event()

        async def main() -> None:
            server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
            self.port = int(server.sockets[0].getsockname()[1])
            started.set()
            async with server:
                with contextlib.suppress(asyncio.CancelledError):
                    await server.serve_forever()

        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(main(),), daemon=True)
        self.thread.start()
        assert started.wait(30)
        return self.port

    def sever(self) -> None:
        def cut() -> None:
            self.cut = True
            for writer in self.writers:
                writer.close()

        self.loop.call_soon_threadsafe(cut)

    def close(self) -> None:
        self.sever()
        for task in asyncio.all_tasks(self.loop):
            self.loop.call_soon_threadsafe(task.cancel)
        self.thread.join(30)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.cut:
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self.writers |= {writer, up_writer}

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(65_536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))


async def test_a_ledger_that_cannot_be_reached_is_a_503_with_retry_after(
    sim: Simulator, tmp_path: Path, postgres_url: str
) -> None:
    url = make_url(postgres_url)
    proxy = _Proxy(url.host or "127.0.0.1", url.port or 5432)
    proxied = url.set(host="127.0.0.1", port=proxy.start()).render_as_string(hide_password=False)
    try:
        async with gateway(sim, tmp_path, ledger_url=proxied) as base, aiohttp.ClientSession() as session:
            http = (session, base)
            status, answer = await send(http, "GET", "/usage?since=1d")
            assert status == 200, answer
            proxy.sever()
            for path in ("/usage?since=1d", "/report?since=1d"):
                async with session.get(base + path, headers=AUTH) as r:
                    raw = await r.read()
                    assert r.status == 503, raw
                    assert int(r.headers["Retry-After"]) >= 1
                payload = orjson.loads(raw)
                assert set(payload["error"]) == {"message", "type", "param", "code"}
                assert payload["error"]["code"] == "ledger_unavailable", payload
                assert "postgres" not in payload["error"]["message"].lower()  # nothing of the URL
    finally:
        proxy.close()


async def test_a_budget_state_that_cannot_be_reached_is_a_503_on_every_route(
    sim: Simulator, tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    url = make_url(redis_url)
    proxy = _Proxy(url.host or "127.0.0.1", url.port or 6379)
    proxied = url.set(host="127.0.0.1", port=proxy.start()).render_as_string(hide_password=False)
    path = tmp_path / "lyra.toml"
    path.write_text(re.sub(r"\[state\]\n[^\[]*", f'[state]\nbackend = "redis"\nprefix = "{redis_prefix}"\n\n',
                           quant_config_text(), count=1))
    environ = engine_env(sim) | {"LYRA_LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.db'}", "LYRA_REDIS_URL": proxied}
    ops = {"Authorization": f"Bearer {OPS_TOKEN}"}
    routes = [("POST", "/v1/chat/completions", orjson.dumps(CHAT), AUTH),
              ("POST", "/v1/consensus", orjson.dumps({"messages": MESSAGES, "panel": "quick"}), AUTH),
              ("POST", "/v1/decide", orjson.dumps({"sample": "GOOGL"}), AUTH),
              ("GET", "/v1/usage", None, AUTH), ("GET", "/v1/budget", None, AUTH),
              ("GET", "/v1/report", None, AUTH), ("GET", "/metrics", None, ops)]
    try:
        async with guarded(create_app(Lyra.from_config(path, environ=environ))) as base, \
                aiohttp.ClientSession() as session:
            root = base.removesuffix("/v1")
            async with session.get(f"{base}/budget", headers=AUTH) as r:
                assert r.status == 200, await r.read()
            proxy.sever()
            for method, route, data, headers in routes:
                async with session.request(method, root + route, data=data, headers=headers) as r:
                    raw = await r.read()
                    assert r.status == 503, (route, r.status, raw)
                    assert int(r.headers["Retry-After"]) >= 1, route
                error = orjson.loads(raw)["error"]
                assert {"message", "type", "param", "code"} <= set(error) and error["type"] == "service_unavailable"
                assert "redis://" not in error["message"], error
    finally:
        proxy.close()


def test_a_store_outage_is_told_from_a_bug_by_its_type(tmp_path: Path) -> None:
    with pytest.raises(sqlite3.OperationalError) as unopenable:
        sqlite3.connect(tmp_path)  # a folder: "unable to open database file"
    assert store_outage(unopenable.value) == "store"
    try:
        try:
            sqlite3.connect(tmp_path)
        except sqlite3.OperationalError as exc:
            raise RuntimeError("wrapped") from exc
    except RuntimeError as wrapped:
        assert store_outage(wrapped) == "store"
    assert store_outage(RuntimeError("a bug")) is None
    assert store_outage(sqlite3.IntegrityError("a bug too")) is None
