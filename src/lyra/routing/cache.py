"""Response cache with per-task TTLs and single-flight for identical requests in flight."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import orjson

from lyra.types import Attempt, Choice, Completion, CompletionRequest

Call = Callable[[CompletionRequest], Awaitable[Completion]]


def cache_key(request: CompletionRequest) -> str:
    """A canonical hash of what changes the answer: route, messages and sampling parameters."""
    material: list[Any] = [request.task, request.tier, request.model, request.messages, request.max_tokens,
                request.temperature, request.response_format, request.seed, request.provider]
    # Appended only when set, so that the keys of requests without them stay as they were.
    extra = {"tools": request.tools, "tool_choice": request.tool_choice,
             "parallel_tool_calls": request.parallel_tool_calls, "n": request.n if request.n != 1 else None,
             "logprobs": request.logprobs, "top_logprobs": request.top_logprobs,
             "reasoning": request.reasoning, "service_tier": request.service_tier,
             "models": request.models}
    material.extend(sorted((k, v) for k, v in extra.items() if v is not None))
    digest = hashlib.blake2b(orjson.dumps(material, option=orjson.OPT_SORT_KEYS), digest_size=16)
    return digest.hexdigest()


class CacheStore(Protocol):
    """Where cached completions live."""

    async def get(self, key: str) -> Completion | None: ...

    async def set(self, key: str, value: Completion, ttl_s: float) -> None: ...


class MemoryCache:
    """An LRU of completions bounded by entry count, with per-entry expiry."""

    def __init__(self, *, max_entries: int = 10_000, clock: Callable[[], float] = time.monotonic) -> None:
        self._entries: OrderedDict[str, tuple[float, Completion]] = OrderedDict()
        self._max = max_entries
        self._clock = clock

    async def get(self, key: str) -> Completion | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry[1]

    async def set(self, key: str, value: Completion, ttl_s: float) -> None:
        self._entries[key] = (self._clock() + ttl_s, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


class RedisCache:
    """Completions shared by every process using one Redis, expiring by Redis's own TTL."""

    def __init__(self, url: str, *, prefix: str = "lyra:") -> None:
        import redis.asyncio as aioredis

        self._redis = aioredis.Redis.from_url(url)
        self._prefix = f"{prefix}cache:"

    async def get(self, key: str) -> Completion | None:
        raw = await self._redis.get(self._prefix + key)
        return _completion_from_json(raw) if raw else None

    async def set(self, key: str, value: Completion, ttl_s: float) -> None:
        await self._redis.set(self._prefix + key, _completion_to_json(value), px=max(1, int(ttl_s * 1000)))

    async def close(self) -> None:
        await self._redis.aclose()


def _completion_to_json(value: Completion) -> bytes:
    data = dataclasses.asdict(value)
    data["attempts"] = []
    return orjson.dumps(data, default=str)


def _completion_from_json(raw: bytes | str) -> Completion:
    data: dict[str, Any] = orjson.loads(raw)
    data["attempts"] = [Attempt(**a) for a in data.get("attempts", [])]
    data["choices"] = [Choice(**c) for c in data.get("choices", [])]
    return Completion(**data)


class ResponseCache:
    """Serves repeats from the store and collapses identical concurrent requests into one call."""

    def __init__(self, store: CacheStore, ttl_for: Callable[[CompletionRequest], float],
                 on_hit: Callable[[CompletionRequest, Completion], None] | None = None) -> None:
        self.store = store
        self._ttl_for = ttl_for
        self._on_hit = on_hit
        self._inflight: dict[str, asyncio.Future[Completion]] = {}

    async def complete(self, request: CompletionRequest, call: Call) -> Completion:
        """Answer from the cache when allowed, else make (or join) the one upstream call."""
        ttl = self._ttl_for(request)
        if ttl <= 0 or request.cache == "bypass":
            return await call(request)
        started = time.monotonic()
        key = cache_key(request)
        if request.cache == "use":
            found = await self.store.get(key)
            if found is not None:
                return self._hit(request, found, started)
            leader = self._inflight.get(key)
            if leader is not None:
                return await self._follow(request, leader, call, started)
        return await self._lead(request, key, ttl, call)

    async def _lead(self, request: CompletionRequest, key: str, ttl: float, call: Call) -> Completion:
        future: asyncio.Future[Completion] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_consume)
        self._inflight[key] = future
        try:
            result = await call(request)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as exc:
            future.set_exception(exc)
            raise
        finally:
            if self._inflight.get(key) is future:
                del self._inflight[key]
        await self.store.set(key, result, ttl)
        future.set_result(result)
        return result

    async def _follow(self, request: CompletionRequest, leader: asyncio.Future[Completion], call: Call,
                      started: float) -> Completion:
        try:
            result = await asyncio.shield(leader)
        except asyncio.CancelledError:
            if not leader.cancelled():
                raise  # this caller was cancelled, not the leader
            return await call(request)  # the leader gave up; ask for ourselves
        return self._hit(request, result, started)

    def _hit(self, request: CompletionRequest, found: Completion, started: float) -> Completion:
        hit = dataclasses.replace(found, cached=True, cost_nanos=0, cost_estimated=False, attempts=[],
                                  latency_s=time.monotonic() - started)
        if self._on_hit is not None:
            self._on_hit(request, hit)
        return hit


def _consume(future: asyncio.Future[Completion]) -> None:
    # Mark the outcome as seen: a failed call nobody else joined is not a lost exception.
    if not future.cancelled():
        future.exception()


__all__ = ["CacheStore", "MemoryCache", "RedisCache", "ResponseCache", "cache_key"]
