"""Two-venue arbitrage in code: quotes aligned in time and the spread net of every cost, exactly.

One instrument quoted on two venues (two price files, or two exchanges' bars). At each bar of
venue A, venue B's quote is its last bar at or before that time (its age is how stale it is).
The trade buys `quantity` units on the cheaper venue at its close and sells them on the dearer
one at its close. In USD, with Decimal arithmetic throughout (prices are read as the shortest
decimal that round-trips the parsed number, which for a CSV is the text in the file):

    bought  = quantity * buy_price            sold = quantity * sell_price
    gross   = sold - bought
    fees    = bought * fee_bps(buy venue) / 10^4 + sold * fee_bps(sell venue) / 10^4
    slip    = (bought + sold) * slippage_bps / 10^4
    transfer= transfer_usd + bought * transfer_bps / 10^4
    net     = gross - fees - slip - transfer          net_bps = net / bought * 10^4

A candidate is any bar where the two quotes differ; it passes the code filter when
net * 10^4 >= threshold_bps * bought and net > 0 (compared exactly, no division).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal

import numpy as np
import pandas as pd

from lyra.config.desk import ArbitrageSettings
from lyra.trading.data import Bars, DataError

BPS = Decimal(10_000)
Venue = Literal["A", "B"]


@dataclass(frozen=True, slots=True)
class Costs:
    """The frictions of one round: both venues' fees, slippage per side, and the transfer."""

    quantity: Decimal
    fee_bps_a: Decimal
    fee_bps_b: Decimal
    slippage_bps: Decimal
    transfer_usd: Decimal
    transfer_bps: Decimal
    threshold_bps: Decimal

    @classmethod
    def of(cls, settings: ArbitrageSettings, **overrides: Decimal | None) -> Costs:
        values = {name: getattr(settings, name) for name in cls.__dataclass_fields__}
        values |= {k: v for k, v in overrides.items() if v is not None}
        return cls(**values)

    def fee_bps(self, venue: Venue) -> Decimal:
        return self.fee_bps_a if venue == "A" else self.fee_bps_b

    def to_dict(self) -> dict[str, str]:
        return {name: str(getattr(self, name)) for name in self.__dataclass_fields__}


@dataclass(frozen=True, slots=True)
class Spread:
    """One round's money, exact: what it grosses, what each cost takes, what is left."""

    buy_venue: Venue
    buy_price: Decimal
    sell_price: Decimal
    bought_usd: Decimal
    gross_usd: Decimal
    fees_usd: Decimal
    slippage_usd: Decimal
    transfer_usd: Decimal
    net_usd: Decimal

    @property
    def sell_venue(self) -> Venue:
        return "B" if self.buy_venue == "A" else "A"

    def bps(self, usd: Decimal) -> Decimal:
        """An amount in basis points of the bought notional, to 4 decimals (for reading only)."""
        return (usd / self.bought_usd * BPS).quantize(Decimal("0.0001"))

    def passes(self, threshold_bps: Decimal) -> bool:
        """The code filter, compared exactly: net at least the threshold, and a profit at all."""
        return self.net_usd > 0 and self.net_usd * BPS >= threshold_bps * self.bought_usd

    def to_dict(self) -> dict[str, Any]:
        return {"buy_venue": self.buy_venue, "sell_venue": self.sell_venue,
                "buy_price": str(self.buy_price), "sell_price": str(self.sell_price),
                "bought_usd": str(self.bought_usd), "gross_usd": str(self.gross_usd),
                "fees_usd": str(self.fees_usd), "slippage_usd": str(self.slippage_usd),
                "transfer_usd": str(self.transfer_usd), "net_usd": str(self.net_usd),
                "gross_bps": str(self.bps(self.gross_usd)), "net_bps": str(self.bps(self.net_usd))}


def round_trip(buy_venue: Venue, buy_price: Decimal, sell_price: Decimal, costs: Costs) -> Spread:
    """Buy `costs.quantity` on `buy_venue` at `buy_price`, sell on the other at `sell_price`."""
    bought, sold = costs.quantity * buy_price, costs.quantity * sell_price
    sell_venue: Venue = "B" if buy_venue == "A" else "A"
    fees = bought * costs.fee_bps(buy_venue) / BPS + sold * costs.fee_bps(sell_venue) / BPS
    slippage = (bought + sold) * costs.slippage_bps / BPS
    transfer = costs.transfer_usd + bought * costs.transfer_bps / BPS
    gross = sold - bought
    return Spread(buy_venue, buy_price, sell_price, bought, gross, fees, slippage, transfer,
                  gross - fees - slippage - transfer)


def best_spread(price_a: Decimal, price_b: Decimal, costs: Costs) -> Spread | None:
    """The round that buys on the cheaper venue; None when the quotes are equal (no candidate)."""
    if price_a == price_b:
        return None
    if price_a < price_b:
        return round_trip("A", price_a, price_b, costs)
    return round_trip("B", price_b, price_a, costs)


def exact(value: float) -> Decimal:
    """A parsed price as the shortest decimal that reads back as the same number (the file's text)."""
    return Decimal(repr(float(value)))


@dataclass(frozen=True, slots=True)
class Aligned:
    """Both venues' quotes at one bar of venue A."""

    time: pd.Timestamp
    price_a: Decimal
    price_b: Decimal
    age_b_s: float  # seconds since venue B's quote (venue A's is its own bar: age 0)
    since_previous_a_s: float | None  # gap before this bar on each venue (None: the first bar)
    since_previous_b_s: float | None
    volume_a: float | None
    volume_b: float | None


def align(a: Bars, b: Bars, *, start: str | None = None, end: str | None = None) -> list[Aligned]:
    """Venue B's last quote at or before each bar of venue A inside [start, end]."""
    fa, fb = a.frame, b.frame
    lo = pd.Timestamp(start, tz="UTC") if start else fa.index[0]
    hi = pd.Timestamp(end, tz="UTC") if end else fa.index[-1]
    positions = np.flatnonzero((fa.index >= lo) & (fa.index <= hi))
    if not len(positions):
        raise DataError(f"venue A has no bar in {lo.isoformat()} .. {hi.isoformat()}")
    at_b = fb.index.searchsorted(fa.index[positions], side="right") - 1
    out: list[Aligned] = []
    for i, j in zip(positions.tolist(), at_b.tolist(), strict=True):
        if j < 0:
            continue  # venue B has no quote yet
        t = fa.index[i]
        out.append(Aligned(
            time=t, price_a=exact(fa["close"].iloc[i]), price_b=exact(fb["close"].iloc[j]),
            age_b_s=(t - fb.index[j]).total_seconds(),
            since_previous_a_s=(t - fa.index[i - 1]).total_seconds() if i > 0 else None,
            since_previous_b_s=(fb.index[j] - fb.index[j - 1]).total_seconds() if j > 0 else None,
            volume_a=_volume(fa, i), volume_b=_volume(fb, j)))
    if not out:
        raise DataError("venue B has no quote at or before any bar of venue A in the window")
    return out


def _volume(frame: pd.DataFrame, i: int) -> float | None:
    value = float(frame["volume"].iloc[i])
    return value if np.isfinite(value) else None


def derive_venue(bars: Bars, *, lag_bars: int, offset_bps: Decimal, drop_every: int = 0,
                 decimals: int = 6) -> pd.DataFrame:
    """A second venue made from one price series: each bar's prices are those `lag_bars` earlier,
    moved by `offset_bps` and rounded to `decimals` places, and every `drop_every`-th bar left out
    (0: none), so that its quote is sometimes a bar old: a venue that quotes late, a little apart
    and now and then not at all. For demonstrations and tests only: it is not a real second market."""
    if lag_bars < 0:
        raise DataError(f"--lag-bars must be 0 or more, got {lag_bars}")
    if drop_every < 0 or drop_every == 1:
        raise DataError(f"--drop-every must be 0 (none) or at least 2, got {drop_every}")
    frame = bars.frame
    factor = 1 + offset_bps / BPS
    step = Decimal(1).scaleb(-decimals)
    out = pd.DataFrame(index=frame.index[lag_bars:])
    for column in ("open", "high", "low", "close"):
        source = frame[column].iloc[: len(frame) - lag_bars]
        out[column] = [str((exact(v) * factor).quantize(step)) for v in source]
    out["volume"] = frame["volume"].iloc[: len(frame) - lag_bars].to_numpy()
    out.index.name = "time"
    if drop_every:
        out = out[np.arange(len(out)) % drop_every != drop_every - 1]
    return out


__all__ = ["Aligned", "Costs", "Spread", "align", "best_spread", "derive_venue", "exact", "round_trip"]
