"""A paper portfolio over several symbols: bars aligned in time, exact cash, next-bar fills per symbol.

Alignment: the portfolio's clock is the union of every symbol's bar times, over the span where
every symbol has data (the latest first bar to the earliest last one). A symbol with no bar
at a time keeps its last close for marking (a stale price, as a broker's statement would show it)
and cannot trade then: its order waits for its own next bar. Before its first bar a symbol has
no price and cannot be held.

Money is exact: cash, fees and notionals are Decimal, rounded to the nano-dollar; units to
1e-8. Prices come from the bars (floats) and enter as the shortest decimal that reads back as
the same float, so a fill at 196.946945 costs exactly 196.946945 a unit.

Fills: a rebalance decided at the close of t queues, for each symbol, the units that move it
from its current value to its target weight of the equity at t's closes; the order fills at that
symbol's next bar's open, moved against the trader by the slippage, and pays that symbol's fee on
the traded notional. A newer rebalance replaces orders that have not filled yet.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import pandas as pd

from lyra.trading.data import Bars, DataError
from lyra.trading.intervals import _interval_delta
from lyra.trading.timeframes import resample

NANO = Decimal("0.000000001")
UNIT_STEP = Decimal("0.00000001")
_BPS = Decimal(10_000)
ZERO = Decimal(0)
PORTFOLIO_VERSION = 1


def money(value: Decimal) -> Decimal:
    """An amount rounded to the nano-dollar (half to even)."""
    return value.quantize(NANO, rounding=ROUND_HALF_EVEN)


def exact(value: float) -> Decimal:
    """A float price as the shortest decimal that reads back as the same float."""
    return Decimal(repr(float(value)))


@dataclass(frozen=True, slots=True)
class Aligned:
    """Several symbols' bars on one clock: the union of their bar times, one interval."""

    bars: dict[str, Bars]
    times: pd.DatetimeIndex
    interval: str
    opens: pd.DataFrame  # time x symbol: the bar's open, NaN where the symbol had no bar
    closes: pd.DataFrame  # time x symbol: the last close known (carried forward), NaN before the first bar
    resampled: dict[str, str] = field(default_factory=dict)  # symbol -> the interval it was resampled from

    @property
    def symbols(self) -> list[str]:
        return list(self.bars)

    def known(self, t: pd.Timestamp) -> dict[str, Bars]:
        """Each symbol's bars at or before t: all that a decision at t may read."""
        return {s: b.until(t) for s, b in self.bars.items()}


def align(series: Sequence[Bars]) -> Aligned:
    """Put several symbols on one clock; finer bars are resampled to the coarsest interval first."""
    if len(series) < 2:
        raise DataError("--portfolio: give at least two data sets (files or samples), comma-separated")
    names = [b.symbol for b in series]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DataError(
            f"--portfolio: symbol {repeated[0]} appears twice; each data set must be another symbol"
        )
    interval = max((b.interval for b in series), key=_interval_delta)
    step = _interval_delta(interval)
    resampled: dict[str, str] = {}
    bars: dict[str, Bars] = {}
    for b in series:
        if b.interval.endswith("M") or step % _interval_delta(b.interval) != pd.Timedelta(0):
            raise DataError(f"--portfolio: {b.symbol} has {b.interval} bars, which do not divide {interval}")
        if b.interval != interval:
            resampled[b.symbol] = b.interval
            b = resample(b, interval)
        bars[b.symbol] = b
    # The clock runs where every symbol has data: from the latest first bar to the earliest last one.
    lo, hi = max(b.start for b in bars.values()), min(b.end for b in bars.values())
    if lo > hi:
        raise DataError(f"--portfolio: the data sets do not overlap in time ({', '.join(bars)})")
    union = sorted(set().union(*(b.frame.index for b in bars.values())))
    times = pd.DatetimeIndex([t for t in union if lo <= t <= hi], name="time")
    opens = pd.DataFrame({s: b.frame["open"].reindex(times) for s, b in bars.items()}, index=times)
    closes = pd.DataFrame({s: b.frame["close"].reindex(times).ffill() for s, b in bars.items()}, index=times)
    return Aligned(bars=bars, times=times, interval=interval, opens=opens, closes=closes, resampled=resampled)


@dataclass(frozen=True, slots=True, kw_only=True)
class PortfolioCosts:
    """Fees and slippage in basis points of the traded notional; fees may differ per symbol."""

    fee_bps: Decimal = Decimal(1)
    slippage_bps: Decimal = Decimal(2)
    symbol_fee_bps: Mapping[str, Decimal] = field(default_factory=dict)

    def fee_for(self, symbol: str) -> Decimal:
        return self.symbol_fee_bps.get(symbol, self.fee_bps)


@dataclass(frozen=True, slots=True)
class PortfolioFill:
    """One executed order: signed units of a symbol at a price (slippage included), its exact fee."""

    time: pd.Timestamp
    symbol: str
    units: Decimal
    price: Decimal
    notional: Decimal  # |units| x price, to the nano-dollar
    fee: Decimal

    def to_dict(self) -> dict[str, object]:
        return {
            "time": self.time.isoformat(),
            "symbol": self.symbol,
            "units": str(self.units),
            "price": str(self.price),
            "notional_usd": str(self.notional),
            "fee_usd": str(self.fee),
        }


class PaperPortfolio:
    """Cash and one signed position per symbol, valued at the last known closes."""

    def __init__(self, symbols: Sequence[str], *, cash: Decimal, costs: PortfolioCosts) -> None:
        self.cash = money(cash)
        self.units: dict[str, Decimal] = dict.fromkeys(symbols, ZERO)
        self.costs = costs
        self.fills: list[PortfolioFill] = []
        self.pending: dict[str, Decimal] = {}
        self.prices: dict[str, Decimal | None] = dict.fromkeys(symbols)

    def to_dict(self) -> dict[str, object]:
        """The book as JSON, every amount as an exact decimal string (saved by `lyra live --portfolio`)."""
        return {
            "version": PORTFOLIO_VERSION,
            "cash": str(self.cash),
            "units": {s: str(u) for s, u in self.units.items()},
            "pending": {s: str(u) for s, u in self.pending.items()},
            "prices": {s: (str(p) if p is not None else None) for s, p in self.prices.items()},
            "fills": [f.to_dict() for f in self.fills],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, costs: PortfolioCosts) -> PaperPortfolio:
        """A book saved by `to_dict`; a state that does not parse raises DataError naming the field."""
        try:
            if data.get("version") != PORTFOLIO_VERSION:
                raise ValueError(f"version {data.get('version')!r}, expected {PORTFOLIO_VERSION}")
            units = {str(s): Decimal(str(u)) for s, u in dict(data["units"]).items()}
            book = cls(list(units), cash=Decimal(str(data["cash"])), costs=costs)
            book.units = units
            book.pending = {str(s): Decimal(str(u)) for s, u in dict(data["pending"]).items()}
            book.prices = {
                str(s): (Decimal(str(p)) if p is not None else None) for s, p in dict(data["prices"]).items()
            }
            book.fills = [
                PortfolioFill(
                    pd.Timestamp(str(f["time"])),
                    str(f["symbol"]),
                    Decimal(str(f["units"])),
                    Decimal(str(f["price"])),
                    Decimal(str(f["notional_usd"])),
                    Decimal(str(f["fee_usd"])),
                )
                for f in list(data.get("fills", []))
            ]
        except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
            raise DataError(f"saved portfolio cannot be resumed: {exc}") from None
        return book

    def mark(self, closes: Mapping[str, float]) -> None:
        """Take the last known close of each symbol (NaN: not known yet)."""
        for symbol, close in closes.items():
            if close == close:  # not NaN
                self.prices[symbol] = exact(close)

    def value(self, symbol: str) -> Decimal:
        price = self.prices.get(symbol)
        return money(self.units[symbol] * price) if price is not None else ZERO

    @property
    def equity(self) -> Decimal:
        return money(self.cash + sum((self.value(s) for s in self.units), ZERO))

    def weights(self) -> dict[str, float]:
        """Each position's value over the equity (0 when the equity is not positive)."""
        equity = self.equity
        if equity <= 0:
            return dict.fromkeys(self.units, 0.0)
        return {s: float(self.value(s) / equity) for s in self.units}

    def exposure(self) -> tuple[float, float]:
        """Gross and net exposure, as shares of equity."""
        w = self.weights().values()
        return sum(abs(x) for x in w), sum(w)

    def target(self, weights: Mapping[str, float]) -> dict[str, Decimal]:
        """Queue the orders that move each symbol to its target weight of today's equity.

        Symbols left out of `weights` keep their position; a symbol with no price yet is not traded.
        """
        equity = self.equity
        orders: dict[str, Decimal] = {}
        for symbol, weight in weights.items():
            price = self.prices.get(symbol)
            if price is None or price <= 0:
                continue
            wanted = money(exact(weight) * equity)
            units = ((wanted - self.value(symbol)) / price).quantize(UNIT_STEP, rounding=ROUND_HALF_EVEN)
            if units != 0:
                orders[symbol] = units
        self.pending = orders
        return orders

    def fill_open(self, t: pd.Timestamp, opens: Mapping[str, float]) -> list[PortfolioFill]:
        """Fill the queued orders of the symbols that have a bar at t, at its open (slippage against us)."""
        done: list[PortfolioFill] = []
        for symbol, units in list(self.pending.items()):
            open_ = opens.get(symbol)
            if open_ is None or open_ != open_:
                continue  # no bar for this symbol now: the order waits for its next one
            slip = self.costs.slippage_bps / _BPS
            price = exact(open_) * (1 + slip if units > 0 else 1 - slip)
            notional = money(abs(units) * price)
            fee = money(notional * self.costs.fee_for(symbol) / _BPS)
            self.cash = self.cash - notional - fee if units > 0 else self.cash + notional - fee
            self.units[symbol] += units
            fill = PortfolioFill(t, symbol, units, price, notional, fee)
            self.fills.append(fill)
            done.append(fill)
            del self.pending[symbol]
        return done


__all__ = ["NANO", "Aligned", "PaperPortfolio", "PortfolioCosts", "PortfolioFill", "align", "exact", "money"]
