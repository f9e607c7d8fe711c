"""The rate limiter takes a token from every bucket an attempt touches, or from none."""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import Any

import pytest

from lyra.catalog.models import load_catalog
from lyra.config import LimitSettings
from lyra.errors import RateLimited
from lyra.routing.limits import RateLimiter
from lyra.state.memory import MemoryBackend
from lyra.types import CompletionRequest


def attempt(model: str = "openai/gpt-4o-mini") -> Any:
    info = load_catalog().find(model)
    assert info is not None
    return SimpleNamespace(key_name="desk", model=info, prompt_tokens=100, max_tokens=100,
                           request=CompletionRequest(messages=[], task="signal_generation"))


async def test_a_later_bucket_that_refuses_gives_the_earlier_tokens_back() -> None:
    now = [1_000.0]
    backend = MemoryBackend(clock=lambda: now[0])
    ctx = attempt()
    limits = LimitSettings(key_rpm=2, model_rpm={ctx.model.id: 1}, priority_headroom_share=0)
    limiter = RateLimiter(limits, backend)
    await limiter.acquire(ctx, deadline=math.inf)  # one token from the key and one from the model
    with pytest.raises(RateLimited, match=f"rpm:model:{ctx.model.id}"):
        await limiter.acquire(ctx, deadline=-math.inf)
    # The key's bucket still holds the token the refused attempt took first, and gave back.
    assert await backend.take("rpm:key:desk", 2, 2 / 60, 1) == 0.0
    assert await backend.take("rpm:key:desk", 2, 2 / 60, 1) > 0
