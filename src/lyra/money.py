"""Money as integer nano-dollars (1e-9 USD); prices as exact decimals; never a float.

OpenRouter bills in credits (= USD) with up to nine decimals on a call (`usage.cost` 0.0000369,
0.00000157): nano-dollars hold every such amount exactly, and an int64 holds $9.2 billion of them.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

import orjson

NANOS_PER_USD = 1_000_000_000
_NANOS_PER_TOKEN_PER_USD_PER_M = 1_000  # $1 per million tokens is 1,000 nano-dollars a token


class MoneyError(ValueError):
    """A money amount that is not a finite decimal number."""


def exact_usd(usd: Decimal | int | str) -> Decimal:
    """A USD amount as a finite Decimal; a float is refused (it is not exact)."""
    if isinstance(usd, bool) or not isinstance(usd, Decimal | int | str):
        raise MoneyError(f"money must be a decimal string, an int or a Decimal, not {type(usd).__name__}")
    try:
        value = Decimal(usd)
    except InvalidOperation:
        raise MoneyError(f"{usd!r} is not a number") from None
    if not value.is_finite():
        raise MoneyError(f"{usd!r} is not a finite amount")
    return value


def usd_to_nanos(usd: Decimal | int | str, *, round_up: bool = False) -> int:
    """Convert a USD amount to integer nano-dollars (half-even, or up when reserving or billing)."""
    value = exact_usd(usd) * NANOS_PER_USD
    mode = ROUND_CEILING if round_up else ROUND_HALF_EVEN
    return int(value.to_integral_value(rounding=mode))


def nanos_to_usd(nanos: int) -> Decimal:
    """Convert nano-dollars to an exact USD Decimal."""
    return Decimal(nanos).scaleb(-9)


def token_cost_nanos(tokens: int, usd_per_million: Decimal, *, round_up: bool = False) -> int:
    """Cost in nano-dollars of `tokens` at a price in USD per million tokens."""
    value = usd_per_million * tokens * _NANOS_PER_TOKEN_PER_USD_PER_M
    mode = ROUND_CEILING if round_up else ROUND_HALF_EVEN
    return int(value.to_integral_value(rounding=mode))


def usd_text(nanos: int) -> str:
    """Nano-dollars as an exact plain decimal string of USD ('0.0000369', '12.5', '0')."""
    text = f"{nanos_to_usd(nanos):f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def usd_json(nanos: int) -> orjson.Fragment:
    """Nano-dollars as an exact JSON number of USD (`"cost": 0.0000369`), with no float in between."""
    return orjson.Fragment(usd_text(nanos).encode())


def json_default(value: Any) -> Any:
    """orjson `default=` hook: a Decimal becomes an exact JSON number; anything else is refused."""
    if isinstance(value, Decimal) and value.is_finite():
        text = f"{value:f}"
        return orjson.Fragment((text.rstrip("0").rstrip(".") if "." in text else text).encode() or b"0")
    raise TypeError(f"cannot serialise {type(value).__name__} as JSON")


def usd_fields_exact(value: Any) -> Any:
    """A copy of a JSON-shaped value whose `cost_usd` texts ('1.23E-7') are Decimals, so that json_default
    writes them as exact JSON numbers of USD, the one form of money in every JSON answer."""
    if isinstance(value, dict):
        return {k: _exact_usd(v) if k == "cost_usd" else usd_fields_exact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [usd_fields_exact(v) for v in value]
    return value


def _exact_usd(value: Any) -> Any:
    if isinstance(value, str):
        try:
            number = Decimal(value)
        except ArithmeticError:
            return value
        return number if number.is_finite() else value
    return value


def format_usd(nanos: int) -> str:
    """Render nano-dollars for people: $0.001234 below a cent, $12.34 above."""
    usd = nanos_to_usd(nanos)
    if abs(usd) < Decimal("0.01") and nanos != 0:
        return f"${usd:.6f}" if abs(usd) >= Decimal("0.000001") else f"${usd:.9f}"
    return f"${usd:,.2f}"


__all__ = [
    "NANOS_PER_USD",
    "MoneyError",
    "exact_usd",
    "format_usd",
    "json_default",
    "nanos_to_usd",
    "token_cost_nanos",
    "usd_fields_exact",
    "usd_json",
    "usd_text",
    "usd_to_nanos",
]
