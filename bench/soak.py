"""Resident memory of `lyra serve` over a long run at a fixed request rate, beside a bare proxy's.

The upstream is the simulator in a child process (its latencies scaled by `--time-scale`, so
requests and streams are really in flight). Two servers in two more child processes serve from
it: `lyra serve` (one worker, the shipped defaults: SQLite budget state and a durable SQLite
ledger, in a temporary data folder) and, as the baseline, the smallest honest gateway: a
Starlette app on uvicorn that checks a bearer token and proxies the chat request with aiohttp.
This process drives both at `--rate` requests/s each, open loop (requests are sent on a
schedule, not when the previous ones finish, so a slow server does not lower the offered load):

- Lyra gets a trader's day in miniature: whole and streamed chat completions across the tiers
  and explicit models, task requests the response cache answers, clients that hang up after the
  first streamed chunk, bad bodies (400), a wrong token (401), a client over its budget (402),
  a tier the client may not use (403), a client over its request rate (429 in part), usage,
  budget and metrics reads;
- the baseline gets the whole chat completion only, to the models the tiers resolve to.

Every `--sample-s` seconds it prints the resident memory (VmRSS of the process and its
children) and open descriptors of both servers, the requests done, the unexpected outcomes and
the chat latency. At the end: the growth after `--warmup-min` as the least-squares slope of RSS
over time in MiB/h with its 95% interval, for both, and the verdict (see BENCHMARKS.md).

    python bench/soak.py [--minutes 30] [--rate 40] [--sample-s 60] [--warmup-min 5] [--json PATH]

`--skip usage` (any of the kinds, comma-separated) leaves kinds out of Lyra's mix, to find out
which one a growth comes from.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import importlib.util
import math
import os
import platform
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).parent))
from _upstream import free_port, zero_latency_upstream
from lyra.config import example_config_text

UPSTREAM_KEY = "sk-or-v1-bench-" + "0" * 40
DESK_TOKEN = "lyra-soak-desk-" + "d" * 36  # tiers fast and advanced
OPS_TOKEN = "lyra-soak-ops-" + "o" * 37  # the operator (admin): every tier, every client's usage, /metrics
TIGHT_TOKEN = "lyra-soak-tight-" + "t" * 35  # a budget too small for any call: 402
SLOW_TOKEN = "lyra-soak-slow-" + "s" * 36  # a few requests a minute: 429 past them
WRONG_TOKEN = "lyra-soak-wrong-" + "w" * 35  # configured nowhere: 401
BASELINE_TOKEN = "lyra-soak-base-" + "b" * 36
SLOW_RPM = 30
READY_S = 60
STOP_S = 30
REQUEST_TIMEOUT_S = 30
MAX_IN_FLIGHT = 2000  # per server; past it a scheduled request is counted as skipped, not sent

# (what the request names at Lyra, the catalogue model the baseline sends for the same call):
# the baseline names the first model of each tier, the one Lyra routes a tier request to.
CHAT_TARGETS = [
    ("tier:fast", "google/gemini-2.5-flash-lite"),
    ("tier:advanced", "anthropic/claude-sonnet-4.6"),
    ("openai/gpt-4o-mini", "openai/gpt-4o-mini"),
    ("deepseek/deepseek-chat", "deepseek/deepseek-chat"),
    ("tier:premium", "anthropic/claude-opus-4.8"),
    ("tier:specialized", "openai/gpt-5.3-codex"),
]
CACHED_PROMPTS = [f"{symbol} 1h: RSI {rsi}, volume 2x average. Market regime?"
                  for symbol in ("BTC/USDT", "ETH/USDT") for rsi in (38, 55, 71)]
BAD_BODIES = [
    b"{not json",
    orjson.dumps({"model": "tier:fast"}),  # no messages
    orjson.dumps({"model": "tier:fast", "messages": [{"role": "user", "content": "hi"}], "max_tokens": "50"}),
    orjson.dumps({"model": "no/such-model", "messages": [{"role": "user", "content": "hi"}]}),
    orjson.dumps({"model": "tier:fast", "messages": [{"role": "user", "content": "hi"}], "n": 2}),
    orjson.dumps({"model": "tier:fast", "messages": [{"role": "oracle", "content": "hi"}]}),
]


# --- the servers ------------------------------------------------------------------------------

def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def soak_config() -> str:
    """The shipped example with caps no run can reach, and the soak's clients."""
    text = example_config_text()
    text = re.sub(r"daily_usd = [0-9_.]+", "daily_usd = 1_000_000", text)
    text = re.sub(r"daily_tokens = [0-9_]+", "daily_tokens = 1_000_000_000_000", text)
    unbounded = "daily_usd = 1_000_000\nrequests_per_min = 100_000_000\n"
    return text + (
        "\n[limits]\nkey_rpm = 100_000_000\nkey_tpm = 1_000_000_000_000\n"
        f'\n[clients.desk]\ntoken_sha256 = "{_sha(DESK_TOKEN)}"\n{unbounded}tiers = ["fast", "advanced"]\n'
        f'\n[clients.ops]\ntoken_sha256 = "{_sha(OPS_TOKEN)}"\nrole = "admin"\n{unbounded}'
        f'\n[clients.tight]\ntoken_sha256 = "{_sha(TIGHT_TOKEN)}"\ndaily_usd = 0.00001\n'
        f'\n[clients.slow]\ntoken_sha256 = "{_sha(SLOW_TOKEN)}"\ndaily_usd = 1_000_000\n'
        f"requests_per_min = {SLOW_RPM}\n")


@dataclass
class Server:
    """A server under test in a child process; its stderr goes to a file, never to a pipe that fills."""

    name: str
    proc: subprocess.Popen[bytes]
    root: str
    stderr_path: Path

    def stderr_lines(self) -> list[str]:
        return self.stderr_path.read_text(errors="replace").splitlines()


def _child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LYRA_", "OPENROUTER_", "PYTHONTRACE"))}
    return env | extra


def _spawn(name: str, argv: list[str], env: dict[str, str], folder: Path, port: int) -> Server:
    stderr_path = folder / f"{name}.stderr"
    with stderr_path.open("wb") as stderr:
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
    server = Server(name, proc, f"http://127.0.0.1:{port}", stderr_path)
    try:
        _wait_ready(server)
    except BaseException:
        _stop(server)
        raise
    return server


def _wait_ready(server: Server) -> None:
    deadline = time.monotonic() + READY_S
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            tail = "\n".join(server.stderr_lines()[-20:])
            raise RuntimeError(f"{server.name} exited with {server.proc.returncode}:\n{tail}")
        with contextlib.suppress(OSError), urllib.request.urlopen(f"{server.root}/readyz", timeout=1) as r:
            if r.status == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{server.name} did not become ready in {READY_S} s")


def _stop(server: Server) -> int:
    """SIGTERM, as a process manager stops it; its exit status."""
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)
    try:
        return server.proc.wait(STOP_S)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        return server.proc.wait()


def start_lyra(upstream: str, folder: Path) -> Server:
    config = folder / "lyra.toml"
    config.write_text(soak_config())
    port = free_port()
    env = _child_env(OPENROUTER_API_KEY=UPSTREAM_KEY, LYRA_OPENROUTER_BASE_URL=upstream,
                     LYRA_LEDGER_URL=f"sqlite:///{folder / 'ledger.db'}", XDG_DATA_HOME=str(folder))
    argv = [sys.executable, "-m", "lyra.cli.serve", "--config", str(config), "--port", str(port)]
    return _spawn("lyra", argv, env, folder, port)


def start_baseline(upstream: str, folder: Path) -> Server:
    port = free_port()
    code = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import soak; "
            f"soak.serve_baseline({port}, {upstream!r})")
    return _spawn("baseline", [sys.executable, "-c", code], _child_env(), folder, port)


def serve_baseline(port: int, upstream: str) -> None:
    """The baseline's process: a bearer-checking Starlette proxy on uvicorn (the same stack as Lyra's)."""
    import hmac

    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    expected = _sha(BASELINE_TOKEN).encode()
    session: list[aiohttp.ClientSession] = []
    upstream_headers = {"Authorization": f"Bearer {UPSTREAM_KEY}", "Content-Type": "application/json"}

    async def chat(request: Request) -> Response:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if not hmac.compare_digest(hashlib.sha256(token.encode()).hexdigest().encode(), expected):
            return Response(b'{"error":{"message":"unknown token"}}', 401, media_type="application/json")
        body = await request.body()
        async with session[0].post(f"{upstream}/chat/completions", data=body, headers=upstream_headers) as r:
            return Response(await r.read(), r.status, media_type="application/json")

    async def ready(request: Request) -> Response:
        return Response(b"ok")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        session.append(aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)))
        try:
            yield
        finally:
            await session[0].close()

    app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"]),
                            Route("/readyz", ready)], lifespan=lifespan)
    uvicorn.run(app, host="127.0.0.1", port=port, access_log=False, log_level="warning", server_header=False)


def server_stack() -> str:
    """What uvicorn picks in the children: httptools and uvloop when installed, else h11 and asyncio."""
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    return f"uvicorn with {http} and {loop}"


# --- memory -----------------------------------------------------------------------------------

def process_tree(pid: int) -> list[int]:
    """`pid` and every live descendant (uvicorn's workers, if any)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{current}/task"):
                text = Path(f"/proc/{current}/task/{task}/children").read_text()
                todo.extend(int(child) for child in text.split())
    return found


def resident_mib(pid: int, field: str = "VmRSS") -> float:
    """VmRSS (or another /proc status field in kB, such as RssAnon) of the process and its children,
    in MiB (0 for a process that has gone)."""
    total_kib = 0
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith(f"{field}:"):
                    total_kib += int(line.split()[1])
    return total_kib / 1024


def open_fds(pid: int) -> int:
    count = 0
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            count += len(os.listdir(f"/proc/{member}/fd"))
    return count


# --- the load ---------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Outcome:
    """One request: its kind, what came back ("200", "429", or the client-side exception) and how long."""

    kind: str
    status: str
    seconds: float
    expected: bool


@dataclass
class Tally:
    """What one server's requests did: since the last sample and over the whole run."""

    interval: list[Outcome] = field(default_factory=list)
    statuses: Counter[tuple[str, str]] = field(default_factory=Counter)
    latencies: dict[str, list[float]] = field(default_factory=dict)
    done: int = 0
    unexpected: int = 0
    skipped: int = 0
    max_lag_s: float = 0.0
    first_unexpected: list[str] = field(default_factory=list)

    def add(self, outcome: Outcome) -> None:
        self.interval.append(outcome)
        self.statuses[outcome.kind, outcome.status] += 1
        self.done += 1
        if outcome.expected:
            self.latencies.setdefault(outcome.kind, []).append(outcome.seconds)
        else:
            self.unexpected += 1
            if len(self.first_unexpected) < 5:
                self.first_unexpected.append(f"{outcome.kind}: {outcome.status}")

    def take_interval(self) -> list[Outcome]:
        taken, self.interval = self.interval, []
        return taken


Fire = Callable[[int], Awaitable[Outcome]]


async def open_loop(fire: Fire, rate: float, seconds: float, tally: Tally) -> None:
    """Send request i at start + i / rate, whether or not the earlier ones have finished."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    in_flight: set[asyncio.Task[None]] = set()

    async def one(i: int) -> None:
        tally.add(await fire(i))

    for i in range(int(seconds * rate)):
        due = start + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            tally.max_lag_s = max(tally.max_lag_s, -delay)
        if len(in_flight) >= MAX_IN_FLIGHT:
            tally.skipped += 1
            continue
        task = asyncio.create_task(one(i))
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)
    if in_flight:
        await asyncio.wait(in_flight)


def _chat_body(i: int, model: str, *, stream: bool = False, content: str | None = None) -> bytes:
    text = content or f"BTC 4h: RSI {30 + i % 50}, MACD crossed up, funding {i % 7} bp. Signal? (#{i})"
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": text}],
                            "max_tokens": 40 + i % 5 * 40}
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return orjson.dumps(body)


def _headers(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


class LyraMix:
    """The request mix sent to Lyra, drawn per request from a seeded generator (the same run twice)."""

    WEIGHTS: ClassVar[dict[str, int]] = {
        "chat": 39, "stream": 18, "hangup": 6, "cached": 10, "bad_body": 5, "wrong_token": 3,
        "over_budget": 3,
        "tier_denied": 2, "slow_client": 3, "usage": 5, "budget": 4, "metrics": 2}
    EXPECTED: ClassVar[dict[str, set[str]]] = {
        "bad_body": {"400"}, "wrong_token": {"401"}, "over_budget": {"402"}, "tier_denied": {"403"},
        "slow_client": {"200", "429"}}

    def __init__(self, session: aiohttp.ClientSession, root: str, seed: int,
                 skip: tuple[str, ...] = ()) -> None:
        self.session = session
        self.root = root
        weights = {kind: weight for kind, weight in self.WEIGHTS.items() if kind not in skip}
        rng = random.Random(seed)
        self._draws = iter(lambda: rng.choices(list(weights), list(weights.values()))[0], None)

    async def fire(self, i: int) -> Outcome:
        kind = next(self._draws)
        started = time.perf_counter()
        try:
            status = await getattr(self, f"_{kind}")(i)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            status = type(exc).__name__
        expected = status in self.EXPECTED.get(kind, {"200"})
        return Outcome(kind, status, time.perf_counter() - started, expected)

    async def _post(self, body: bytes, token: str) -> str:
        async with self.session.post(f"{self.root}/v1/chat/completions", data=body,
                                     headers=_headers(token)) as r:
            payload = await r.read()
            if r.status == 200 and "choices" not in orjson.loads(payload):
                return "200 without choices"
            return str(r.status)

    async def _get(self, path: str, token: str | None) -> str:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.session.get(f"{self.root}{path}", headers=headers) as r:
            await r.read()
            return str(r.status)

    def _target(self, i: int) -> tuple[str, str]:
        lyra_model = CHAT_TARGETS[i % len(CHAT_TARGETS)][0]
        return lyra_model, OPS_TOKEN if lyra_model in ("tier:premium", "tier:specialized") or i % 2 \
            else DESK_TOKEN

    async def _chat(self, i: int) -> str:
        model, token = self._target(i)
        return await self._post(_chat_body(i, model), token)

    async def _stream(self, i: int) -> str:
        model, token = self._target(i)
        async with self.session.post(f"{self.root}/v1/chat/completions",
                                     data=_chat_body(i, model, stream=True), headers=_headers(token)) as r:
            if r.status != 200:
                await r.read()
                return str(r.status)
            received = b""
            async for chunk in r.content.iter_any():
                received = (received + chunk)[-64:]
            return "200" if b"data: [DONE]" in received else "200 without [DONE]"

    async def _hangup(self, i: int) -> str:
        """Read the first streamed chunk, then close the connection: a client that went away."""
        model, token = self._target(i)
        async with self.session.post(f"{self.root}/v1/chat/completions",
                                     data=_chat_body(i, model, stream=True), headers=_headers(token)) as r:
            if r.status == 200:
                await r.content.readany()
            r.close()
            return str(r.status)

    async def _cached(self, i: int) -> str:
        prompt = CACHED_PROMPTS[i % len(CACHED_PROMPTS)]
        return await self._post(_chat_body(0, "task:market_analysis", content=prompt), OPS_TOKEN)

    async def _bad_body(self, i: int) -> str:
        return await self._post(BAD_BODIES[i % len(BAD_BODIES)], DESK_TOKEN)

    async def _wrong_token(self, i: int) -> str:
        return await self._post(_chat_body(i, "tier:fast"), WRONG_TOKEN)

    async def _over_budget(self, i: int) -> str:
        return await self._post(_chat_body(i, "tier:fast"), TIGHT_TOKEN)

    async def _tier_denied(self, i: int) -> str:
        return await self._post(_chat_body(i, "tier:premium"), DESK_TOKEN)

    async def _slow_client(self, i: int) -> str:
        return await self._post(_chat_body(i, "tier:fast"), SLOW_TOKEN)

    async def _usage(self, i: int) -> str:
        return await self._get(f"/v1/usage?by={('model', 'client', 'tier')[i % 3]}", OPS_TOKEN)

    async def _budget(self, i: int) -> str:
        return await self._get("/v1/budget", DESK_TOKEN if i % 2 else OPS_TOKEN)

    async def _metrics(self, i: int) -> str:
        return await self._get("/metrics", OPS_TOKEN)  # an operator's page


class BaselineLoad:
    """The baseline's only request: the whole chat completion, to the model Lyra's target resolves to."""

    def __init__(self, session: aiohttp.ClientSession, root: str) -> None:
        self.session = session
        self.root = root

    async def fire(self, i: int) -> Outcome:
        started = time.perf_counter()
        model = CHAT_TARGETS[i % len(CHAT_TARGETS)][1]
        try:
            async with self.session.post(f"{self.root}/v1/chat/completions", data=_chat_body(i, model),
                                         headers=_headers(BASELINE_TOKEN)) as r:
                payload = await r.read()
                status = str(r.status)
                if r.status == 200 and "choices" not in orjson.loads(payload):
                    status = "200 without choices"
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            status = type(exc).__name__
        return Outcome("chat", status, time.perf_counter() - started, status == "200")


# --- samples and the fit ----------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Sample:
    t_s: float
    rss_mib: float
    anon_mib: float  # the heap part of RSS, without shared libraries and mapped files
    fds: int
    done: int
    unexpected: int
    chat_p50_ms: float | None
    chat_p99_ms: float | None


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, int(len(ordered) * share))])


def take_sample(t_s: float, server: Server, tally: Tally) -> Sample:
    chat = [o.seconds for o in tally.take_interval() if o.kind == "chat" and o.expected]
    p50 = percentile(chat, 0.5) * 1000 if chat else None
    p99 = percentile(chat, 0.99) * 1000 if chat else None
    pid = server.proc.pid
    return Sample(t_s, resident_mib(pid), resident_mib(pid, "RssAnon"), open_fds(pid), tally.done,
                  tally.unexpected, p50, p99)


def _ms(value: float | None) -> str:
    return f"{value:.1f}" if value is not None else "-"


def sample_line(lyra: Sample, base: Sample) -> str:
    def half(s: Sample) -> str:
        return (f"{s.rss_mib:>8.1f} {s.fds:>4} {s.done:>8} {s.unexpected:>5} "
                f"{_ms(s.chat_p50_ms):>7} {_ms(s.chat_p99_ms):>7}")

    return f"{lyra.t_s / 60:>6.1f}  {half(lyra)}  | {half(base)}"


SAMPLE_HEADER = (f"{'minute':>6}  {'RSS MiB':>8} {'fds':>4} {'requests':>8} {'unexp':>5} {'p50 ms':>7} "
                 f"{'p99 ms':>7}  | {'RSS MiB':>8} {'fds':>4} {'requests':>8} {'unexp':>5} {'p50 ms':>7} "
                 f"{'p99 ms':>7}")


def t_quantile(p: float, df: int) -> float:
    """Student's t quantile by the Cornish-Fisher expansion (within 1e-3 of the exact value for df >= 5)."""
    z = statistics.NormalDist().inv_cdf(p)
    terms = [(z**3 + z) / 4, (5 * z**5 + 16 * z**3 + 3 * z) / 96,
             (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384,
             (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160]
    return z + sum(term / float(df) ** (k + 1) for k, term in enumerate(terms))


@dataclass(frozen=True, slots=True)
class Growth:
    """RSS growth after warm-up: the least-squares slope of RSS over time, in MiB/h."""

    samples: int
    rss_at_warmup_mib: float
    rss_at_end_mib: float
    slope_mib_h: float
    stderr_mib_h: float
    low_mib_h: float
    high_mib_h: float
    contains_zero: bool
    within_tolerance: bool
    flat: bool


def growth(samples: list[Sample], warmup_s: float, tolerance_mib_h: float) -> Growth | None:
    """The fit over the samples at or after warm-up; None with fewer than 3 of them."""
    points = [(s.t_s / 3600, s.rss_mib) for s in samples if s.t_s >= warmup_s - 1e-6]
    n = len(points)
    if n < 3:
        return None
    mean_t = statistics.fmean(t for t, _ in points)
    mean_r = statistics.fmean(r for _, r in points)
    sxx = sum((t - mean_t) ** 2 for t, _ in points)
    slope = sum((t - mean_t) * (r - mean_r) for t, r in points) / sxx
    residuals = sum((r - mean_r - slope * (t - mean_t)) ** 2 for t, r in points)
    stderr = math.sqrt(residuals / (n - 2) / sxx)
    half = t_quantile(0.975, n - 2) * stderr
    low, high = slope - half, slope + half
    contains_zero = low <= 0 <= high
    within = -tolerance_mib_h <= low and high <= tolerance_mib_h
    return Growth(n, points[0][1], points[-1][1], slope, stderr, low, high, contains_zero, within,
                  contains_zero or within)


def growth_line(name: str, g: Growth | None, tolerance: float) -> str:
    if g is None:
        return f"{name:<9} too few samples after warm-up for a fit"
    verdict = "flat" if g.flat else "GROWS"
    why = ("95% interval contains 0" if g.contains_zero else
           f"95% interval within ±{tolerance:g} MiB/h" if g.within_tolerance else
           f"95% interval excludes 0 and reaches past ±{tolerance:g} MiB/h")
    return (f"{name:<9} {g.rss_at_warmup_mib:>8.1f} {g.rss_at_end_mib:>8.1f} {g.slope_mib_h:>+9.2f} "
            f"{g.stderr_mib_h:>7.2f}  [{g.low_mib_h:+.2f}, {g.high_mib_h:+.2f}]  {verdict} ({why}, "
            f"{g.samples} samples)")


# --- the run ----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class SoakOptions:
    minutes: float = 30.0
    rate: float = 40.0
    sample_s: float = 60.0
    warmup_min: float = 5.0
    time_scale: float = 0.05
    tolerance_mib_h: float = 1.0
    seed: int = 1
    skip: tuple[str, ...] = ()  # request kinds left out of Lyra's mix, to find what a growth comes from
    json_path: Path | None = None


@contextlib.contextmanager
def servers(time_scale: float) -> Iterator[tuple[Server, Server, list[int]]]:
    """The simulator, Lyra and the baseline; yields both servers and, on exit, their exit statuses."""
    statuses: list[int] = []
    with zero_latency_upstream(time_scale) as upstream, tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        lyra = start_lyra(upstream, folder)
        try:
            baseline = start_baseline(upstream, folder)
            try:
                yield lyra, baseline, statuses
            finally:
                statuses.insert(0, _stop(baseline))
        finally:
            statuses.insert(0, _stop(lyra))
            _report_stderr(lyra)


def _report_stderr(server: Server) -> None:
    lines = server.stderr_lines()
    serious = [line for line in lines if " ERROR " in line or "Traceback" in line]
    clean = any("Application shutdown complete" in line for line in lines)
    print(f"{server.name} stderr: {len(lines)} lines, {len(serious)} errors or tracebacks, "
          f"{'shut down cleanly' if clean else 'no clean shutdown logged'}"
          + (f"; first: {serious[0][:200]}" if serious else ""))


async def sample_every(options: SoakOptions, pairs: list[tuple[Server, Tally, list[Sample]]]) -> None:
    """A sample of every server at 0, sample_s, 2 * sample_s, ... up to the run's end."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    count = int(options.minutes * 60 / options.sample_s + 1e-9)
    for k in range(count + 1):
        await asyncio.sleep(max(0.0, start + k * options.sample_s - loop.time()))
        found = [take_sample(loop.time() - start, server, tally) for server, tally, _ in pairs]
        for (_, _, samples), sample in zip(pairs, found, strict=True):
            samples.append(sample)
        print(sample_line(*found), flush=True)


async def drive(options: SoakOptions, lyra: Server, baseline: Server) -> dict[str, Any]:
    tallies = {"lyra": Tally(), "baseline": Tally()}
    samples: dict[str, list[Sample]] = {"lyra": [], "baseline": []}
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    seconds = options.minutes * 60
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=512)) as ls, \
            aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=512)) as bs:
        mix = LyraMix(ls, lyra.root, options.seed, options.skip)
        base = BaselineLoad(bs, baseline.root)
        print(f"{'':>6}  {'lyra serve':<45}  | {'baseline proxy':<45}\n{SAMPLE_HEADER}", flush=True)
        await asyncio.gather(
            open_loop(mix.fire, options.rate, seconds, tallies["lyra"]),
            open_loop(base.fire, options.rate, seconds, tallies["baseline"]),
            sample_every(options, [(lyra, tallies["lyra"], samples["lyra"]),
                                   (baseline, tallies["baseline"], samples["baseline"])]))
    return {"tallies": tallies, "samples": samples}


def render_counts(name: str, tally: Tally) -> None:
    print(f"{name}: {tally.done} requests, {tally.unexpected} unexpected, {tally.skipped} skipped "
          f"(over {MAX_IN_FLIGHT} in flight), largest schedule lag {tally.max_lag_s * 1000:.0f} ms")
    kinds = sorted({kind for kind, _ in tally.statuses})
    for kind in kinds:
        statuses = ", ".join(f"{status}: {n}" for (k, status), n in sorted(tally.statuses.items())
                             if k == kind)
        found = tally.latencies.get(kind, [])
        lat = (f"p50 {percentile(found, 0.5) * 1000:.1f} ms, p99 {percentile(found, 0.99) * 1000:.1f} ms"
               if found else "-")
        print(f"  {kind:<12} {statuses:<40} {lat}")
    for line in tally.first_unexpected:
        print(f"  unexpected: {line}")


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "load_1m": round(os.getloadavg()[0], 2),
            "python": platform.python_version(), "platform": platform.platform(), "stack": server_stack()}


async def run(options: SoakOptions) -> bool:
    started = time.time()
    print(f"soak: {options.minutes:g} min at {options.rate:g} requests/s to each server, open loop; "
          f"RSS every {options.sample_s:g} s; fit after {options.warmup_min:g} min; simulator time scale "
          f"{options.time_scale:g}; left out of the mix: {', '.join(options.skip) or 'nothing'}; "
          f"{machine()}", flush=True)
    with servers(options.time_scale) as (lyra, baseline, statuses):
        result = await drive(options, lyra, baseline)
    warmup_s = options.warmup_min * 60
    fits = {name: growth(found, warmup_s, options.tolerance_mib_h)
            for name, found in result["samples"].items()}
    print(f"exit status: lyra {statuses[0]}, baseline {statuses[1]} (-15: the SIGTERM that stopped it, "
          "which uvicorn raises again after its graceful shutdown)")
    for name, tally in result["tallies"].items():
        render_counts(name, tally)
    print(f"growth after {options.warmup_min:g} min (least squares; criterion: flat when the 95% interval "
          f"contains 0 or lies within ±{options.tolerance_mib_h:g} MiB/h)")
    print(f"{'server':<9} {'RSS@wu':>8} {'RSS@end':>8} {'MiB/h':>9} {'stderr':>7}  95% interval")
    for name, fit in fits.items():
        print(growth_line(name, fit, options.tolerance_mib_h))
    if options.json_path is not None:
        options.json_path.write_bytes(orjson.dumps({
            "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "options": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(options).items()},
            "machine": machine(), "exit_status": {"lyra": statuses[0], "baseline": statuses[1]},
            "samples": {name: [asdict(s) for s in found] for name, found in result["samples"].items()},
            "growth": {name: asdict(fit) if fit else None for name, fit in fits.items()},
            "statuses": {name: {f"{k} {s}": n for (k, s), n in sorted(t.statuses.items())}
                         for name, t in result["tallies"].items()},
            "unexpected": {name: t.unexpected for name, t in result["tallies"].items()},
        }, option=orjson.OPT_INDENT_2))
    lyra_fit = fits["lyra"]
    return lyra_fit is not None and lyra_fit.flat and result["tallies"]["lyra"].unexpected == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="how long to drive both servers")
    parser.add_argument("--rate", type=float, default=40.0, help="requests/s offered to each server")
    parser.add_argument("--sample-s", type=float, default=60.0, help="seconds between RSS samples")
    parser.add_argument("--warmup-min", type=float, default=5.0, help="minutes left out of the fit")
    parser.add_argument("--time-scale", type=float, default=0.05,
                        help="the simulator's latency multiplier (1: OpenRouter-like seconds; 0: at once)")
    parser.add_argument("--tolerance", type=float, default=1.0,
                        help="MiB/h: a 95%% interval within ± this also counts as flat")
    parser.add_argument("--seed", type=int, default=1, help="seeds the request mix")
    parser.add_argument("--skip", default="", metavar="KIND[,KIND]",
                        help=f"leave request kinds out of Lyra's mix (of: {', '.join(LyraMix.WEIGHTS)})")
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = parser.parse_args()
    for name in ("minutes", "rate", "sample_s", "tolerance"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')}: must be more than 0")
    skip = tuple(kind for kind in args.skip.split(",") if kind)
    unknown = [kind for kind in skip if kind not in LyraMix.WEIGHTS]
    if unknown:
        parser.error(f"--skip: unknown kind {unknown[0]!r}; one of {', '.join(LyraMix.WEIGHTS)}")
    if len(skip) == len(LyraMix.WEIGHTS):
        parser.error("--skip: leaves nothing to send")
    if args.warmup_min < 0 or args.warmup_min >= args.minutes:
        parser.error("--warmup-min: must be at least 0 and less than --minutes")
    options = SoakOptions(minutes=args.minutes, rate=args.rate, sample_s=args.sample_s,
                          warmup_min=args.warmup_min, time_scale=args.time_scale,
                          tolerance_mib_h=args.tolerance, seed=args.seed, skip=skip, json_path=args.json)
    sys.exit(0 if asyncio.run(run(options)) else 1)


if __name__ == "__main__":
    main()
