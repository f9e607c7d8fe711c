"""A tier's hedged requests in lyra.toml: `[tiers.NAME.hedge]` (see lyra.routing.hedge).

A hedge is a second attempt sent when the first has not answered by the p95 latency measured for
its model; the first answer wins and the other is cancelled. The fast tier hedges unless its table
says `enabled = false`; the other tiers only when they ask to.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

# The tiers that hedge when their table has no `hedge` of its own.
HEDGED_BY_DEFAULT = frozenset({"fast"})


def _exact(value: object) -> object:
    """A TOML integer is an exact share too (0 -> Decimal(0)); a bool is not a number."""
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    return value


_Share = Annotated[Decimal, BeforeValidator(_exact), Field(allow_inf_nan=False, gt=0, le=1)]


class HedgeSettings(BaseModel):
    """When a tier sends a second attempt, and how many of them it may send."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    enabled: bool = True
    # Hedges as a share of the tier's primary attempts over the last `window` of them (exact).
    max_share: _Share = Decimal("0.05")
    # The latency quantile after which the hedge goes out, measured per model (and provider).
    quantile: float = Field(0.95, gt=0.5, lt=1)
    # Latencies a model needs before its quantile is trusted: with fewer, no hedge is sent.
    min_samples: int = Field(50, ge=10, le=100_000)
    # Never sooner than this (seconds): a call answered this fast gains little from a second one, and
    # a loaded machine's scheduling jitter on a fast upstream (a simulator at time scale 0) is no tail.
    min_delay_s: float = Field(0.1, ge=0, le=3600)
    samples: int = Field(500, ge=10, le=100_000)  # latencies kept per model, the newest
    window: int = Field(1000, ge=1, le=1_000_000)  # primary attempts the share is counted over


def tier_hedge(tier: str, settings: HedgeSettings | None) -> HedgeSettings:
    """The hedging a tier gets: its own table, else on for the fast tier and off for the others."""
    if settings is not None:
        return settings
    return HedgeSettings(enabled=tier in HEDGED_BY_DEFAULT)


__all__ = ["HEDGED_BY_DEFAULT", "HedgeSettings", "tier_hedge"]
