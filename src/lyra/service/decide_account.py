"""The account behind POST /v1/decide: the caller's own state, validated, or the server's paper account.

Without an `account` in the body, each client keeps one paper account per symbol on the server,
`gateway:<client>:<symbol>`, in the ledger database. A request first runs every bar the account
has not seen through it (so the previous decision's order fills at the next bar's open, and the
emergency stop and the drawdown halt are checked on every bar), then the pipeline decides on the
account's state, and the decision's order is queued for the next bar. Requests for one account
are taken one at a time in a gateway process; across worker processes the save re-reads the
stored account and, if another process saved it meanwhile, applies this request on top of that.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from lyra.config import Settings
from lyra.service.errors import ApiError, bad_request
from lyra.trading.account import (
    AccountError,
    AccountEvent,
    Costs,
    PaperAccount,
    bar_prices,
    session_start_s,
)
from lyra.trading.paper import ROAS_DEFINITION, results
from lyra.trading.pipeline import TradeDecision
from lyra.trading.risk import AccountState, Position, reaches


class CallerAccount(BaseModel):
    """The caller's own account, used for the risk rules of one decision and never stored."""

    model_config = ConfigDict(strict=True, extra="forbid")

    equity: float = Field(gt=0, allow_inf_nan=False)
    equity_at_day_start: float = Field(gt=0, allow_inf_nan=False)
    position_units: float = Field(allow_inf_nan=False)
    entry_price: float = Field(ge=0, allow_inf_nan=False)
    day_low_equity: float | None = Field(None, ge=0, allow_inf_nan=False)
    halted: bool = False

    @field_validator("entry_price")
    @classmethod
    def _entry_of_a_position(cls, value: float, info: ValidationInfo) -> float:
        units = info.data.get("position_units")
        if units is not None and units != 0 and value <= 0:
            raise ValueError("must be greater than 0 when position_units is not 0 (the price it was "
                             "entered at)")
        return value

    def state(self) -> AccountState:
        return AccountState(equity_at_day_start=self.equity_at_day_start, equity=self.equity,
                            position=Position(units=self.position_units, entry_price=self.entry_price),
                            day_low_equity=self.day_low_equity, halted=self.halted)

    def summary(self) -> dict[str, Any]:
        """The response's account block: the state the rules were given, and that nothing was kept."""
        state = self.state()
        return {"source": "caller", "stored": False, **self.model_dump(),
                "day_drawdown": round(state.drawdown, 6)}


class _Store(Protocol):
    def load(self, name: str) -> dict[str, Any] | None: ...

    def save(self, name: str, state: dict[str, Any]) -> None: ...


@dataclass(slots=True)
class _MemoryStore:
    """Accounts kept by the process, when the ledger is disabled."""

    states: dict[str, dict[str, Any]] = field(default_factory=dict)

    def load(self, name: str) -> dict[str, Any] | None:
        return self.states.get(name)

    def save(self, name: str, state: dict[str, Any]) -> None:
        self.states[name] = state


@dataclass(slots=True)
class _Opened:
    """An account as read at the start of a request, with what was stored then (to detect a rival save)."""

    account: PaperAccount
    stored: dict[str, Any] | None
    fills_before: int = 0
    events: list[AccountEvent] = field(default_factory=list)


class PaperDesk:
    """The gateway's paper accounts: one lock per account name, reads and saves off the event loop."""

    def __init__(self, settings: Settings, store: _Store | None) -> None:
        self.settings = settings
        self.store: _Store = store if store is not None else _MemoryStore()
        self.costs = Costs()
        self._locks: dict[str, asyncio.Lock] = {}
        self._waiting: Counter[str] = Counter()  # requests holding or awaiting each lock

    @contextlib.asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[None]:
        """One request at a time on an account in this process; the lock is dropped when nobody needs it."""
        lock = self._locks.setdefault(name, asyncio.Lock())
        self._waiting[name] += 1
        try:
            async with lock:
                yield
        finally:
            self._waiting[name] -= 1
            if not self._waiting[name]:
                del self._waiting[name], self._locks[name]

    def resume(self, name: str, stored: dict[str, Any] | None) -> PaperAccount:
        """The stored account, or a new one at the configured equity (as PaperBook opens it)."""
        risk, day_start = self.settings.risk, session_start_s(self.settings)
        if stored is None:
            return PaperAccount(equity=risk.account_equity_usd, costs=self.costs, risk=risk,
                                day_start_s=day_start)
        try:
            return PaperAccount.from_dict(stored, costs=self.costs, risk=risk, day_start_s=day_start)
        except (AccountError, KeyError, TypeError, ValueError) as exc:
            raise ApiError(409, f"paper account {name!r} in the ledger cannot be resumed: {exc}; send "
                                "your own `account` in the body, or ask an operator to repair it",
                           code="account_unreadable") from None

    def open(self, name: str, frame: pd.DataFrame, source: str) -> _Opened:
        """Read the account and run the request's unseen bars through it (blocking: run in a thread)."""
        stored = self.store.load(name)
        opened = _Opened(self.resume(name, stored), stored)
        last = opened.account.last_time
        end = pd.Timestamp(frame.index[-1])
        if last is not None and end < last:
            raise bad_request(source, f"{source}: the last bar ({end.isoformat()}) is older than the last "
                                      f"bar paper account {name!r} has seen ({last.isoformat()}); send bars "
                                      "up to now, or your own `account`", code="stale_market_data")
        opened.fills_before = len(opened.account.fills)
        opened.events = run_unseen_bars(opened.account, frame)
        return opened

    def save(self, name: str, opened: _Opened, apply: Callable[[PaperAccount], bool],
             frame: pd.DataFrame) -> bool:
        """Apply the decision and save; if another process saved the account since it was read, apply
        this request's bars and decision to that state instead (blocking: run in a thread).
        Returns whether the order was queued (False: the position was already that way)."""
        queued = apply(opened.account)
        current = self.store.load(name)
        if current != opened.stored:  # a rival save: this request goes on top of it
            rebased = _Opened(self.resume(name, current), current)
            rebased.fills_before = len(rebased.account.fills)
            rebased.events = run_unseen_bars(rebased.account, frame)
            queued = apply(rebased.account)
            opened.account, opened.stored = rebased.account, rebased.stored
            opened.fills_before, opened.events = rebased.fills_before, rebased.events
        self.store.save(name, opened.account.to_dict())
        return queued


def run_unseen_bars(account: PaperAccount, frame: pd.DataFrame) -> list[AccountEvent]:
    """Every bar after the account's last one, in order.

    A new account opens at the close of the request's last bar, where its first decision is taken:
    the bars before it are history it never traded, and buy-and-hold is measured from that close,
    over the same period as the account's P&L.
    """
    last = account.last_time
    if last is None:
        fired = account.bar(bar_prices(frame, len(frame) - 1))
        account.first_price = account.last_price
        return fired
    fired = []
    for i in range(int(frame.index.searchsorted(last, side="right")), len(frame)):
        fired += account.bar(bar_prices(frame, i))
    return fired


def desk_of(app_state: Any, settings: Settings, store: _Store | None) -> PaperDesk:
    """The app's one PaperDesk, made on first use (there is no await between the look and the set)."""
    desk: PaperDesk | None = getattr(app_state, "paper_desk", None)
    if desk is None:
        desk = PaperDesk(settings, store)
        app_state.paper_desk = desk
    return desk


def order_of(decision: TradeDecision) -> Callable[[PaperAccount], bool]:
    """Queue the decision's order and book its cost on an account; True unless the order traded nothing."""
    def apply(account: PaperAccount) -> bool:
        queued = account.order(decision.action, decision.notional_usd)
        account.record_decision(decision.cost_nanos)
        return queued

    return apply


def with_halt_reason(answer: dict[str, Any], state: AccountState, settings: Settings) -> dict[str, Any]:
    """The answer, its risk reasons naming the drawdown halt when the account is halted and it holds.

    The rules give the halt as the reason only when a trade was proposed; a halted account holds
    whatever the signal, and the answer says so either way.
    """
    limit = settings.risk.daily_drawdown_halt
    halted = state.halted or reaches(state.drawdown, limit)
    risk = answer.get("risk")
    if not halted or answer.get("action") != "HOLD" or not isinstance(risk, dict):
        return answer
    reasons = list(risk.get("reasons") or [])
    if not any("halted for the day" in str(r) for r in reasons):
        reasons.append(f"daily drawdown {state.drawdown:.2%} reached the {limit:.2%} halt: new entries "
                       "halted for the day")
    return answer | {"risk": risk | {"reasons": reasons}}


def server_summary(name: str, opened: _Opened, decision: TradeDecision, queued: bool) -> dict[str, Any]:
    """The response's account block: the account's results, what this request's bars did, the order."""
    account = opened.account
    new_fills = account.fills[opened.fills_before:]
    return {
        "source": "server", "stored": True, "name": name, **results(account),
        "return_on_ai_spend_definition": ROAS_DEFINITION,
        "fills_this_request": [{"time": f.time.isoformat(), "units": f.units, "price": f.price, "fee": f.fee,
                                "reason": f.reason} for f in new_fills],
        "events_this_request": [{"time": e.time.isoformat(), "kind": e.kind, "detail": e.detail}
                                for e in opened.events],
        "order": {"action": decision.action, "notional_usd": round(decision.notional_usd, 2),
                  "queued": queued, "fills_at": "the next bar's open" if decision.action != "HOLD" else None},
    }


__all__ = ["CallerAccount", "PaperDesk", "desk_of", "order_of", "run_unseen_bars", "server_summary",
           "with_halt_reason"]
