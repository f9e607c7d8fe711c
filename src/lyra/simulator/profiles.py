"""Per-model behaviour: latency by tier, decision skill, output habits, native finish reasons."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from functools import lru_cache

from lyra.catalog.models import ModelInfo

# The origin document's response times per tier, in seconds.
TIER_LATENCY_S: dict[str, tuple[float, float]] = {
    "premium": (2.0, 5.0),
    "advanced": (1.0, 3.0),
    "specialized": (1.0, 2.0),
    "fast": (0.5, 1.0),
}
# Standard deviation of the noise added to a trading score in [-1, 1]: bigger models read
# indicators more reliably.
TIER_NOISE: dict[str, float] = {
    "premium": 0.08,
    "advanced": 0.14,
    "specialized": 0.20,
    "fast": 0.28,
}
# The heavy tail: this share of calls wait behind a slow provider (a queue, a cold replica), each
# `1 + SLOW_SCALE * Pareto(SLOW_ALPHA)` times its usual latency, at most SLOW_CAP times: most of them a
# few times slower, some tens of times. The rest are drawn as usual.
SLOW_SHARE = 0.03
SLOW_ALPHA = 1.2
SLOW_SCALE = 2.0
SLOW_CAP = 100.0
_DEFAULT_TIER = "advanced"
# (stop, length) as each provider family reports them in native_finish_reason.
_NATIVE_FINISH: dict[str, tuple[str, str]] = {
    "anthropic": ("end_turn", "max_tokens"),
    "google": ("STOP", "MAX_TOKENS"),
}


def stable_hash(*parts: str) -> int:
    """A 64-bit hash of strings that, unlike hash(), is the same in every process."""
    digest = hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _unit(value: int, salt: int) -> float:
    """A number in [0, 1) taken from 16 bits of a hash."""
    return ((value >> salt) & 0xFFFF) / 65536.0


@dataclass(frozen=True, slots=True)
class ModelProfile:
    """How one simulated model behaves."""

    model: ModelInfo
    latency_s: tuple[float, float]
    ttft_share: float  # part of the latency spent before the first token
    noise: float
    bias: float  # a small stable lean towards buying (>0) or selling (<0)
    fence_rate: float  # how often a plain-text decision comes in a ```json fence
    preamble_rate: float  # how often a sentence precedes it
    native_stop: str
    native_length: str


def draw_latency(rng: random.Random, low: float, high: float, shape: str = "uniform") -> float:
    """One call's simulated latency in seconds: uniform in [low, high], or that with a heavy tail."""
    latency = rng.uniform(low, high)
    if shape == "heavy_tail" and rng.random() < SLOW_SHARE:
        latency *= min(SLOW_CAP, 1.0 + SLOW_SCALE * rng.paretovariate(SLOW_ALPHA))
    return latency


@lru_cache(maxsize=1024)
def profile_for(model: ModelInfo) -> ModelProfile:
    """The profile of a model: its tier sets the scale, a hash of its id the individual traits."""
    tier = model.tier if model.tier in TIER_LATENCY_S else _DEFAULT_TIER
    h = stable_hash("profile", model.id)
    skill = 0.8 + 0.4 * _unit(h, 0)  # 0.8 .. 1.2 times the tier's noise
    author = model.id.split("/", 1)[0]
    native_stop, native_length = _NATIVE_FINISH.get(author, ("stop", "length"))
    return ModelProfile(
        model=model,
        latency_s=TIER_LATENCY_S[tier],
        ttft_share=0.3 + 0.3 * _unit(h, 16),
        noise=TIER_NOISE[tier] * skill,
        bias=(_unit(h, 32) - 0.5) * 0.06,
        fence_rate=0.1 + 0.5 * _unit(h, 48),
        preamble_rate=0.05 + 0.35 * _unit(h, 8),
        native_stop=native_stop,
        native_length=native_length,
    )
