"""`lyra serve` as real processes: two sharing Redis and Postgres hold one client's cap; SIGTERM drains.

Every server runs its own engine against the one simulator of the test process, so the
simulator's books are the real upstream spend of both together.
"""

from __future__ import annotations

import asyncio
import collections
import signal
from decimal import Decimal
from pathlib import Path

import aiohttp
import orjson
from gateway_support import (
    DESK_TOKEN,
    MESSAGES,
    OPS_TOKEN,
    child_env,
    gateway_config_text,
    start_server,
    stop_server,
)

from lyra.ledger import Ledger
from lyra.money import NANOS_PER_USD
from lyra.simulator import Simulator, SimulatorOptions
from support import engine_env

AUTH = {"Authorization": f"Bearer {DESK_TOKEN}", "Content-Type": "application/json"}
CAP_USD = 0.002
CAP = 2_000_000  # nano-dollars
REQUESTS = 240  # far more than the cap pays for, half to each server
CONCURRENCY = 24
MODEL = "openai/gpt-4o-mini"


def open_ledger(url: str) -> Ledger:
    """A ledger to read what the servers wrote; started, so that close() releases its connections."""
    ledger = Ledger(url)
    ledger.start()
    return ledger


def clean_exit(code: int, err: str) -> bool:
    """Uvicorn drains, shuts the app down, then re-raises the SIGTERM it caught: -15 is normal."""
    return code in (0, -signal.SIGTERM) and "Application shutdown complete" in err and "Traceback" not in err


async def fire(urls: list[str]) -> collections.Counter[int]:
    """REQUESTS calls spread over the servers, CONCURRENCY at a time; counts of each status."""
    body = orjson.dumps({"model": MODEL, "messages": MESSAGES, "max_tokens": 100})
    statuses: collections.Counter[int] = collections.Counter()
    queue = iter(range(REQUESTS))
    async with aiohttp.ClientSession() as session:

        async def worker() -> None:
            for i in queue:
                async with session.post(f"{urls[i % len(urls)]}/chat/completions", data=body,
                                        headers=AUTH) as r:
                    await r.read()
                    statuses[r.status] += 1

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return statuses


async def test_two_servers_sharing_redis_and_postgres_hold_one_clients_cap(
    sim: Simulator, tmp_path: Path, redis_url: str, redis_prefix: str, postgres_url: str
) -> None:
    config = tmp_path / "lyra.toml"
    config.write_text(gateway_config_text(state=f'backend = "redis"\nprefix = "{redis_prefix}"',
                                          timeout_s=5, desk_usd=CAP_USD))
    env = child_env(**engine_env(sim), LYRA_REDIS_URL=redis_url, LYRA_LEDGER_URL=postgres_url)
    servers = await asyncio.gather(start_server(config, env), start_server(config, env))
    try:
        statuses = await fire([url for _, url in servers])
    finally:
        stopped = [await stop_server(proc) for proc, _ in servers]
    spent = sim.stats.total_cost_nanos
    print(f"\n2 servers, {REQUESTS} requests: {dict(statuses)}; upstream spend {spent} of {CAP} nano-USD")
    assert set(statuses) == {200, 402}, statuses
    assert spent <= CAP
    assert spent >= CAP * 0.85, "the cap should be mostly used before requests are refused"
    for code, err in stopped:
        assert clean_exit(code, err), err[-2000:]
    ledger = open_ledger(postgres_url)  # both servers flushed their rows on shutdown
    try:
        # The engine books each call's cost rounded up to the nano-dollar; the simulator sums exactly.
        booked = ledger.spend_between(0, 2**40).by_client
        assert set(booked) == {"desk"} and spent <= booked["desk"] <= CAP
        assert booked["desk"] >= CAP * 0.95  # refused only once one more worst case could not fit
        served = [row for row in ledger.rows(kind="request") if row.status == "ok"]
        assert len(served) == statuses[200]
    finally:
        ledger.close()


async def test_sigterm_lets_a_request_in_flight_finish_and_flushes_the_ledger(tmp_path: Path) -> None:
    # Real latencies (the fast tier answers in 0.5-1 s), so the request is still in flight at SIGTERM.
    async with Simulator(options=SimulatorOptions(time_scale=1.0, generation_lag_s=0.0)) as slow_sim:
        config = tmp_path / "lyra.toml"
        config.write_text(gateway_config_text(timeout_s=10))
        ledger_path = tmp_path / "ledger.db"
        env = child_env(**engine_env(slow_sim), LYRA_LEDGER_URL=f"sqlite:///{ledger_path}")
        proc, url = await start_server(config, env)
        try:
            async with aiohttp.ClientSession() as session:
                body = orjson.dumps({"model": "tier:fast", "messages": MESSAGES, "max_tokens": 50})
                request = asyncio.ensure_future(session.post(f"{url}/chat/completions", data=body,
                                                             headers=AUTH))
                for _ in range(1000):  # until the call has reached the upstream
                    if slow_sim.stats.calls:
                        break
                    await asyncio.sleep(0.01)
                stopping = asyncio.ensure_future(stop_server(proc))
                async with await request as response:
                    assert response.status == 200
                    answer = await response.json()
            code, err = await stopping
        finally:
            if proc.returncode is None:
                proc.kill()
    assert answer["choices"][0]["message"]["content"]
    assert clean_exit(code, err), err[-2000:]
    ledger = open_ledger(f"sqlite:///{ledger_path}")
    try:
        assert [(row.status, row.client) for row in ledger.rows(kind="request")] == [("ok", "desk")]
    finally:
        ledger.close()


async def test_workers_share_the_port_and_metrics_add_up_across_them(sim: Simulator, tmp_path: Path) -> None:
    config = tmp_path / "lyra.toml"
    config.write_text(gateway_config_text(timeout_s=5))
    env = child_env(**engine_env(sim), LYRA_LEDGER_URL=f"sqlite:///{tmp_path / 'ledger.db'}")
    proc, url = await start_server(config, env, "--workers", "2")
    try:
        body = orjson.dumps({"model": MODEL, "messages": MESSAGES, "max_tokens": 20})
        async with aiohttp.ClientSession() as session:
            for _ in range(12):
                # A new connection each time, so the kernel spreads them over both workers.
                async with session.post(f"{url}/chat/completions", data=body,
                                        headers=AUTH | {"Connection": "close"}) as r:
                    assert r.status == 200
            async with session.get(url.removesuffix("/v1") + "/metrics",
                                   headers={"Authorization": f"Bearer {OPS_TOKEN}"}) as r:
                text = await r.text()
    finally:
        code, err = await stop_server(proc)
    served = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                 if line.startswith("lyra_requests_total{") and 'outcome="ok"' in line)
    assert served == 12
    assert 'lyra_budget_remaining_usd{cap="client:desk"}' in text
    # Merged from both workers' files: no _created series, and the dollars add up to the ledger's
    # nano-dollars exactly.
    assert "_created" not in text
    spend = [Decimal(line.rsplit(" ", 1)[1]) for line in text.splitlines()
             if line.startswith("lyra_spend_usd_total{")]
    ledger = open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        billed = sum(row.cost_nanos for row in ledger.rows(kind="attempt"))
    finally:
        ledger.close()
    assert len(spend) > 0 and sum(spend) * NANOS_PER_USD == billed > 0
    assert code in (0, -signal.SIGTERM), err[-2000:]
