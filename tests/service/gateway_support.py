"""Gateway test support: client tokens, configs with [clients.*], and uvicorn on a free port."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import uvicorn

from support import fast_config_text

DESK_TOKEN = "lyra-desk-" + "Qx7" * 14  # a realistic token, so leak tests have something to grep
TIGHT_TOKEN = "lyra-tight-" + "Zt4" * 14
SLOW_TOKEN = "lyra-slow-" + "Pm2" * 14
OPS_TOKEN = "lyra-ops-" + "Wv9" * 14  # an operator's (admin) token: it sees every client and key
SERVER_START_S = 30
SERVER_STOP_S = 20
MESSAGES = [{"role": "user", "content": "BTC 4h: RSI 71, MACD crossed up. Signal?"}]


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def clients_toml(*, desk_usd: float = 5.0, tight_usd: float = 0.00001, slow_rpm: int = 2) -> str:
    """Three clients: `desk` (fast and advanced tiers), `tight` (a budget too small for any call)
    and `slow` (a few requests a minute); and `ops`, an admin."""
    return (
        f'\n[clients.desk]\ntoken_sha256 = "{_sha(DESK_TOKEN)}"\ndaily_usd = {desk_usd}\n'
        'tiers = ["fast", "advanced"]\n'
        f'\n[clients.tight]\ntoken_sha256 = "{_sha(TIGHT_TOKEN)}"\ndaily_usd = {tight_usd}\n'
        f'\n[clients.slow]\ntoken_sha256 = "{_sha(SLOW_TOKEN)}"\ndaily_usd = 5\nrequests_per_min = {slow_rpm}\n'
        f'\n[clients.ops]\ntoken_sha256 = "{_sha(OPS_TOKEN)}"\ndaily_usd = 5\nrole = "admin"\n'
    )


def gateway_config_text(*, timeout_s: float = 0.5, state: str | None = None, desk_usd: float = 5.0) -> str:
    """The fast test config plus the three clients; `state` replaces the [state] section's body."""
    text = fast_config_text(timeout_s=timeout_s)
    if state is not None:
        text, found = re.subn(r"\[state\]\n[^\[]*", lambda _: f"[state]\n{state}\n\n", text, count=1)
        assert found, "the example config has no [state] section"
    return text + clients_toml(desk_usd=desk_usd)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def running(app: object, *, log_config: dict[str, object] | None = None,
                  **uvicorn_options: Any) -> AsyncIterator[str]:
    """Serve an ASGI app with uvicorn on a free loopback port; yield its /v1 base URL."""
    # uvicorn serves a socket bound here already: no other process can take the port meanwhile.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    config = uvicorn.Config(app, host="127.0.0.1", port=port, access_log=False, log_level="warning",
                            lifespan="on", log_config=log_config, **uvicorn_options)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        try:
            await asyncio.wait_for(task, 15)
        finally:
            sock.close()


def child_env(**extra: str) -> dict[str, str]:
    """This environment without Lyra's or OpenRouter's variables, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LYRA_", "OPENROUTER_"))}
    return env | extra


async def start_server(config: Path, env: dict[str, str], *args: str) -> tuple[asyncio.subprocess.Process, str]:
    """`lyra serve` in a child process on a free port; returns it and its /v1 URL once it is ready.

    The port is free when picked, but another process may bind it before the child does: then
    the child exits at once, and it starts again on another port.
    """
    for _ in range(4):
        try:
            return await _start_server(config, env, *args)
        except _PortTaken:
            continue
    raise RuntimeError("lyra serve found its port taken four times")


class _PortTaken(RuntimeError):
    pass


async def _start_server(config: Path, env: dict[str, str], *args: str) -> tuple[asyncio.subprocess.Process, str]:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "lyra.cli.serve", "--config", str(config), "--port", str(port), *args,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    root = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + SERVER_START_S
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                _, err = await proc.communicate()
                if "address already in use" in err.decode().lower():
                    raise _PortTaken(port)
                raise RuntimeError(f"lyra serve exited with {proc.returncode}: {err.decode()[-3000:]}")
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"{root}/readyz") as r:
                    if r.status == 200:
                        return proc, f"{root}/v1"
            await asyncio.sleep(0.05)
    proc.kill()
    raise RuntimeError("lyra serve did not become ready")


async def stop_server(proc: asyncio.subprocess.Process) -> tuple[int, str]:
    """SIGTERM, as a process manager stops it; returns the exit status and what it wrote to stderr."""
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    try:
        _, err = await asyncio.wait_for(proc.communicate(), SERVER_STOP_S)
    except TimeoutError:
        proc.kill()
        _, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, err.decode()
