"""The paper account: cash and one signed position, filled by one set of rules and checked on every bar.

The backtest, `lyra live` and the gateway's `/v1/decide` all keep their book here, so that a
drawdown halt or an emergency stop behaves the same in a test of the past and on today's tape.

Rules:
- An order queued after a bar's close fills at the next bar's open, moved against the trader
  by the slippage, and pays the fee on the traded notional. One position at a time: BUY goes
  long, SELL goes short, CLOSE goes flat; an order in the direction already held trades nothing.
- The emergency stop is checked on every bar, intrabar: a long whose bar low reaches the stop
  price (entry less `emergency_stop_loss`) is closed at that price, or at the open when the bar
  opened beyond it (a gap); a short symmetrically on the high.
- The day starts at the UTC day change or at the configured session start: the day-start equity
  is the equity at the last close before it. Equity is taken at its worst point of every bar
  (the low for a long, the high for a short); once it has fallen `daily_drawdown_halt` below the
  day-start equity, new entries are halted for the rest of that day.
- P&L: `realised_pnl + unrealised_pnl == equity - starting_equity` at every close; fees are
  realised when paid, a position's price move when it is closed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from lyra.config import RiskSettings, Settings
from lyra.days import session_seconds
from lyra.errors import LyraError
from lyra.trading.risk import AccountState, FinalAction, Position, reaches

ACCOUNT_VERSION = 1


class AccountError(LyraError):
    """A paper account's stored or submitted state is not one the rules can trade on."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Costs:
    """Trading frictions in basis points of the traded notional."""

    fee_bps: float = 1.0
    slippage_bps: float = 2.0

    @property
    def round_trip(self) -> float:
        return 2 * (self.fee_bps + self.slippage_bps) / 10_000


@dataclass(slots=True)
class Fill:
    """One executed order: signed units at a price (slippage included), the fee, and why."""

    time: pd.Timestamp
    units: float
    price: float
    fee: float
    reason: str = "order"  # "order" or "emergency stop"


@dataclass(frozen=True, slots=True)
class AccountEvent:
    """A rule that fired on a bar: an emergency stop or a drawdown halt."""

    time: pd.Timestamp
    kind: str  # "emergency_stop" | "drawdown_halt"
    detail: str


@dataclass(frozen=True, slots=True)
class BarPrices:
    """One bar's prices, as the account reads them."""

    time: pd.Timestamp
    open: float
    high: float
    low: float
    close: float


def session_start_s(settings: Settings) -> int:
    """When the trading day starts, in seconds after 00:00 UTC: the configured session's start."""
    return session_seconds(settings.schedule.session_utc)[0]


def bar_prices(frame: pd.DataFrame, i: int) -> BarPrices:
    """Bar i of an OHLC frame; a missing high or low reads as the larger or smaller of open and close."""
    row = frame.iloc[i]
    open_, close = float(row["open"]), float(row["close"])
    high = _finite(row.get("high"), max(open_, close))
    low = _finite(row.get("low"), min(open_, close))
    return BarPrices(pd.Timestamp(frame.index[i]), open_, max(high, open_, close), min(low, open_, close),
                     close)


def _finite(value: Any, default: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    return number if math.isfinite(number) else default


@dataclass(slots=True, kw_only=True)
class TradeTally:
    """Closed round trips and how many made money after their fees."""

    closed: int = 0
    won: int = 0

    @property
    def profitable_share(self) -> float | None:
        return self.won / self.closed if self.closed else None


class PaperAccount:
    """Cash, one signed position, the day's start and low, realised P&L, fills and rule events."""

    def __init__(self, *, equity: float, costs: Costs | None = None, risk: RiskSettings | None = None,
                 day_start_s: int = 0) -> None:
        if not math.isfinite(equity) or equity <= 0:
            raise AccountError(f"account equity must be a positive amount, got {equity}")
        self.costs = costs or Costs()
        self.risk = risk
        self.day_start_s = day_start_s  # session start, seconds after 00:00 UTC
        self.starting_equity = float(equity)
        self.cash = float(equity)
        self.units = 0.0
        self.entry = 0.0
        self.entry_fee = 0.0  # the open position's entry fee, for the round trip's result
        self.pending: float | None = None  # a target notional, filled at the next open
        self.fills: list[Fill] = []
        self.events: list[AccountEvent] = []
        self.tally = TradeTally()
        self.realised_pnl = 0.0
        self.day: pd.Timestamp | None = None
        self.day_start_equity = float(equity)
        self.day_low_equity = float(equity)
        self.halted = False
        self.first_price: float | None = None  # the first bar's open: where buy-and-hold starts
        self.first_time: pd.Timestamp | None = None
        self.last_price: float | None = None
        self.last_time: pd.Timestamp | None = None
        self.decisions = 0  # decisions recorded against this account (live and gateway)
        self.ai_spend_nanos = 0  # what those decisions cost in model calls

    # -- reading ---------------------------------------------------------------------------

    @property
    def equity(self) -> float:
        """Cash plus the position marked at the last close."""
        return self.cash + self.units * (self.last_price or 0.0)

    @property
    def unrealised_pnl(self) -> float:
        return self.units * ((self.last_price or 0.0) - self.entry) if self.units else 0.0

    @property
    def day_drawdown(self) -> float:
        """The worst fall of equity so far today below the day-start equity, as a fraction."""
        return max(0.0, (self.day_start_equity - self.day_low_equity) / self.day_start_equity)

    def state(self) -> AccountState:
        """The account as the risk rules see it after the last close."""
        return AccountState(equity_at_day_start=self.day_start_equity, equity=self.equity,
                            position=Position(units=self.units, entry_price=self.entry),
                            day_low_equity=self.day_low_equity, halted=self.halted)

    def session_day(self, t: pd.Timestamp) -> pd.Timestamp:
        """The trading day a time belongs to: its UTC date, shifted by the session start."""
        return (pd.Timestamp(t) - pd.Timedelta(seconds=self.day_start_s)).floor("D")

    # -- trading ---------------------------------------------------------------------------

    def record_decision(self, cost_nanos: int) -> None:
        """Count one decision taken on this account and what its model calls cost."""
        self.decisions += 1
        self.ai_spend_nanos += int(cost_nanos)

    def order(self, action: FinalAction, notional: float) -> bool:
        """Queue the order an action implies, for the next bar's open; False when it trades nothing
        because the position is already that way (one position, no pyramiding)."""
        if action == "HOLD":
            return True
        direction = {"BUY": 1.0, "SELL": -1.0, "CLOSE": 0.0}[action]
        if direction != 0 and self.units * direction > 0:
            return False
        if action == "CLOSE" and self.units == 0:
            self.pending = None
            return True
        self.pending = direction * notional
        return True

    def bar(self, prices: BarPrices) -> list[AccountEvent]:
        """Process one bar: start a new day, fill the queued order at the open, apply the stop and
        the halt intrabar, then mark at the close. Returns the events this bar fired."""
        if self.last_time is not None and prices.time <= self.last_time:
            return []  # a bar already processed (a restart re-reads the tape)
        self._roll_day(prices.time)
        fired: list[AccountEvent] = []
        if self.pending is not None:
            self._fill(prices.time, prices.open, self.pending / prices.open, "order")
            self.pending = None
        if self.first_price is None:
            self.first_price, self.first_time = prices.open, prices.time
        worst = self._worst_equity(prices)
        stop = self._stop_exit(prices)
        if stop is not None:
            detail = (f"adverse move reached {self._stop_share():.1%} of the entry "
                      f"{self.entry:,.6g}: closed at {stop:,.6g}")
            self._fill(prices.time, stop, 0.0, "emergency stop")
            worst = self.cash  # out at the stop: nothing below it was lost
            fired.append(AccountEvent(prices.time, "emergency_stop", detail))
        self.last_price, self.last_time = prices.close, prices.time
        self.day_low_equity = min(self.day_low_equity, worst, self.equity)
        fired += self._check_halt(prices.time)
        self.events += fired
        return fired

    def _roll_day(self, t: pd.Timestamp) -> None:
        day = self.session_day(t)
        if self.day is None:
            self.day = day
            return
        if day != self.day:
            self.day = day
            self.day_start_equity = self.equity  # at the last close before the day change
            self.day_low_equity = self.day_start_equity
            self.halted = False

    def _stop_share(self) -> float:
        return self.risk.emergency_stop_loss if self.risk is not None else math.inf

    def _stop_exit(self, prices: BarPrices) -> float | None:
        """The price at which the emergency stop closes the position on this bar, if it is reached."""
        share = self._stop_share()
        if self.units == 0 or self.entry <= 0 or not math.isfinite(share):
            return None
        if self.units > 0:
            level = self.entry * (1 - share)
            adverse = (self.entry - prices.low) / self.entry
            return min(prices.open, level) if reaches(adverse, share) else None
        level = self.entry * (1 + share)
        adverse = (prices.high - self.entry) / self.entry
        return max(prices.open, level) if reaches(adverse, share) else None

    def _worst_equity(self, prices: BarPrices) -> float:
        """Equity at the bar's most adverse price for the position held (before any stop)."""
        adverse = prices.low if self.units > 0 else prices.high
        return self.cash + self.units * adverse

    def _check_halt(self, t: pd.Timestamp) -> list[AccountEvent]:
        limit = self.risk.daily_drawdown_halt if self.risk is not None else None
        if self.halted or limit is None or not reaches(self.day_drawdown, limit):
            return []
        self.halted = True
        return [AccountEvent(t, "drawdown_halt", f"equity fell {self.day_drawdown:.2%} below the day's start "
                                                 f"(limit {limit:.2%}): new entries halted for the day")]

    def _fill(self, when: pd.Timestamp, price_before_slippage: float, target_units: float,
              reason: str) -> None:
        delta = target_units - self.units
        if delta == 0:
            return
        side = 1.0 if delta > 0 else -1.0
        price = price_before_slippage * (1 + side * self.costs.slippage_bps / 10_000)
        fee = abs(delta) * price_before_slippage * self.costs.fee_bps / 10_000
        self._realise(price, fee, target_units)
        self.cash -= delta * price + fee
        self.units = float(target_units)
        self.fills.append(Fill(when, float(delta), float(price), float(fee), reason))

    def _realise(self, price: float, fee: float, target_units: float) -> None:
        """Book the fee and, for the part of the position this fill closes, its price move."""
        self.realised_pnl -= fee
        closes_all = self.units != 0 and (target_units == 0 or target_units * self.units < 0)
        if closes_all:
            move = self.units * (price - self.entry)
            self.realised_pnl += move
            exit_fee = fee * abs(self.units) / abs(target_units - self.units)
            self.tally.closed += 1
            self.tally.won += move - self.entry_fee - exit_fee > 0
        if target_units == 0:
            self.entry, self.entry_fee = 0.0, 0.0
        elif closes_all or self.units == 0:
            self.entry = price
            self.entry_fee = fee * abs(target_units) / abs(target_units - self.units)

    # -- persistence -----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Everything needed to resume the account after a restart."""
        return {
            "version": ACCOUNT_VERSION, "starting_equity": self.starting_equity, "cash": self.cash,
            "units": self.units, "entry": self.entry, "entry_fee": self.entry_fee, "pending": self.pending,
            "realised_pnl": self.realised_pnl, "closed_trades": self.tally.closed,
            "winning_trades": self.tally.won, "day": _iso(self.day),
            "day_start_equity": self.day_start_equity,
            "day_low_equity": self.day_low_equity, "halted": self.halted, "first_price": self.first_price,
            "first_time": _iso(self.first_time),
            "last_price": self.last_price, "last_time": _iso(self.last_time), "decisions": self.decisions,
            "ai_spend_nanos": self.ai_spend_nanos,
            "fills": [{"time": f.time.isoformat(), "units": f.units, "price": f.price, "fee": f.fee,
                       "reason": f.reason} for f in self.fills[-MAX_KEPT:]],
            "events": [{"time": e.time.isoformat(), "kind": e.kind, "detail": e.detail}
                       for e in self.events[-MAX_KEPT:]],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, costs: Costs | None = None, risk: RiskSettings | None = None,
                  day_start_s: int = 0) -> PaperAccount:
        """An account resumed from `to_dict`; AccountError naming the field when it is not usable."""
        if data.get("version") != ACCOUNT_VERSION:
            raise AccountError(f"stored paper account has version {data.get('version')!r}, "
                               f"this Lyra reads {ACCOUNT_VERSION}")
        account = cls(equity=_number(data, "starting_equity"), costs=costs, risk=risk,
                      day_start_s=day_start_s)
        for name in ("cash", "units", "entry", "entry_fee", "realised_pnl", "day_start_equity",
                     "day_low_equity"):
            setattr(account, name, _number(data, name))
        account.pending = None if data.get("pending") is None else _number(data, "pending")
        account.tally = TradeTally(closed=int(data.get("closed_trades", 0)),
                                   won=int(data.get("winning_trades", 0)))
        account.halted = bool(data.get("halted", False))
        account.decisions = int(data.get("decisions", 0))
        account.ai_spend_nanos = int(data.get("ai_spend_nanos", 0))
        account.day = _time(data.get("day"))
        account.last_time = _time(data.get("last_time"))
        account.first_time = _time(data.get("first_time"))
        account.first_price = None if data.get("first_price") is None else _number(data, "first_price")
        account.last_price = None if data.get("last_price") is None else _number(data, "last_price")
        account.fills = [Fill(pd.Timestamp(f["time"]), float(f["units"]), float(f["price"]), float(f["fee"]),
                              str(f.get("reason", "order"))) for f in data.get("fills", [])]
        account.events = [AccountEvent(pd.Timestamp(e["time"]), str(e["kind"]), str(e["detail"]))
                          for e in data.get("events", [])]
        return account


MAX_KEPT = 500  # fills and events kept in a stored account (the audit trail keeps every decision)


def _number(data: dict[str, Any], name: str) -> float:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise AccountError(f"paper account field `{name}` must be a finite number, got {value!r}")
    return float(value)


def _iso(t: pd.Timestamp | None) -> str | None:
    return None if t is None else t.isoformat()


def _time(value: Any) -> pd.Timestamp | None:
    return None if value is None else pd.Timestamp(value)


__all__ = ["ACCOUNT_VERSION", "AccountError", "AccountEvent", "BarPrices", "Costs", "Fill", "PaperAccount",
           "TradeTally", "bar_prices", "session_start_s"]
