"""`lyra serve` against slow and hoarding clients: header and body deadlines, and the connection bound.

Each test runs a real `lyra serve` process with small limits given by its flags, talks to it over
raw sockets, and asserts only on outcomes (a status, a closed socket), waiting generously for them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import orjson
import pytest
from gateway_support import DESK_TOKEN, MESSAGES, child_env, gateway_config_text, start_server, stop_server

from lyra.simulator import Simulator
from support import engine_env

WAIT_S = 30  # how long an outcome may take on a loaded machine; never asserted on
MAX_CONNECTIONS = 8
CHAT = orjson.dumps({"model": "tier:fast", "messages": MESSAGES, "max_tokens": 20})
AUTH = {"Authorization": f"Bearer {DESK_TOKEN}", "Content-Type": "application/json"}

Socket = tuple[asyncio.StreamReader, asyncio.StreamWriter]


@contextlib.asynccontextmanager
async def serve(sim: Simulator, tmp_path: Path, *flags: str) -> AsyncIterator[str]:
    config = tmp_path / "lyra.toml"
    config.write_text(gateway_config_text())
    env = child_env(**engine_env(sim), LYRA_LEDGER_URL=f"sqlite:///{tmp_path / 'ledger.db'}")
    proc, url = await start_server(config, env, *flags)
    try:
        yield url
    finally:
        _, err = await stop_server(proc)
        assert "Traceback" not in err, err[-3000:]


async def connect(url: str) -> Socket:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    return await asyncio.open_connection(parts.hostname, parts.port)


async def until_closed(sock: Socket) -> bytes:
    """Everything the server sends before it closes the socket (b"" when it just closes it)."""
    reader, writer = sock
    try:
        return await asyncio.wait_for(reader.read(), WAIT_S)
    finally:
        writer.close()


def status_and_error(raw: bytes) -> tuple[int, dict[str, object]]:
    """The status line's code and the OpenAI error in the body of one raw HTTP response."""
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    payload = orjson.loads(body)
    assert set(payload) == {"error"} and set(payload["error"]) == {"message", "type", "param", "code"}
    return status, payload["error"]


async def chat(session: aiohttp.ClientSession, url: str) -> int:
    async with session.post(f"{url}/chat/completions", data=CHAT, headers=AUTH) as r:
        await r.read()
        return r.status


async def test_slow_headers_and_short_bodies_are_cut_off_while_others_are_served(
    sim: Simulator, tmp_path: Path
) -> None:
    async with serve(sim, tmp_path, "--header-timeout", "0.5", "--body-timeout", "0.5",
                     "--max-connections", str(MAX_CONNECTIONS)) as url:
        silent = await connect(url)
        slow_headers = await connect(url)
        slow_headers[1].write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: lyra\r\nContent-Ty")
        short_body = await connect(url)
        short_body[1].write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: lyra\r\n"
                            b"Authorization: Bearer " + DESK_TOKEN.encode() + b"\r\n"
                            b"Content-Type: application/json\r\nContent-Length: 500\r\n\r\n{\"model\": ")
        async with aiohttp.ClientSession() as session:
            # While the three hang, a well-behaved client is served.
            assert await chat(session, url) == 200
            assert await until_closed(silent) == b""  # never sent a byte: closed without an answer
            status, error = status_and_error(await until_closed(slow_headers))
            assert status == 408 and error["code"] == "request_timeout"
            status, error = status_and_error(await until_closed(short_body))
            assert status == 408 and error["code"] == "request_timeout" and "500" not in str(error["message"])
            assert await chat(session, url) == 200


@pytest.mark.parametrize("workers", ["1", "2"])  # with two, the deadline reaches the workers too
async def test_a_slow_header_after_a_kept_alive_request_is_cut_off_too(sim: Simulator, tmp_path: Path,
                                                                        workers: str) -> None:
    async with serve(sim, tmp_path, "--header-timeout", "0.5", "--workers", workers) as url:
        reader, writer = sock = await connect(url)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: lyra\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT_S)
        assert head.startswith(b"HTTP/1.1 200")
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        await asyncio.wait_for(reader.readexactly(length), WAIT_S)
        writer.write(b"GET /healthz HTTP/1.1\r\nHo")  # the next request starts, then stalls
        status, error = status_and_error(await until_closed(sock))
        assert status == 408 and error["code"] == "request_timeout"


async def test_a_body_trickled_after_its_413_does_not_hold_the_connection(sim: Simulator, tmp_path: Path) -> None:
    async with serve(sim, tmp_path, "--header-timeout", "0.5") as url:
        reader, writer = await connect(url)
        writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: lyra\r\n"
                     b"Authorization: Bearer " + DESK_TOKEN.encode() + b"\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n{")

        async def trickle() -> None:  # a byte at a time, for as long as the server takes it
            with contextlib.suppress(OSError):
                while not writer.is_closing():
                    writer.write(b" ")
                    await writer.drain()
                    await asyncio.sleep(0.05)

        trickling = asyncio.create_task(trickle())
        try:
            raw = await asyncio.wait_for(reader.read(), WAIT_S)  # the 413, then the server hangs up
        finally:
            trickling.cancel()
            writer.close()
        status, error = status_and_error(raw)
        assert status == 413 and error["code"] == "request_too_large"


async def test_a_flood_of_idle_sockets_past_the_bound_gets_503_and_then_the_server_recovers(
    sim: Simulator, tmp_path: Path
) -> None:
    async with serve(sim, tmp_path, "--header-timeout", "600", "--max-connections", str(MAX_CONNECTIONS)) as url:
        flood = [await connect(url) for _ in range(3 * MAX_CONNECTIONS)]
        async with aiohttp.ClientSession() as session:
            status, headers, payload = await _poll_until_refused(session, url)
            assert status == 503 and payload["error"]["code"] == "overloaded"
            assert set(payload["error"]) == {"message", "type", "param", "code"}
            assert int(headers["Retry-After"]) >= 1
            for _, writer in flood:
                writer.close()
            assert await _poll_until(lambda: chat(session, url), 200) == 200


async def test_idle_sockets_the_header_deadline_closes_free_the_bound(sim: Simulator, tmp_path: Path) -> None:
    async with serve(sim, tmp_path, "--header-timeout", "0.5", "--max-connections", str(MAX_CONNECTIONS)) as url:
        flood = [await connect(url) for _ in range(3 * MAX_CONNECTIONS)]
        closed = await asyncio.gather(*(until_closed(sock) for sock in flood))
        assert closed == [b""] * len(flood)  # the server hung up on every one of them
        async with aiohttp.ClientSession() as session:
            assert await _poll_until(lambda: chat(session, url), 200) == 200


async def _poll_until_refused(session: aiohttp.ClientSession, url: str
                              ) -> tuple[int, dict[str, str], dict[str, dict[str, object]]]:
    """The first answer to /healthz that is not 200: the server may accept the flood a little late."""
    for _ in range(WAIT_S * 10):
        async with session.get(url.removesuffix("/v1") + "/healthz") as r:
            if r.status != 200:
                return r.status, dict(r.headers), orjson.loads(await r.read())
        await asyncio.sleep(0.1)
    pytest.fail("the server kept answering past its connection bound")


async def _poll_until(call: object, wanted: int) -> int:
    """Call until it returns `wanted` (the server closes the flood's sockets in its own time)."""
    assert callable(call)
    status = 0
    for _ in range(WAIT_S * 10):
        with contextlib.suppress(aiohttp.ClientError):
            status = await call()
            if status == wanted:
                return status
        await asyncio.sleep(0.1)
    return status
