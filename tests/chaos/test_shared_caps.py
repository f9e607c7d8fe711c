"""Behaviour D: several multi-worker gateways, and several engine processes, on the DEFAULT config
(SQLite state in one data folder) never pass a client's cap or the day's cap."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from gateway_support import child_env

from budget_worker import ALL_PREMIUM
from chaos.configs import gateway_config
from chaos.engines import run_engine_bursts
from chaos.ledger_reads import attempt_cost_nanos
from chaos.processes import LaunchGateway, SimulatorProcess, terminate, upstream_env
from chaos.traffic import fire, statuses
from support import budget_config_text

pytestmark = pytest.mark.chaos

GATEWAYS = 3
WORKERS = "3"
CLIENT_CAP_USD = 0.004
CLIENT_CAP = 4_000_000  # nano-dollars: about 180 answers of the test prompt
DAY_CAP = 1_000_000_000  # $1.00 a day for the engines
ENGINES = 3
REQUESTS_PER_ENGINE = 350


async def test_gateways_of_three_workers_each_on_the_default_config_hold_a_clients_cap(
    tmp_path: Path, data_home: Path, upstream: SimulatorProcess, gateway_env: dict[str, str],
    launch_gateway: LaunchGateway
) -> None:
    config = gateway_config(tmp_path, desk_usd=CLIENT_CAP_USD)
    gateways = await asyncio.gather(*(launch_gateway(config, gateway_env, "--workers", WORKERS)
                                      for _ in range(GATEWAYS)))
    seen = statuses(await fire([g.url for g in gateways], 500, concurrency=24))
    for gateway in gateways:
        await terminate(gateway.proc)
    billed = await upstream.billed_nanos()
    print(f"\n{GATEWAYS} gateways x {WORKERS} workers: {dict(seen)}; billed {billed} of {CLIENT_CAP}")
    assert set(seen) <= {200, 402}, seen
    assert seen[402] > 0, "the cap must bind"
    assert billed <= CLIENT_CAP
    assert billed >= 0.8 * CLIENT_CAP, "the cap should be mostly used before requests are refused"
    assert billed <= attempt_cost_nanos(data_home / "lyra" / "ledger.db") <= CLIENT_CAP


async def test_engine_processes_on_the_default_config_hold_the_days_cap(
    tmp_path: Path, data_home: Path, upstream: SimulatorProcess
) -> None:
    config = tmp_path / "lyra.toml"
    config.write_text(budget_config_text(daily=1.0, shares=ALL_PREMIUM))  # the example's [state] untouched
    env = child_env(**upstream_env(upstream), XDG_DATA_HOME=str(data_home))
    outcomes = await run_engine_bursts(config, env, tmp_path, processes=ENGINES, requests=REQUESTS_PER_ENGINE)
    billed = await upstream.billed_nanos()
    print(f"\n{ENGINES} engines: {dict(outcomes)}; billed {billed} of {DAY_CAP}")
    assert set(outcomes) <= {"served", "BudgetExceeded"}, outcomes
    assert outcomes["BudgetExceeded"] > 0, "the cap must bind"
    assert billed <= DAY_CAP
    assert billed >= 0.95 * DAY_CAP
    assert billed <= attempt_cost_nanos(data_home / "lyra" / "ledger.db") <= DAY_CAP
