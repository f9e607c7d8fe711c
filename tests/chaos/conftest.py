"""Fixtures of the chaos suite: a standalone simulator, gateways that are always reaped, a private Redis."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from gateway_support import child_env, free_port

from chaos.processes import (
    GatewayProcess,
    LaunchGateway,
    RedisServer,
    SimulatorProcess,
    kill_group,
    start_gateway,
    start_simulator,
    terminate,
    upstream_env,
)
from support import service_missing


@pytest.fixture
def data_home(tmp_path: Path) -> Path:
    """The XDG_DATA_HOME of this test (tests/conftest.py points the environment at it)."""
    folder = Path(os.environ["XDG_DATA_HOME"])
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
async def upstream(tmp_path: Path) -> AsyncIterator[SimulatorProcess]:
    """One standalone simulator process: the upstream that bills every gateway and engine of the test."""
    sim = await start_simulator(tmp_path / "simulator.log")
    yield sim
    await terminate(sim.proc)


@pytest.fixture
def gateway_env(upstream: SimulatorProcess, data_home: Path) -> dict[str, str]:
    """The environment of a gateway with fake keys on the standalone simulator, data in `data_home`."""
    return child_env(**upstream_env(upstream), XDG_DATA_HOME=str(data_home))


@pytest.fixture
async def launch_gateway(tmp_path: Path) -> AsyncIterator[LaunchGateway]:
    """Start `lyra serve` children (config, env, *args); every one is killed with its workers at the end."""
    started: list[GatewayProcess] = []

    async def launch(config: Path, env: dict[str, str], *args: str) -> GatewayProcess:
        log = tmp_path / f"gateway.{len(started)}.log"
        gateway = await start_gateway(config, env, log, *args)
        started.append(gateway)
        return gateway

    yield launch
    for gateway in started:
        await terminate(gateway.proc)
        await kill_group(gateway.proc)  # workers a SIGKILLed supervisor left behind


@pytest.fixture
async def private_redis(tmp_path: Path) -> AsyncIterator[RedisServer]:
    """A redis-server of this test alone, which it may kill, freeze, restart and flush."""
    binary = shutil.which("redis-server")
    if binary is None:
        service_missing("redis-server is not installed, and the chaos tests must not break the shared Redis")
    assert binary is not None
    folder = tmp_path / "redis"
    folder.mkdir()
    server = RedisServer(binary, free_port(), folder)
    await server.start()
    yield server
    await server.kill()
