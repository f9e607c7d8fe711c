"""A sweep for secrets with distinctive fakes: OpenRouter keys, client tokens, and the passwords
inside the Redis and Postgres URLs. A gateway on Redis state and a Postgres ledger serves every
kind of answer, an outage of its Redis included; then every response, log line, repr, ledger row,
Redis value, metric and page is searched for any of them, whole or in part."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import redis
import sqlalchemy
from gateway_support import MESSAGES, OPS_TOKEN, free_port, gateway_config_text, running
from sqlalchemy.engine import make_url
from test_service_secrets import CLIENT_TOKENS, secret_fragments

from lyra import Lyra
from lyra.service import ServiceOptions, create_app
from lyra.simulator import Fault, Simulator
from support import TOKENS, engine_env, kill_and_reap, service_missing

REDIS_PASSWORD = "RedisPw-Zq81Xk55Lm3w"
POSTGRES_PASSWORD = "PgPw-Hy62Vb09Rt4e"
DESK_TOKEN, TIGHT_TOKEN, _ = CLIENT_TOKENS


def every_fragment() -> list[str]:
    passwords = [REDIS_PASSWORD, POSTGRES_PASSWORD, OPS_TOKEN]
    return secret_fragments() + passwords + [p[3:13] for p in passwords]


@pytest.fixture
async def locked_redis(tmp_path: Path) -> AsyncIterator[tuple[str, asyncio.subprocess.Process]]:
    """A private redis-server that wants a password; yields its URL (password inside) and process."""
    binary = shutil.which("redis-server")
    if binary is None:
        service_missing("redis-server is not installed, so a Redis with a password cannot be started")
        raise AssertionError  # unreachable: service_missing skips or fails
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
        "--requirepass", REDIS_PASSWORD, "--dir", str(tmp_path),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    url = f"redis://:{REDIS_PASSWORD}@127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        for _ in range(200):
            with contextlib.suppress(redis.RedisError, OSError):
                if client.ping():
                    break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the private redis-server did not answer")
        yield url, proc
    finally:
        client.close()
        if proc.returncode is None:
            await kill_and_reap(proc)


def redis_values(url: str) -> str:
    """Every key and value the gateway left in Redis, as text."""
    client = redis.Redis.from_url(url)
    try:
        out = []
        for key in client.scan_iter(count=1000):
            kind = client.type(key).decode()
            value: Any = {"string": client.get, "hash": client.hgetall, "zset": lambda k: client.zrange(k, 0, -1),
                          "list": lambda k: client.lrange(k, 0, -1), "set": client.smembers}[kind](key)
            out.append(f"{key!r} {value!r}")
        return "\n".join(out)
    finally:
        client.close()


def ledger_values(url: str) -> str:
    """Every row of every table in the ledger's schema, as text."""
    engine = sqlalchemy.create_engine(url)
    try:
        meta = sqlalchemy.MetaData()
        meta.reflect(engine)
        with engine.connect() as conn:
            return "\n".join(repr(row) for table in meta.sorted_tables for row in conn.execute(table.select()))
    finally:
        engine.dispose()


async def test_no_secret_anywhere_a_gateway_on_redis_and_postgres_writes(
    sim: Simulator, tmp_path: Path, postgres_url: str, locked_redis: tuple[str, asyncio.subprocess.Process],
    caplog: pytest.LogCaptureFixture,
) -> None:
    redis_url, redis_proc = locked_redis
    ledger_url = make_url(postgres_url).set(password=POSTGRES_PASSWORD).render_as_string(hide_password=False)
    path = tmp_path / "lyra.toml"
    path.write_text(gateway_config_text(state='backend = "redis"\nprefix = "sweep:"'))
    environ = engine_env(sim) | {"LYRA_LEDGER_URL": ledger_url, "LYRA_REDIS_URL": redis_url}
    caplog.set_level(logging.DEBUG)
    lyra = Lyra.from_config(path, environ=environ)
    seen: list[str] = [repr(lyra.config), str(lyra.config), repr(lyra.settings), repr(lyra)]

    async def call(session: aiohttp.ClientSession, method: str, url: str, token: str | None,
                   body: object = None) -> int:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        data = orjson.dumps(body) if body is not None else None
        async with session.request(method, url, data=data, headers=headers) as r:
            seen.append(f"{r.status} {dict(r.headers)} {await r.text()}")
            return r.status

    ok = {"model": "tier:fast", "messages": MESSAGES, "max_tokens": 40}
    async with running(create_app(lyra, options=ServiceOptions(access_log=True))) as base, \
            aiohttp.ClientSession() as session:
        root, chat = base.removesuffix("/v1"), f"{base}/chat/completions"
        seen += [repr(lyra.ledger), repr(lyra.state), repr(lyra.budget)]
        assert await call(session, "POST", chat, DESK_TOKEN, ok) == 200
        await call(session, "POST", chat, DESK_TOKEN, ok | {"stream": True})
        assert await call(session, "POST", chat, TIGHT_TOKEN, ok) == 402
        await call(session, "POST", chat, TOKENS["premium"], ok)  # an OpenRouter key as a client token
        await call(session, "POST", f"{base}/consensus", OPS_TOKEN, {"messages": MESSAGES, "panel": "trade"})
        sim.add_fault(Fault(kind="revoked_key", count=8))
        await call(session, "POST", chat, DESK_TOKEN, ok)
        sim.clear_faults()
        for token in (DESK_TOKEN, OPS_TOKEN):
            for route in ("/models", "/usage?since=1d&by=client", "/budget", "/report?since=1d"):
                await call(session, "GET", base + route, token)
        await call(session, "GET", base + "/usage?since=1d&by=key", OPS_TOKEN)
        for route in ("/metrics", "/dashboard", "/static/dashboard.js", "/healthz", "/readyz"):
            await call(session, "GET", root + route, OPS_TOKEN)
        stored = redis_values(redis_url)
        await kill_and_reap(redis_proc)  # the state store goes away: a 503 that must not show its URL
        assert await call(session, "POST", chat, DESK_TOKEN, ok) == 503
        await call(session, "GET", base + "/budget", DESK_TOKEN)
        rows = ledger_values(ledger_url)
    seen += [stored, rows, caplog.text, *(repr(r.args) for r in caplog.records)]
    haystack = "\n".join(seen)
    assert "lyra_requests_total" in haystack and "sweep:" in stored and "'desk'" in rows
    leaks = [(i, fragment[:4]) for i, text in enumerate(seen) for fragment in every_fragment() if fragment in text]
    assert leaks == [], f"secrets leaked (index into what was seen, first characters): {leaks}"
