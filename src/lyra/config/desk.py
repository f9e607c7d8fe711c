"""Desk settings: the `[compliance]` rules enforced in code and the `[arbitrage]` cost model.

Kept apart from `schema.py` so that the desk's own rules read as one table; `Settings` holds one
field for each.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from lyra.days import parse_session

_MAX_NOTIONAL_USD = 1e12


def _exact(value: object) -> object:
    """A TOML integer is an exact amount too; a bool is not a number."""
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    return value


# Exact: TOML floats are parsed as Decimal (see loading), never as float.
Bps = Annotated[Decimal, BeforeValidator(_exact), Field(allow_inf_nan=False, ge=0, le=10_000)]
Usd = Annotated[Decimal, BeforeValidator(_exact), Field(allow_inf_nan=False, ge=0, le=1_000_000_000)]
Quantity = Annotated[Decimal, BeforeValidator(_exact), Field(allow_inf_nan=False, gt=0, le=Decimal(10) ** 12)]
Notional = Annotated[float, Field(gt=0, le=_MAX_NOTIONAL_USD)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class ComplianceSettings(_Strict):
    """A desk's own rules, checked in code before any decision is final; a model can only add blocks.

    Off (`enabled = false`) by default: an unconfigured desk trades as before.
    """

    enabled: bool = False
    restricted_symbols: list[str] = Field(default_factory=list)
    max_order_notional_usd: Notional | None = None  # traded notional of one order
    max_position_notional_usd: Notional | None = None  # the position the order leaves
    # Per symbol, "HH:MM-HH:MM" UTC (an end before the start runs overnight); unlisted symbols
    # trade at any hour, "*" applies to every unlisted symbol.
    trading_hours_utc: dict[str, str] = Field(default_factory=dict)
    max_trades_per_day: int | None = Field(None, ge=0, le=1_000_000)
    min_holding_s: float = Field(0, ge=0, le=366 * 86_400)  # before a position may be reversed
    # The kill switch: on in config, or on while this file exists (a desk flips it without a restart).
    kill_switch: bool = False
    kill_switch_file: str | None = None
    # The review stage: a model that can only block, on orders that passed every rule.
    review: bool = False
    review_task: str | None = None  # a configured task to route by; else review_tier
    review_tier: str = "premium"
    review_key: str | None = None  # a key to try first (the example's "microsoft" compliance key)
    review_max_tokens: int = Field(300, gt=0, le=100_000)

    @field_validator("trading_hours_utc")
    @classmethod
    def _hours(cls, value: dict[str, str]) -> dict[str, str]:
        for symbol, hours in value.items():
            try:
                parse_session(hours)
            except ValueError as exc:
                raise ValueError(f"{symbol}: {exc}") from None
        return value

    @field_validator("restricted_symbols")
    @classmethod
    def _symbols(cls, value: list[str]) -> list[str]:
        if any(not s.strip() for s in value):
            raise ValueError("a restricted symbol must not be empty")
        return value


class ArbitrageSettings(_Strict):
    """What a two-venue trade costs, and the net spread it must clear before a model looks at it."""

    quantity: Quantity = Decimal(100_000)  # units of the instrument bought on one venue, sold on the other
    fee_bps_a: Bps = Decimal(1)
    fee_bps_b: Bps = Decimal(1)
    slippage_bps: Bps = Decimal("0.5")  # per side, on each side's notional
    transfer_usd: Usd = Decimal(0)  # a fixed cost per round (moving the asset or the cash back)
    transfer_bps: Bps = Decimal(0)  # and a share of the bought notional
    threshold_bps: Bps = Decimal(5)  # net spread, in bps of the bought notional, that reaches the model
    tier: str = "advanced"
    task: str | None = None
    key: str | None = None
    max_tokens: int = Field(300, gt=0, le=100_000)


def check_desk_references(compliance: ComplianceSettings, arbitrage: ArbitrageSettings | None,
                          known: dict[str, Any]) -> None:
    """Refuse a review or evaluation routed to a tier, task or key the configuration does not have.

    Only what is in use: the review when compliance is enabled, the evaluation when `[arbitrage]`
    is given or `lyra arbitrage` runs (`arbitrage` None: not checked), so that a configuration
    without a premium or advanced tier still loads."""
    places: list[tuple[str, str | None, str]] = []
    if compliance.enabled and compliance.review:
        tier = None if compliance.review_task else compliance.review_tier
        places += [("compliance.review_tier", tier, "tiers"),
                   ("compliance.review_task", compliance.review_task, "tasks"),
                   ("compliance.review_key", compliance.review_key, "keys")]
    if arbitrage is not None:
        places += [("arbitrage.tier", None if arbitrage.task else arbitrage.tier, "tiers"),
                   ("arbitrage.task", arbitrage.task, "tasks"), ("arbitrage.key", arbitrage.key, "keys")]
    for where, name, what in places:
        if name is not None and name not in known[what]:
            raise ValueError(f"{where}: unknown {what[:-1]} {name!r}; configured: {', '.join(known[what])}")
