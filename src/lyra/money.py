"""Money as integer micro-dollars; prices as exact decimals."""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Decimal

MICROS_PER_USD = 1_000_000


def usd_to_micros(usd: Decimal | float | int | str, *, round_up: bool = False) -> int:
    """Convert a USD amount to integer micro-dollars (half-even, or up when reserving)."""
    value = Decimal(str(usd)) * MICROS_PER_USD
    mode = ROUND_CEILING if round_up else ROUND_HALF_EVEN
    return int(value.to_integral_value(rounding=mode))


def micros_to_usd(micros: int) -> Decimal:
    """Convert micro-dollars to a USD Decimal."""
    return Decimal(micros) / MICROS_PER_USD


def token_cost_micros(tokens: int, usd_per_million: Decimal, *, round_up: bool = False) -> int:
    """Cost in micro-dollars of `tokens` at a price in USD per million tokens.

    USD per million tokens equals micro-dollars per token, so no scaling is needed.
    """
    value = usd_per_million * tokens
    mode = ROUND_CEILING if round_up else ROUND_HALF_EVEN
    return int(value.to_integral_value(rounding=mode))


def format_usd(micros: int) -> str:
    """Render micro-dollars for people: $0.001234 below a cent, $12.34 above."""
    usd = micros_to_usd(micros)
    if abs(usd) < Decimal("0.01") and micros != 0:
        return f"${usd:.6f}"
    return f"${usd:,.2f}"


__all__ = ["MICROS_PER_USD", "format_usd", "micros_to_usd", "token_cost_micros", "usd_to_micros"]
