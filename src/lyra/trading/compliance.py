"""A desk's compliance rules in code: checked in a fixed order on every order before it is final.

An order is what a decision would do to the book: BUY or SELL to a target notional. Exits
(CLOSE, and HOLD) are never blocked: a rule that kept a desk in a position it wants out of
would add risk, not remove it. Rules, in the order they are checked (the first that fails
names itself in the decision and the audit record):

1. kill_switch: on in config, or on while `kill_switch_file` exists (read on every order).
2. restricted_symbols: the symbol is on the desk's restricted list (case-insensitive).
3. trading_hours: the decision time is outside the symbol's hours ("*" for unlisted symbols).
4. max_trades_per_day: the desk already made this many trades today (UTC day, all symbols).
5. min_holding_time: the order reverses a position opened less than `min_holding_s` ago.
6. max_order_notional: the order trades more than this (a reversal trades out and in).
7. max_position_notional: the position it leaves is larger than this.

The trades and opening times the rules count are kept in a `ComplianceBook`: the orders this
process let through, in time order, one book per engine (the desk's). A position resumed from
the ledger with no opening order in the book is not held to the minimum holding time (its
opening time is not known here).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from lyra.config.desk import ComplianceSettings
from lyra.days import DAY_S, parse_session
from lyra.trading.risk import FinalAction

RULES = ("kill_switch", "restricted_symbols", "trading_hours", "max_trades_per_day", "min_holding_time",
         "max_order_notional", "max_position_notional")


@dataclass(frozen=True, slots=True)
class Order:
    """What a decision would trade: the action, its target notional, and the book it trades on."""

    symbol: str
    time: pd.Timestamp
    action: FinalAction
    notional_usd: float  # the target position's notional (the risk rules' size)
    position_units: float  # signed, before the order
    price: float

    @property
    def direction(self) -> int:
        return {"BUY": 1, "SELL": -1}.get(self.action, 0)

    @property
    def trades(self) -> bool:
        """True when the order changes exposure: a BUY not already long, a SELL not already short."""
        return self.direction != 0 and self.position_units * self.direction <= 0

    @property
    def reverses(self) -> bool:
        return self.trades and self.position_units != 0

    @property
    def traded_notional_usd(self) -> float:
        """Out of the old position and into the new one."""
        return abs(self.position_units) * self.price + self.notional_usd


@dataclass(frozen=True, slots=True)
class RuleCheck:
    """The code's ruling: the first rule that failed (None: every rule passed) and why."""

    blocked_by: str | None
    reason: str
    checked: tuple[str, ...]  # the rules checked, in order, up to and including a failing one

    @property
    def passed(self) -> bool:
        return self.blocked_by is None


@dataclass(slots=True)
class ComplianceBook:
    """The orders let through so far, for the per-day count and the holding time."""

    trades: list[tuple[pd.Timestamp, str]] = field(default_factory=list)  # (time, symbol)
    opened: dict[str, pd.Timestamp] = field(default_factory=dict)  # symbol -> when its position opened
    latest: pd.Timestamp | None = None

    def note_time(self, when: pd.Timestamp) -> None:
        """A decision earlier than the latest seen starts a new book: a backtest walking again."""
        if self.latest is not None and when < self.latest:
            self.trades.clear()
            self.opened.clear()
        self.latest = when

    def trades_on(self, when: pd.Timestamp) -> int:
        day = when.floor("D")
        return sum(1 for t, _ in self.trades if t.floor("D") == day)

    def record(self, order: Order) -> None:
        if order.trades:
            self.trades.append((order.time, order.symbol))
            self.opened[order.symbol] = order.time


def kill_switch_on(settings: ComplianceSettings) -> str | None:
    """Why the kill switch is on, or None."""
    if settings.kill_switch:
        return "compliance.kill_switch = true"
    if settings.kill_switch_file and Path(settings.kill_switch_file).expanduser().exists():
        return f"file {settings.kill_switch_file} exists"
    return None


def in_hours(hours: str, when: pd.Timestamp) -> bool:
    """True when `when` (UTC) is inside "HH:MM-HH:MM" (an overnight session wraps midnight)."""
    session = parse_session(hours)
    second = int((when - when.floor("D")).total_seconds()) % DAY_S
    if session.overnight:
        return second >= session.start_s or second < session.end_s
    return session.start_s <= second < session.end_s


class ComplianceRules:
    """Checks an order against the desk's rules in the fixed order of `RULES`."""

    def __init__(self, settings: ComplianceSettings) -> None:
        self.settings = settings
        self.book = ComplianceBook()
        self._restricted = {s.upper() for s in settings.restricted_symbols}

    def check(self, order: Order) -> RuleCheck:
        """The first rule the order fails, or a pass; exits and holds always pass."""
        if not order.trades:
            return RuleCheck(None, "no new exposure (a HOLD or an exit): nothing to check", ())
        checked: list[str] = []
        for name in RULES:
            checked.append(name)
            failed = self._rule(name, order)
            if failed is not None:
                return RuleCheck(name, f"blocked by compliance rule {name} ({failed})", tuple(checked))
        return RuleCheck(None, "passed every compliance rule", tuple(checked))

    def _rule(self, name: str, order: Order) -> str | None:
        s = self.settings
        if name == "kill_switch":
            return kill_switch_on(s)
        if name == "restricted_symbols":
            return f"{order.symbol} is restricted" if order.symbol.upper() in self._restricted else None
        if name == "trading_hours":
            hours = s.trading_hours_utc.get(order.symbol, s.trading_hours_utc.get("*"))
            if hours is not None and not in_hours(hours, order.time):
                return f"{order.time.strftime('%H:%M')} UTC is outside {order.symbol}'s hours {hours}"
            return None
        if name == "max_trades_per_day":
            done = self.book.trades_on(order.time)
            limit = s.max_trades_per_day
            return f"{done} of {limit} today" if limit is not None and done >= limit else None
        if name == "min_holding_time":
            opened = self.book.opened.get(order.symbol)
            if not order.reverses or opened is None or s.min_holding_s <= 0:
                return None
            held = (order.time - opened).total_seconds()
            return (f"position held {held:,.0f} s of the {s.min_holding_s:,.0f} s minimum before a reversal"
                    if held < s.min_holding_s else None)
        if name == "max_order_notional":
            limit_o = s.max_order_notional_usd
            traded = order.traded_notional_usd
            return (f"order ${traded:,.2f} over the ${limit_o:,.2f} limit"
                    if limit_o is not None and traded > limit_o else None)
        limit_p = s.max_position_notional_usd
        return (f"position ${order.notional_usd:,.2f} over the ${limit_p:,.2f} limit"
                if limit_p is not None and order.notional_usd > limit_p else None)


__all__ = ["RULES", "ComplianceBook", "ComplianceRules", "Order", "RuleCheck", "in_hours", "kill_switch_on"]
