"""The providers' prompt cache, as OpenRouter reports it: a repeated prompt prefix is read cheaper.

Opt-in (SimulatorOptions.prompt_caching): a request whose messages before the last one repeat a
prefix of at least 1,024 tokens that the same model saw within ten minutes reads that prefix from
the cache, for models with a cache-read price (`input_cache_read`). The usage reports it as
`prompt_tokens_details.cached_tokens`, /generation as `native_tokens_cached` and `cache_discount`.
"""

from __future__ import annotations

import hashlib
import time
from decimal import Decimal
from typing import Any

import orjson

from lyra.catalog.models import ModelInfo
from lyra.simulator.tokens import count_messages

MIN_CACHED_TOKENS = 1_024
TTL_S = 600.0  # the idle expiry OpenRouter documents for sticky cache routing
_MAX_ENTRIES = 10_000


class PromptCache:
    """Which (model, prompt prefix) pairs are warm, and until when."""

    def __init__(self) -> None:
        self._warm: dict[tuple[str, bytes], float] = {}

    def cached_tokens(self, model: ModelInfo, messages: list[Any]) -> int:
        """Prompt tokens this request reads from the cache; warms the prefix for the next one."""
        if model.cache_read_per_m is None or len(messages) < 2:
            return 0
        prefix = messages[:-1]
        tokens = count_messages(prefix)
        if tokens < MIN_CACHED_TOKENS:
            return 0
        try:
            key = orjson.dumps(prefix, option=orjson.OPT_SORT_KEYS)
            digest = hashlib.blake2b(key, digest_size=16).digest()
        except TypeError:
            return 0
        now = time.monotonic()
        entry = (model.id, digest)
        hit = self._warm.get(entry, 0.0) > now
        if len(self._warm) >= _MAX_ENTRIES:
            self._warm = {k: v for k, v in self._warm.items() if v > now}
        self._warm[entry] = now + TTL_S
        return tokens if hit else 0


def cache_discount(model: ModelInfo, cached_tokens: int) -> Decimal | None:
    """What reading `cached_tokens` from the cache saved against the prompt price (USD), or None."""
    if not cached_tokens or model.cache_read_per_m is None:
        return None
    return (model.prompt_per_m - model.cache_read_per_m) * cached_tokens / Decimal(1_000_000)


__all__ = ["MIN_CACHED_TOKENS", "PromptCache", "cache_discount"]
