"""Requests/s and added latency of `lyra serve` before a zero-latency upstream, beside calling it directly.

The upstream is the simulator answering at once, in a child process; the gateway is `lyra serve`
(one worker) in another child process on the shipped defaults: the SQLite ledger, with every
answer durable before it is returned, and the SQLite budget state. This process drives both with
aiohttp, the same body, in the same run: first one request at a time (latency: p50 and p99, and
what the gateway adds at each), then `--concurrency` at a time (requests/s). The gateway path is a
cache miss with every guard on.

    python bench/gateway.py [--requests 3000] [--concurrency 50]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import importlib.util
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).parent))
from _upstream import free_port, zero_latency_upstream
from lyra.config import example_config_text

MESSAGES = [{"role": "user", "content": "BTC 4h: RSI 71, MACD crossed up. Signal?"}]
MODEL = "openai/gpt-4o-mini"
CLIENT_TOKEN = "lyra-bench-" + "b" * 40
UPSTREAM_KEY = "sk-or-v1-bench-" + "0" * 40


def gateway_config(state: str | None = None) -> str:
    """The shipped example with one client and limits high enough never to bind in a benchmark."""
    text = example_config_text()
    if state is not None:  # another [state] backend than the shipped default
        text = re.sub(r'(\[state\]\nbackend = )"\w+"', rf'\1"{state}"', text, count=1)
    text = re.sub(r"daily_tokens = [0-9_]+", "daily_tokens = 1_000_000_000", text)
    digest = hashlib.sha256(CLIENT_TOKEN.encode()).hexdigest()
    return text + (f'\n[limits]\nkey_rpm = 10000000\nkey_tpm = 10000000000\n'
                   f'\n[clients.bench]\ntoken_sha256 = "{digest}"\ndaily_usd = 150\n'
                   'requests_per_min = 100000000\n')


@contextlib.contextmanager
def gateway(upstream: str, folder: Path, state: str | None) -> Iterator[str]:
    """`lyra serve` in a child process; yields its /v1 URL once /readyz answers."""
    config = folder / "lyra.toml"
    config.write_text(gateway_config(state))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LYRA_", "OPENROUTER_"))}
    env |= {"OPENROUTER_API_KEY": UPSTREAM_KEY, "LYRA_OPENROUTER_BASE_URL": upstream,
            "LYRA_LEDGER_URL": f"sqlite:///{folder / 'ledger.db'}", "XDG_DATA_HOME": str(folder)}
    proc = subprocess.Popen([sys.executable, "-m", "lyra.cli.serve", "--config", str(config),
                             "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        _wait_ready(f"http://127.0.0.1:{port}/readyz", proc)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait(20)


def _wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    import urllib.request

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"lyra serve exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=1) as r:
            if r.status == 200:
                return
        time.sleep(0.05)
    raise RuntimeError("lyra serve did not become ready")


def server_stack() -> str:
    """What uvicorn will pick in the child: httptools and uvloop when installed, else h11 and asyncio."""
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    return f"uvicorn with {http} and {loop}"


async def latencies(call: Callable[[], Awaitable[None]], requests: int) -> list[float]:
    """Seconds per request, one at a time."""
    found = []
    for _ in range(requests):
        started = time.perf_counter()
        await call()
        found.append(time.perf_counter() - started)
    return found


async def throughput(call: Callable[[], Awaitable[None]], requests: int, concurrency: int) -> float:
    """Requests per second with `concurrency` requests in flight."""
    queue = iter(range(requests))

    async def worker() -> None:
        for _ in queue:
            await call()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return requests / (time.perf_counter() - started)


def caller(session: aiohttp.ClientSession, url: str, token: str) -> Callable[[], Awaitable[None]]:
    body = orjson.dumps({"model": MODEL, "messages": MESSAGES, "max_tokens": 50})
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}

    async def call() -> None:
        async with session.post(f"{url}/chat/completions", data=body, headers=headers) as r:
            payload = orjson.loads(await r.read())
            if r.status != 200:
                raise RuntimeError(f"{r.status}: {payload}")

    return call


async def run(requests: int, concurrency: int, state: str | None) -> None:
    with zero_latency_upstream() as upstream, tempfile.TemporaryDirectory() as tmp, \
            gateway(upstream, Path(tmp), state) as gateway_url:
        connector = aiohttp.TCPConnector(limit=concurrency)
        async with aiohttp.ClientSession(connector=connector) as session:
            paths = {"direct": caller(session, upstream, UPSTREAM_KEY),
                     "gateway": caller(session, gateway_url, CLIENT_TOKEN)}
            for call in paths.values():
                await latencies(call, 200)  # warm connections, caches and the ledger
            p50: dict[str, float] = {}
            p99: dict[str, float] = {}
            print(f"{requests} requests per run; upstream: zero-latency simulator in a child process; "
                  f"gateway: `lyra serve`, 1 worker, in another ({server_stack()})")
            print(f"{'path':<8} {'p50 ms':>7} {'p99 ms':>7} {'req/s @1':>9} {f'req/s @{concurrency}':>10}")
            for name, call in paths.items():
                found = sorted(await latencies(call, requests))
                rps = await throughput(call, requests, concurrency)
                p50[name] = statistics.median(found) * 1000
                p99[name] = found[min(len(found) - 1, int(len(found) * 0.99))] * 1000
                print(f"{name:<8} {p50[name]:>7.2f} {p99[name]:>7.2f} {len(found) / sum(found):>9.0f} "
                      f"{rps:>10.0f}")
            print(f"added by the gateway: p50 {p50['gateway'] - p50['direct']:.2f} ms, "
                  f"p99 {p99['gateway'] - p99['direct']:.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--state", choices=("sqlite", "memory"), default=None,
                        help="the gateway's [state] backend (default: the shipped config's)")
    args = parser.parse_args()
    asyncio.run(run(args.requests, args.concurrency, args.state))


if __name__ == "__main__":
    main()
