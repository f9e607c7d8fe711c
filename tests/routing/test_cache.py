"""The response cache: per-task TTL, single-flight, bypass/refresh, and hits in the ledger."""

from __future__ import annotations

import asyncio

from lyra import Lyra
from lyra.routing.cache import MemoryCache, cache_key
from lyra.simulator import Simulator
from lyra.types import Completion, CompletionRequest

MSG = [{"role": "user", "content": "Sentiment of: 'ETF inflows hit a record'"}]


async def test_hundred_identical_concurrent_requests_make_one_upstream_call(lyra: Lyra, sim: Simulator) -> None:
    results = await asyncio.gather(*(lyra.complete(task="news_sentiment", messages=MSG) for _ in range(100)))
    assert sim.stats.calls == 1
    assert len({r.text for r in results}) == 1
    assert sum(not r.cached for r in results) == 1
    assert sum(r.cost_nanos for r in results) == max(r.cost_nanos for r in results) > 0


async def test_hit_costs_nothing_and_is_in_the_ledger(lyra: Lyra, sim: Simulator) -> None:
    first = await lyra.complete(task="news_sentiment", messages=MSG)
    again = await lyra.complete(task="news_sentiment", messages=MSG)
    assert sim.stats.calls == 1
    assert not first.cached and first.cost_nanos > 0
    assert again.cached and again.cost_nanos == 0 and again.attempts == [] and again.text == first.text
    assert lyra.ledger is not None
    lyra.ledger.flush()
    requests = lyra.ledger.rows(kind="request")
    assert [(r.cached, r.cost_nanos) for r in requests] == [(False, first.cost_nanos), (True, 0)]


async def test_bypass_and_refresh(lyra: Lyra, sim: Simulator) -> None:
    await lyra.complete(task="news_sentiment", messages=MSG)
    bypass = await lyra.complete(task="news_sentiment", messages=MSG, cache="bypass")
    refresh = await lyra.complete(task="news_sentiment", messages=MSG, cache="refresh")
    assert not bypass.cached and not refresh.cached
    assert sim.stats.calls == 3


async def test_hit_after_the_ttl_is_a_miss(lyra: Lyra, sim: Simulator) -> None:
    ttl = lyra.settings.tasks["news_sentiment"].cache_ttl_s
    now = [0.0]
    lyra.running.cache.store = MemoryCache(clock=lambda: now[0])  # the cache on a clock that the test moves
    await lyra.complete(task="news_sentiment", messages=MSG)
    now[0] += ttl - 1
    assert (await lyra.complete(task="news_sentiment", messages=MSG)).cached
    now[0] += 1
    late = await lyra.complete(task="news_sentiment", messages=MSG)
    assert not late.cached and sim.stats.calls == 2


async def test_tasks_without_ttl_and_direct_models_are_not_cached(lyra: Lyra, sim: Simulator) -> None:
    for _ in range(2):
        await lyra.complete(task="code_generation", messages=MSG)
        await lyra.complete(model="openai/gpt-4o-mini", messages=MSG)
    assert sim.stats.calls == 4


def test_key_changes_with_what_changes_the_answer() -> None:
    base = CompletionRequest(messages=MSG, task="news_sentiment")
    same = CompletionRequest(messages=[dict(m) for m in MSG], task="news_sentiment", deadline_s=3)
    assert cache_key(base) == cache_key(same)
    for other in (CompletionRequest(messages=MSG, task="market_analysis"),
                  CompletionRequest(messages=MSG, task="news_sentiment", temperature=0.9),
                  CompletionRequest(messages=MSG, task="news_sentiment", max_tokens=5),
                  CompletionRequest(messages=[{"role": "user", "content": "other"}], task="news_sentiment")):
        assert cache_key(other) != cache_key(base)


async def test_memory_cache_is_bounded_lru() -> None:
    cache = MemoryCache(max_entries=2)
    value = Completion(text="x", model="m", requested_model="m", provider=None, key_name=None, tier=None,
                       task=None, cost_nanos=0, cost_estimated=False, prompt_tokens=0, completion_tokens=0,
                       latency_s=0.0)
    for key in ("a", "b"):
        await cache.set(key, value, 60)
    await cache.get("a")
    await cache.set("c", value, 60)
    assert await cache.get("b") is None and await cache.get("a") is value and len(cache) == 2
