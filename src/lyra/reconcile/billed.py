"""What OpenRouter's /generation and /key bodies say was billed, as exact nano-dollars."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from lyra.money import usd_to_nanos


def usd_nanos(value: Any) -> int | None:
    """A USD amount from a JSON body (a number or a decimal string) as nano-dollars; None if absent.

    A JSON number arrives as a float: its shortest repr is the decimal OpenRouter wrote (credits
    have at most nine decimals), so going through str() loses nothing.
    """
    if value is None or isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return None
    if not amount.is_finite() or amount < 0:
        return None
    return usd_to_nanos(amount)


def generation_cost_nanos(data: Mapping[str, Any]) -> int | None:
    """`total_cost` of a /generation `data` object (what the call was billed), or None."""
    return usd_nanos(data.get("total_cost"))


def key_daily_nanos(data: Mapping[str, Any]) -> int | None:
    """`usage_daily` of a /key `data` object (the key's spend this UTC day), or None."""
    return usd_nanos(data.get("usage_daily"))


__all__ = ["generation_cost_nanos", "key_daily_nanos", "usd_nanos"]
