"""The cost of a call from its reported usage, priced as OpenRouter prices it, for a response with no
`usage.cost` (OpenRouter's own figure always wins when it is there).

- Prompt tokens read from the provider's cache (`prompt_tokens_details.cached_tokens`) cost
  `input_cache_read`; those written to it (`cache_write_tokens`) cost `input_cache_write`; the rest
  the prompt price. Cached and written tokens are part of `prompt_tokens`.
- Reasoning tokens (`completion_tokens_details.reasoning_tokens`) are billed as output: they are part
  of `completion_tokens` and cost `internal_reasoning` when the listing has a price for it, else the
  completion price.
A price the catalogue does not know falls back to the plain prompt or completion price.
"""

from __future__ import annotations

from lyra.catalog.models import ModelInfo
from lyra.money import token_cost_nanos


def usage_cost_nanos(model: ModelInfo, *, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0,
                     cache_write_tokens: int = 0, reasoning_tokens: int = 0, round_up: bool = True) -> int:
    """Nano-dollars of one call at the catalogue's prices, split as the usage reports it."""
    prompt_tokens, completion_tokens = max(0, prompt_tokens), max(0, completion_tokens)
    cached = min(max(0, cached_tokens), prompt_tokens)
    written = min(max(0, cache_write_tokens), prompt_tokens - cached)
    reasoning = min(max(0, reasoning_tokens), completion_tokens)
    read_price = model.cache_read_per_m if model.cache_read_per_m is not None else model.prompt_per_m
    write_price = model.cache_write_per_m if model.cache_write_per_m is not None else model.prompt_per_m
    think_price = model.reasoning_per_m if model.reasoning_per_m is not None else model.completion_per_m
    return (token_cost_nanos(prompt_tokens - cached - written, model.prompt_per_m, round_up=round_up)
            + token_cost_nanos(cached, read_price, round_up=round_up)
            + token_cost_nanos(written, write_price, round_up=round_up)
            + token_cost_nanos(completion_tokens - reasoning, model.completion_per_m, round_up=round_up)
            + token_cost_nanos(reasoning, think_price, round_up=round_up))


__all__ = ["usage_cost_nanos"]
