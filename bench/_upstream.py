"""Shared by the benchmarks: a simulator in a child process (its CPU is not counted here) and a CPU meter."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def zero_latency_upstream(time_scale: float = 0.0) -> Iterator[str]:
    """Yield the base URL of a simulator (answering at once by default) in its own process."""
    port = free_port()
    code = ("from lyra.simulator import run_simulator, SimulatorOptions;"
            f"run_simulator(port={port}, options=SimulatorOptions(time_scale={time_scale}, "
            "generation_lag_s=0.0))")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            time.sleep(0.05)
        else:
            raise RuntimeError("the simulator did not start")
        yield f"http://127.0.0.1:{port}/api/v1"
    finally:
        proc.terminate()
        proc.wait(5)


async def measure(
    call: Callable[[], Awaitable[object]], requests: int, concurrency: int, *, warmup: int = 0
) -> tuple[float, float]:
    """(process CPU microseconds per request, requests per second) over `requests` calls."""
    for _ in range(warmup):
        await call()  # warm connections and caches
    queue = iter(range(requests))

    async def worker() -> None:
        for _ in queue:
            await call()

    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return cpu / requests * 1e6, requests / wall
