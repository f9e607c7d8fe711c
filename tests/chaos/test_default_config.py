"""Behaviour A: the shipped config keeps state in SQLite files of the data folder, and refuses
several workers on the memory backend."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from gateway_support import child_env, free_port

from chaos.configs import gateway_config
from chaos.processes import LaunchGateway, http_ok, kill_group, poll_until, serve_command, spawn, tail
from chaos.traffic import fire, statuses
from lyra.config import example_config_text, parse_settings

pytestmark = pytest.mark.chaos

REFUSAL_DEADLINE_S = 60.0


def lyra_files(data_home: Path) -> set[str]:
    """The ledger and state files in the data folder (without SQLite's -wal and -shm companions)."""
    folder = data_home / "lyra"
    return {p.name for p in folder.glob("*.db")} if folder.exists() else set()


def test_the_shipped_config_keeps_state_in_sqlite() -> None:
    assert parse_settings(example_config_text(), "lyra.example.toml").state.backend == "sqlite"


async def test_simulator_mode_keeps_ledger_and_state_in_the_sim_files(
    tmp_path: Path, data_home: Path, launch_gateway: LaunchGateway
) -> None:
    config = gateway_config(tmp_path, desk_usd=5.0)
    gateway = await launch_gateway(config, child_env(XDG_DATA_HOME=str(data_home)))  # no key: simulator mode
    assert statuses(await fire([gateway.url], 5, concurrency=1)) == {200: 5}
    assert lyra_files(data_home) == {"ledger-sim.db", "state-sim.db"}


async def test_keyed_mode_keeps_ledger_and_state_in_the_real_files(
    tmp_path: Path, data_home: Path, gateway_env: dict[str, str], launch_gateway: LaunchGateway
) -> None:
    config = gateway_config(tmp_path, desk_usd=5.0)
    gateway = await launch_gateway(config, gateway_env)
    assert statuses(await fire([gateway.url], 5, concurrency=1)) == {200: 5}
    assert lyra_files(data_home) == {"ledger.db", "state.db"}


async def test_several_workers_on_the_memory_backend_refuse_to_start(
    tmp_path: Path, gateway_env: dict[str, str]
) -> None:
    config = gateway_config(tmp_path, desk_usd=5.0, state='backend = "memory"')
    log, port = tmp_path / "serve.log", free_port()
    proc = await spawn(serve_command(config, port, "--workers", "3"), log=log, env=gateway_env)
    try:
        started = await exits_or_serves(proc, f"http://127.0.0.1:{port}/readyz")
    finally:
        await kill_group(proc)
    assert not started, f"lyra serve --workers 3 started on the memory backend: {tail(log)}"
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    errors = [line for line in lines if "error" in line.lower()]
    assert proc.returncode != 0
    assert "Traceback" not in log.read_text(), tail(log)
    assert len(errors) == 1 and "memory" in errors[0], lines


async def exits_or_serves(proc: asyncio.subprocess.Process, ready_url: str) -> bool:
    """Wait until the child exits (False) or answers on `ready_url` (True)."""
    served = False

    async def settled() -> bool:
        nonlocal served
        served = proc.returncode is None and await http_ok(ready_url)
        return served or proc.returncode is not None

    await poll_until(settled, deadline_s=REFUSAL_DEADLINE_S, what="lyra serve to exit or serve")
    return served
