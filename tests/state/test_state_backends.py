"""What is particular to each backend, and choosing one by name."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from state_helpers import FakeClock, rid

from lyra.errors import ConfigError
from lyra.state import (
    CapUsage,
    Charge,
    MemoryBackend,
    RedisBackend,
    SqliteBackend,
    StateBackend,
    open_backend,
)
from lyra.state.base import EXPIRED_KEEP_S
from lyra.state.redis import CAP_KEEP_S


async def test_open_backend_by_name(tmp_path: Path, redis_url: str, redis_prefix: str) -> None:
    backends: list[StateBackend] = [
        open_backend("memory"),
        open_backend("sqlite", path=str(tmp_path / "deep" / "er" / "state.db")),
        open_backend("redis", redis_url=redis_url, prefix=redis_prefix),
    ]
    assert [type(b) for b in backends] == [MemoryBackend, SqliteBackend, RedisBackend]
    assert [b.name for b in backends] == ["memory", "sqlite", "redis"]
    assert (tmp_path / "deep" / "er" / "state.db").exists()
    for backend in backends:
        await backend.close()


@pytest.mark.parametrize(
    ("kind", "options", "expected"),
    [
        ("etcd", {}, "use one of memory, sqlite, redis"),
        ("sqlite", {}, "needs a path"),
        ("redis", {}, "set LYRA_REDIS_URL"),
        ("redis", {"redis_url": "http://example.invalid"}, "not a Redis URL"),
    ],
)
def test_open_backend_explains_bad_settings_in_one_line(
    kind: str, options: dict[str, str], expected: str
) -> None:
    with pytest.raises(ConfigError, match=expected) as info:
        open_backend(kind, **options)
    assert "\n" not in str(info.value)


async def test_memory_forgets_committed_and_released_holds_when_their_time_comes() -> None:
    clock = FakeClock()
    backend = MemoryBackend(clock=clock)
    for _ in range(100):
        reservation = rid()
        assert await backend.reserve(reservation, [Charge("a", 10, 1)], ttl_s=5) is None
        await backend.commit(reservation, {"a": 0})
    clock.now += 6
    await backend.usage(["a"])
    assert backend._expiries == [] and backend._held == {}
    assert (await backend.usage(["a"]))["a"] == CapUsage(0, 0)


async def test_memory_forgets_expired_records_after_the_keep_time() -> None:
    clock = FakeClock()
    backend = MemoryBackend(clock=clock, expired_keep_s=10)
    dead, kept = rid(), rid()
    assert await backend.reserve(dead, [Charge("a", 100, 30)], ttl_s=5) is None
    clock.now += 3
    assert await backend.reserve(kept, [Charge("a", 100, 20)], ttl_s=5) is None
    clock.now += 3
    assert (await backend.usage(["a"]))["a"] == CapUsage(30, 20)
    assert set(backend._expired) == {dead}
    clock.now += 7  # dead expired 8 s ago: still on record; kept expired 5 s ago
    assert (await backend.usage(["a"]))["a"] == CapUsage(50, 0)
    assert set(backend._expired) == {dead, kept}
    clock.now += 3  # dead is forgotten (13 s after its expiry), kept is not
    await backend.usage(["a"])
    assert set(backend._expired) == {kept}
    await backend.release(kept)
    clock.now += 10
    await backend.usage(["a"])
    assert backend._expired == {} and not backend._forget and backend._held == {}
    # Forgotten: a late commit counts the actual in full (never less than was spent), and the id is free.
    await backend.commit(dead, {"a": 10})
    assert (await backend.usage(["a"]))["a"] == CapUsage(40, 0)
    assert await backend.reserve(dead, [Charge("a", 100, 10)], ttl_s=5) is None


async def test_sqlite_forgets_expired_records_after_the_keep_time(tmp_path: Path) -> None:
    clock = FakeClock()
    backend = SqliteBackend(tmp_path / "k.db", clock=clock, expired_keep_s=10)
    try:
        dead = rid()
        assert await backend.reserve(dead, [Charge("a", 100, 30)], ttl_s=5) is None
        clock.now += 6
        assert (await backend.usage(["a"]))["a"] == CapUsage(30, 0)
        count = "SELECT count(*) FROM expired"
        assert backend._db.execute(count).fetchone() == (1,)
        clock.now += 10
        await backend.usage(["a"])
        assert backend._db.execute(count).fetchone() == (0,)
        await backend.commit(dead, {"a": 10})
        assert (await backend.usage(["a"]))["a"] == CapUsage(40, 0)
    finally:
        await backend.close()


async def test_redis_forgets_expired_records_after_the_keep_time(redis_url: str, redis_prefix: str) -> None:
    # Redis expires keys on its own clock, so the test waits for states, with room for a busy machine.
    backend = RedisBackend(redis_url, prefix=redis_prefix, expired_keep_s=3)
    dead = rid()
    record = f"{redis_prefix}r:{dead}"
    try:
        assert await backend.reserve(dead, [Charge("a", 100, 30)], ttl_s=0.2) is None
        assert 200 < await backend._redis.pttl(record) <= 3200  # the ttl plus the keep time
        await asyncio.sleep(0.3)
        assert (await backend.usage(["a"]))["a"] == CapUsage(30, 0)
        assert await backend._redis.exists(record) == 1  # unless 3 s passed since the reserve
        deadline = time.monotonic() + 60
        while await backend._redis.exists(record):
            assert time.monotonic() < deadline, "the reservation record outlived its keep time"
            await asyncio.sleep(0.1)
        await backend.commit(dead, {"a": 10})
        assert (await backend.usage(["a"]))["a"] == CapUsage(40, 0)
    finally:
        await backend.close()


async def test_sqlite_instances_on_one_file_share_state(tmp_path: Path) -> None:
    first, second = SqliteBackend(tmp_path / "s.db"), SqliteBackend(tmp_path / "s.db")
    try:
        reservation = rid()
        assert await first.reserve(reservation, [Charge("a", 100, 70)], ttl_s=60) is None
        assert await second.reserve(rid(), [Charge("a", 100, 40)], ttl_s=60) is not None
        await second.commit(reservation, {"a": 20})  # a commit may come through another connection
        assert (await first.usage(["a"]))["a"] == CapUsage(20, 0)
        assert await second.take("b", 1, 0.0, 1) == 0.0
        assert await first.take("b", 1, 0.0, 1) == float("inf")
    finally:
        await first.close()
        await second.close()


async def test_sqlite_backend_can_be_shared_by_threads(tmp_path: Path) -> None:
    backend = SqliteBackend(tmp_path / "t.db")
    errors: list[BaseException] = []

    async def spend() -> None:
        for _ in range(50):
            reservation = rid()
            if await backend.reserve(reservation, [Charge("a", 1_000, 5)], ttl_s=60) is None:
                await backend.commit(reservation, {"a": 5})

    def run() -> None:
        try:
            asyncio.run(spend())
        except BaseException as exc:  # handed to the test thread, which fails on it
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        assert (await backend.usage(["a"]))["a"] == CapUsage(1_000, 0)
    finally:
        await backend.close()


async def test_redis_keys_live_under_the_prefix_and_expire(redis_url: str, redis_prefix: str) -> None:
    backend = RedisBackend(redis_url, prefix=redis_prefix)
    reservation = rid()
    try:
        assert await backend.reserve(reservation, [Charge("day:2025-01-02", 100, 10)], ttl_s=30) is None
        assert await backend.take("rpm", 10, 1.0, 4) == 0.0
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        try:
            keys = list(client.scan_iter(f"{redis_prefix}*"))
            ttls = {key.removeprefix(redis_prefix): client.ttl(key) for key in keys}
        finally:
            client.close()
    finally:
        await backend.close()
    assert set(ttls) == {"c:day:2025-01-02", "z:day:2025-01-02", f"r:{reservation}", "b:rpm"}
    assert CAP_KEEP_S - 5 <= ttls["c:day:2025-01-02"] <= CAP_KEEP_S
    assert CAP_KEEP_S - 5 <= ttls["z:day:2025-01-02"] <= CAP_KEEP_S
    # A reservation's record outlives its ttl by the keep time, for a late settle after expiry.
    assert 30 + EXPIRED_KEEP_S - 5 <= ttls[f"r:{reservation}"] <= 30 + EXPIRED_KEEP_S
    assert 0 < ttls["b:rpm"] <= 4 + 60  # a full bucket is the same as none


async def test_redis_reserve_commit_release_and_take_send_one_command_each(
    redis_url: str, redis_prefix: str
) -> None:
    backend = RedisBackend(redis_url, prefix=redis_prefix)
    client = backend._redis
    sent: list[str] = []
    execute: Callable[..., Awaitable[Any]] = client.execute_command

    async def counting(*args: Any, **options: Any) -> Any:
        sent.append(str(args[0]))
        return await execute(*args, **options)

    client.execute_command = counting  # type: ignore[method-assign]
    try:
        # Run each operation once first: a script missing from the server's cache costs one
        # SCRIPT LOAD on its first use, whichever script it is.
        warm = rid()
        await backend.reserve(warm, [Charge("warm", 1, 0)], ttl_s=1)
        await backend.commit(warm, {"warm": 0})
        await backend.release(rid())
        await backend.take("warm", 5, 1.0, 1)
        sent.clear()
        reservation = rid()
        charges = [Charge(f"cap{i}", 1_000, 10) for i in range(5)]
        assert await backend.reserve(reservation, charges, ttl_s=30) is None
        await backend.commit(reservation, {f"cap{i}": 5 for i in range(5)})
        await backend.release(rid())
        assert await backend.take("b", 5, 1.0, 1) == 0.0
    finally:
        await backend.close()
    assert sent == ["EVALSHA"] * 4
