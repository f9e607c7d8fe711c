"""A key retired for one of OpenRouter's limits comes back when that limit resets, on the pool's clock."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from lyra.config import KeySettings, Secret
from lyra.routing.keys import KeyPool, limit_period_end


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


@pytest.mark.parametrize(("now", "period", "end"), [
    ("2026-12-01T17:05:00", "daily", "2026-12-02T00:00:00"),
    ("2026-12-01T17:05:00", None, "2026-12-02T00:00:00"),
    ("2026-12-01T17:05:00", "a_period_from_next_year", "2026-12-02T00:00:00"),
    ("2026-12-01T17:05:00", "weekly", "2026-12-07T00:00:00"),  # a Tuesday -> the next Monday
    ("2026-12-07T00:00:00", "weekly", "2026-12-14T00:00:00"),  # on Monday midnight: a week on
    ("2026-12-01T17:05:00", "monthly", "2027-01-01T00:00:00"),
    ("2026-01-31T23:59:59", "monthly", "2026-02-01T00:00:00"),
])
def test_limit_periods_end_at_utc_boundaries(now: str, period: str | None, end: str) -> None:
    assert limit_period_end(at(now), period) == at(end)


@pytest.mark.parametrize("period", ["total", "lifetime"])
def test_a_total_limit_never_resets(period: str) -> None:
    assert limit_period_end(at("2026-12-01T17:05:00"), period) == math.inf


def test_a_key_retired_until_a_reset_is_back_after_it() -> None:
    clock = [at("2026-12-01T17:05:00")]
    settings = KeySettings(env="LYRA_KEY_A", daily_usd=1, daily_tokens=1_000_000)
    pool = KeyPool({"a": settings}, {"a": Secret("sk-or-v1-secret")}, clock=lambda: clock[0])
    pool.retire_until("a", at("2026-12-07T00:00:00"), "guardrail_budget (403)")
    clock[0] = at("2026-12-03T12:00:00")  # past Lyra's own day, still inside OpenRouter's week
    assert "retired" in (pool.usable("a") or "")
    assert pool.retired_until("a") == at("2026-12-07T00:00:00")
    clock[0] = at("2026-12-07T00:00:00")
    assert pool.usable("a") is None and pool.retired_until("a") is None
