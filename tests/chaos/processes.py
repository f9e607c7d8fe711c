"""Real processes for the chaos tests: a standalone simulator, `lyra serve` gateways, a private Redis.

Every child writes its stderr to a file (a pipe nobody reads would fill and block it under load),
and every wait is a poll for a state with a generous deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as aioredis
from gateway_support import free_port

from support import KEY_NAMES, kill_and_reap, test_token

START_DEADLINE_S = 60.0
STOP_DEADLINE_S = 30.0
POLL_S = 0.05
_CLI = "import sys; from lyra.cli.commands import main; sys.argv[0] = 'lyra'; main()"


async def poll_until(check: Callable[[], Awaitable[bool]], *, deadline_s: float, what: str) -> None:
    """Await `check` every POLL_S until it is true; fail naming `what` once the deadline passes."""
    deadline = time.monotonic() + deadline_s
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(POLL_S)


async def spawn(args: list[str], *, log: Path, env: dict[str, str] | None = None,
                cwd: Path | None = None) -> asyncio.subprocess.Process:
    """Start a child, leader of its own process group, with stdout dropped and stderr in `log`."""
    with log.open("ab") as err:
        return await asyncio.create_subprocess_exec(
            *args, env=env, cwd=cwd, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL, stderr=err, start_new_session=True)


def tail(log: Path, chars: int = 3000) -> str:
    """The end of a child's stderr log, for failure messages."""
    return log.read_text(errors="replace")[-chars:] if log.exists() else "(no log)"


async def http_ok(url: str) -> bool:
    """True when GET `url` answers 200."""
    with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session, \
                session.get(url) as response:
            return response.status == 200
    return False


async def terminate(proc: asyncio.subprocess.Process) -> int:
    """SIGTERM, then SIGKILL if it has not exited within STOP_DEADLINE_S; returns the exit status."""
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), STOP_DEADLINE_S)
        except TimeoutError:
            await kill_and_reap(proc)
    assert proc.returncode is not None
    return proc.returncode


# --- the standalone simulator ---------------------------------------------------------------


@dataclass
class SimulatorProcess:
    """`lyra sim serve --time-scale 0` in a child: the one upstream that bills every process under test."""

    proc: asyncio.subprocess.Process
    port: int
    log: Path

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """What LYRA_OPENROUTER_BASE_URL points at."""
        return f"{self.root_url}/api/v1"

    async def stats(self) -> dict[str, Any]:
        """GET /_sim/stats: calls, faults fired and total_cost_nanos (what it billed, exactly)."""
        async with aiohttp.ClientSession() as session, session.get(f"{self.root_url}/_sim/stats") as r:
            assert r.status == 200, await r.text()
            data: dict[str, Any] = await r.json()
            return data

    async def billed_nanos(self) -> int:
        return int((await self.stats())["total_cost_nanos"])

    async def calls(self) -> int:
        return int((await self.stats())["calls"])

    async def add_fault(self, kind: str, **fields: object) -> None:
        """POST /_sim/faults: arm one fault (see lyra.simulator.faults.Fault for its fields)."""
        async with aiohttp.ClientSession() as session, \
                session.post(f"{self.root_url}/_sim/faults", json={"kind": kind, **fields}) as r:
            assert r.status == 201, await r.text()

    async def clear_faults(self) -> None:
        async with aiohttp.ClientSession() as session, session.delete(f"{self.root_url}/_sim/faults") as r:
            assert r.status == 200, await r.text()


async def start_simulator(log: Path, *, seed: int = 7) -> SimulatorProcess:
    """Start a standalone simulator on a free port and wait until its stats answer."""
    port = free_port()
    proc = await spawn([sys.executable, "-c", _CLI, "sim", "serve", "--port", str(port),
                        "--time-scale", "0", "--seed", str(seed)], log=log)
    sim = SimulatorProcess(proc, port, log)

    async def ready() -> bool:
        assert proc.returncode is None, f"the simulator exited: {tail(log)}"
        return await http_ok(f"{sim.root_url}/_sim/stats")

    await poll_until(ready, deadline_s=START_DEADLINE_S, what="the simulator to listen")
    return sim


def upstream_env(sim: SimulatorProcess) -> dict[str, str]:
    """Fake keys (one per key name, as support.engine_env sets them) pointed at a standalone simulator."""
    env = {f"LYRA_KEY_{name.upper()}": test_token(name) for name in KEY_NAMES}
    env["LYRA_OPENROUTER_BASE_URL"] = sim.base_url
    return env


# --- `lyra serve` ---------------------------------------------------------------------------


@dataclass
class GatewayProcess:
    """A `lyra serve` child on its port; `url` is its /v1 base."""

    proc: asyncio.subprocess.Process
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


# The `launch_gateway` fixture: (config, env, *serve args) -> a ready gateway, reaped at teardown.
LaunchGateway = Callable[..., Awaitable[GatewayProcess]]


def serve_command(config: Path, port: int, *args: str) -> list[str]:
    return [sys.executable, "-m", "lyra.cli.serve", "--config", str(config), "--port", str(port), *args]


async def start_gateway(config: Path, env: dict[str, str], log: Path, *args: str) -> GatewayProcess:
    """`lyra serve` on a free port, returned once /readyz answers 200."""
    port = free_port()
    proc = await spawn(serve_command(config, port, *args), log=log, env=env)
    gateway = GatewayProcess(proc, port, log)

    async def ready() -> bool:
        assert proc.returncode is None, f"lyra serve exited with {proc.returncode}: {tail(log)}"
        return await http_ok(f"{gateway.root_url}/readyz")

    try:
        await poll_until(ready, deadline_s=START_DEADLINE_S, what="lyra serve to be ready")
    except BaseException:
        await kill_group(proc)
        raise
    return gateway


async def kill_group(proc: asyncio.subprocess.Process) -> None:
    """SIGKILL a child started by `spawn` and everything in its process group (uvicorn's workers too)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    await asyncio.wait_for(proc.wait(), STOP_DEADLINE_S)


# --- a private Redis ------------------------------------------------------------------------


@dataclass
class RedisServer:
    """A `redis-server` of one test on its own port, without persistence: a restart comes back EMPTY."""

    binary: str
    port: int
    folder: Path
    proc: asyncio.subprocess.Process | None = None
    frozen: bool = False
    starts: int = field(default=0)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        """Start it (again, on the same port) and wait until it answers PING."""
        assert self.proc is None or self.proc.returncode is not None, "already running"
        self.starts += 1
        self.proc = await spawn([self.binary, "--port", str(self.port), "--bind", "127.0.0.1",
                                 "--save", "", "--appendonly", "no", "--dir", str(self.folder)],
                                log=self.folder / f"redis.{self.starts}.log")
        await poll_until(self.answers, deadline_s=START_DEADLINE_S, what="redis-server to answer PING")

    async def answers(self) -> bool:
        """True when PING gets PONG within a second."""
        client = aioredis.Redis.from_url(self.url, socket_connect_timeout=1, socket_timeout=1)
        try:
            return bool(await client.ping())
        except (aioredis.RedisError, OSError):
            return False
        finally:
            await client.aclose()

    async def kill(self) -> None:
        """SIGKILL: everything it held is gone."""
        if self.proc is not None:
            self.thaw()
            await kill_and_reap(self.proc)

    async def restart_empty(self) -> None:
        await self.kill()
        await self.start()

    def freeze(self) -> None:
        """SIGSTOP: connections stay open and nothing answers, the way a hung server looks."""
        assert self.proc is not None and self.proc.returncode is None
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        if self.frozen and self.proc is not None and self.proc.returncode is None:
            os.kill(self.proc.pid, signal.SIGCONT)
        self.frozen = False

    async def flushall(self) -> None:
        client = aioredis.Redis.from_url(self.url)
        try:
            await client.flushall()
        finally:
            await client.aclose()

    async def key_count(self) -> int:
        client = aioredis.Redis.from_url(self.url)
        try:
            return int(await client.dbsize())
        finally:
            await client.aclose()
