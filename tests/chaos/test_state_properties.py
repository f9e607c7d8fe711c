"""Property tests of the state backends' reserve / commit / release / expiry contract.

Random sequences are checked step by step against a reference model (state_model.py); concurrent
interleavings (asyncio.gather, and several processes on one SQLite file) against invariants:
every hold ends settled or released, nothing is negative or counted twice, no admission passes a
limit, and an expired hold counts as spent until it is settled.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chaos.state_model import ContractModel
from lyra.state import CapUsage, Charge, MemoryBackend, RedisBackend, SqliteBackend, StateBackend
from support import delete_prefix

pytestmark = pytest.mark.chaos

LIMITS = {"a": 1_000, "b": 600, "c": 2_000}
CAPS = list(LIMITS)
IDS = [f"r{i}" for i in range(6)]  # a small pool, so ids get settled twice, reused and left unknown
NO_EXPIRY_TTL_S = 3600.0  # Redis reads its own clock: its sequences never wait for an expiry
WORKER = Path(__file__).with_name("state_worker.py")
SEQUENCE_SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
GATHER_SETTINGS = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class Clock:
    """The injectable clock of the memory and sqlite backends."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Subject:
    """A backend under test, its clock (None: it reads its own) and how to advance time."""

    backend: StateBackend
    clock: Clock | None


@contextlib.asynccontextmanager
async def opened(kind: str, redis_url: str | None) -> AsyncIterator[Subject]:
    """A fresh backend of `kind`: memory or sqlite on a fake clock, redis under a fresh prefix."""
    clock = Clock()
    if kind == "memory":
        yield Subject(MemoryBackend(clock=clock), clock)
        return
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            backend = SqliteBackend(Path(folder) / "state.db", clock=clock)
            try:
                yield Subject(backend, clock)
            finally:
                await backend.close()
        return
    assert redis_url is not None
    prefix = f"lyra-prop:{uuid.uuid4().hex[:12]}:"
    backend = RedisBackend(redis_url, prefix=prefix)
    try:
        yield Subject(backend, None)
    finally:
        await backend.close()
        delete_prefix(redis_url, prefix)


# --- strategies ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Reserve:
    rid: str
    charges: list[tuple[str, int]]
    ttl_s: float


@dataclass(frozen=True)
class Commit:
    rid: str
    actual: dict[str, int]


@dataclass(frozen=True)
class Release:
    rid: str


@dataclass(frozen=True)
class Advance:
    seconds: float


Operation = Reserve | Commit | Release | Advance

amounts = st.integers(min_value=0, max_value=400)
ids = st.sampled_from(IDS)
reserves = st.builds(Reserve, ids, st.lists(st.tuples(st.sampled_from(CAPS), amounts), min_size=1, max_size=3),
                     st.sampled_from([5.0, 50.0]))
commits = st.builds(Commit, ids, st.dictionaries(st.sampled_from(CAPS), st.integers(0, 500), max_size=3))
releases = st.builds(Release, ids)
advances = st.builds(Advance, st.floats(min_value=0, max_value=60))


def operations(*, with_time: bool) -> st.SearchStrategy[list[Operation]]:
    kinds: list[st.SearchStrategy[Operation]] = [reserves, reserves, commits, releases]
    if with_time:
        kinds.append(advances)
    return st.lists(st.one_of(kinds), min_size=1, max_size=40)


# --- sequences against the model -----------------------------------------------------------


def merged(pairs: Sequence[tuple[str, int]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for cap, amount in pairs:
        out[cap] = out.get(cap, 0) + amount
    return out


async def apply(subject: Subject, model: ContractModel, op: Operation) -> None:
    """Run one operation on the backend and the model; a reserve must agree on its outcome."""
    backend = subject.backend
    if isinstance(op, Reserve):
        ttl = op.ttl_s if subject.clock is not None else NO_EXPIRY_TTL_S
        expected = model.reserve(op.rid, merged(op.charges), ttl)
        try:
            refusal = await backend.reserve(op.rid, [Charge(cap, LIMITS[cap], n) for cap, n in op.charges], ttl)
            got = "held" if refusal is None else "refused"
        except ValueError:
            got = "duplicate"
        assert got == expected, (op, got, expected)
    elif isinstance(op, Commit):
        model.commit(op.rid, op.actual)
        await backend.commit(op.rid, op.actual)
    elif isinstance(op, Release):
        model.release(op.rid)
        await backend.release(op.rid)
    else:
        assert subject.clock is not None
        subject.clock.now += op.seconds
        model.now += op.seconds


async def check_against_model(subject: Subject, model: ContractModel) -> None:
    """Usage of every cap equals the model's, and is never negative."""
    usage = await subject.backend.usage(CAPS)
    for cap in CAPS:
        assert usage[cap] == model.usage(cap), (cap, usage[cap], model.usage(cap))
        assert usage[cap].committed >= 0 and usage[cap].reserved >= 0


async def settle_everything(subject: Subject, model: ContractModel) -> None:
    """Release what is still held: nothing may stay reserved, and committed is what was spent."""
    for rid in IDS:
        model.release(rid)
        await subject.backend.release(rid)
    usage = await subject.backend.usage(CAPS)
    assert all(usage[cap].reserved == 0 for cap in CAPS), usage
    await check_against_model(subject, model)


async def run_sequence(kind: str, redis_url: str | None, ops: list[Operation]) -> None:
    async with opened(kind, redis_url) as subject:
        model = ContractModel(LIMITS, now=subject.clock.now if subject.clock else 0.0)
        for op in ops:
            await apply(subject, model, op)
            await check_against_model(subject, model)
        await settle_everything(subject, model)


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
@SEQUENCE_SETTINGS
@given(ops=operations(with_time=True))
def test_random_sequences_with_expiry_follow_the_contract(kind: str, ops: list[Operation]) -> None:
    asyncio.run(run_sequence(kind, None, ops))


@SEQUENCE_SETTINGS
@given(ops=operations(with_time=False))
def test_random_sequences_on_redis_follow_the_contract(redis_url: str, ops: list[Operation]) -> None:
    asyncio.run(run_sequence("redis", redis_url, ops))


# --- concurrent interleavings ---------------------------------------------------------------

# One task: reserve `amount`, then commit `actual` (<= amount), release, or abandon the hold.
task = st.tuples(st.integers(min_value=1, max_value=300), st.sampled_from(["commit", "release", "abandon"]),
                 st.floats(min_value=0, max_value=1))
GATHER_LIMIT = 5_000
GATHER_TTL_S = 30.0


@dataclass
class Tally:
    """What the tasks did: the actual amounts committed and the holds abandoned."""

    committed: int = 0
    abandoned: int = 0


async def one_task(backend: StateBackend, amount: int, action: str, share: float, tally: Tally,
                   ttl_s: float) -> None:
    rid = uuid.uuid4().hex
    if await backend.reserve(rid, [Charge("g", GATHER_LIMIT, amount)], ttl_s) is not None:
        return
    await asyncio.sleep(0)  # let the others in between the reservation and its settle
    if action == "commit":
        actual = int(amount * share)
        await backend.commit(rid, {"g": actual})
        tally.committed += actual
    elif action == "release":
        await backend.release(rid)
    else:
        tally.abandoned += amount  # its holder "died": only expiry can end it


async def watch_limit(backend: StateBackend, stop: asyncio.Event) -> int:
    """Sample the cap while the tasks run: committed + reserved never above the limit."""
    looks = 0
    while not stop.is_set():
        usage = (await backend.usage(["g"]))["g"]
        assert usage.committed >= 0 and usage.reserved >= 0
        assert usage.committed + usage.reserved <= GATHER_LIMIT, usage
        looks += 1
        await asyncio.sleep(0)
    return looks


async def run_gather(kind: str, redis_url: str | None, tasks: list[tuple[int, str, float]]) -> None:
    async with opened(kind, redis_url) as subject:
        backend, tally, stop = subject.backend, Tally(), asyncio.Event()
        ttl = GATHER_TTL_S if subject.clock is not None else NO_EXPIRY_TTL_S
        watcher = asyncio.create_task(watch_limit(backend, stop))
        await asyncio.gather(*(one_task(backend, amount, action, share, tally, ttl)
                               for amount, action, share in tasks))
        stop.set()
        await watcher
        usage = (await backend.usage(["g"]))["g"]
        assert usage == type(usage)(committed=tally.committed, reserved=tally.abandoned)
        if subject.clock is not None:  # the abandoned holds expire: spent at their worst case
            subject.clock.now += ttl + 1
            usage = (await backend.usage(["g"]))["g"]
            assert usage == type(usage)(committed=tally.committed + tally.abandoned, reserved=0)
        assert usage.committed <= GATHER_LIMIT


@pytest.mark.parametrize("kind", ["memory", "sqlite", "redis"])
@GATHER_SETTINGS
@given(tasks=st.lists(task, min_size=1, max_size=80))
def test_concurrent_reservations_never_pass_the_limit_or_count_twice(
    kind: str, request: pytest.FixtureRequest, tasks: list[tuple[int, str, float]]
) -> None:
    redis_url = request.getfixturevalue("redis_url") if kind == "redis" else None
    asyncio.run(run_gather(kind, redis_url, tasks))


# --- several processes on one SQLite file ---------------------------------------------------

PROCESS_LIMIT = 20_000


async def run_workers(path: Path, seeds: Sequence[int], operations_each: int) -> int:
    """Start one state_worker per seed on `path`, watch the cap meanwhile; returns what they committed."""
    procs = [await asyncio.create_subprocess_exec(
        sys.executable, str(WORKER), str(path), "g", str(PROCESS_LIMIT), str(seed), str(operations_each),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE) for seed in seeds]
    watcher_backend, stop = SqliteBackend(path), asyncio.Event()
    watcher = asyncio.create_task(watch_sqlite(watcher_backend, stop))
    try:
        results = await asyncio.gather(*(asyncio.wait_for(p.communicate(), 120) for p in procs))
    finally:
        stop.set()
        await watcher
        await watcher_backend.close()
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    for proc, (_, err) in zip(procs, results, strict=True):
        assert proc.returncode == 0, err.decode()[-2000:]
    return sum(json.loads(out)["committed"] for out, _ in results)


async def watch_sqlite(backend: StateBackend, stop: asyncio.Event) -> None:
    while not stop.is_set():
        usage = (await backend.usage(["g"]))["g"]
        assert usage.committed + usage.reserved <= PROCESS_LIMIT, usage
        await asyncio.sleep(0.005)


@settings(max_examples=2, deadline=None)
@given(seeds=st.lists(st.integers(min_value=0, max_value=2**31), min_size=3, max_size=3, unique=True),
       operations_each=st.integers(min_value=50, max_value=150))
def test_several_processes_on_one_sqlite_file_count_every_commit_once(
    seeds: list[int], operations_each: int
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "state.db"
        SqliteBackend(path)  # the schema exists before the workers race to create it
        committed = asyncio.run(run_workers(path, seeds, operations_each))
        usage = asyncio.run(read_usage(path))
    assert usage.reserved == 0
    assert usage.committed == committed <= PROCESS_LIMIT


async def read_usage(path: Path) -> CapUsage:
    backend = SqliteBackend(path)
    try:
        return (await backend.usage(["g"]))["g"]
    finally:
        await backend.close()
