"""`lyra live --portfolio`: the rebalancing portfolio run on a replayed tape at its configured cadence.

The tape is the aligned bars of every symbol (lyra.trading.portfolio), played as `lyra live`
plays a replay: one bar a minute of session time, on the clock given (paced for people, simulated
for tests). On each bar the queued orders fill at the open and the book is marked at the closes;
a rebalance runs once `portfolio.every` of market time has passed since the last one (and at the
first bar where every symbol has its warm-up), through the same premium call, limits, panel
routing and audit chain as the backtest. Prompts carry the real symbols and times: live, there
is no future to hide.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import pandas as pd

from lyra.engine import Lyra
from lyra.ops.clock import Clock
from lyra.trading.backtest import WARMUP_BARS
from lyra.trading.data import DataError
from lyra.trading.intervals import _interval_delta
from lyra.trading.portfolio import Aligned, PaperPortfolio, PortfolioCosts, exact
from lyra.trading.rebalance import PortfolioView, Rebalancer

BAR_SESSION_S = 60.0  # a replayed bar is one minute of the session, as in `lyra live --replay`


@dataclass(slots=True, kw_only=True)
class PortfolioLiveStatus:
    """What the run did: bars played, rebalances by route, fills, cost, and the book at the end."""

    bars: int = 0
    rebalances: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    interrupted: bool = False
    resumed: bool = False  # the book was resumed from the ledger
    book: PaperPortfolio | None = None

    def to_dict(self) -> dict[str, Any]:
        book = self.book
        gross, net = book.exposure() if book is not None else (0.0, 0.0)
        return {
            "bars": self.bars,
            "rebalances": len(self.rebalances),
            "interrupted": self.interrupted,
            "resumed": self.resumed,
            "routes": {r: sum(d["route"] == r for d in self.rebalances) for r in ("premium", "panel")},
            "cost_nanos": sum(int(d["cost_nanos"]) for d in self.rebalances),
            "audited": sum(d.get("audit_seq") is not None for d in self.rebalances),
            "last_audit_seq": next(
                (d["audit_seq"] for d in reversed(self.rebalances) if d.get("audit_seq")), None
            ),
            "fills": len(book.fills) if book is not None else 0,
            "equity_usd": str(book.equity) if book is not None else None,
            "cash_usd": str(book.cash) if book is not None else None,
            "weights": {k: round(v, 6) for k, v in book.weights().items()} if book is not None else {},
            "gross_exposure": round(gross, 6),
            "net_exposure": round(net, 6),
            "errors": self.errors[-5:],
        }


async def run_portfolio_live(
    lyra: Lyra,
    aligned: Aligned,
    *,
    clock: Clock,
    stop: asyncio.Event | None = None,
    session_s: float | None = None,
    costs: PortfolioCosts | None = None,
) -> PortfolioLiveStatus:
    """Play the tape on `clock`, rebalancing every `portfolio.every` of market time.

    With a ledger the book is saved after every bar (as `portfolio:<symbols>`), so that a restart
    resumes it: cash, positions, queued orders, fills, the last bar played and the last rebalance.
    """
    settings = lyra.settings
    cadence = _interval_delta(settings.portfolio.every)
    every_bars = max(1, int(cadence / _interval_delta(aligned.interval)))
    name = portfolio_name(aligned.symbols)
    store = lyra.ledger.accounts if lyra.ledger is not None else None
    saved = store.load(name) if store is not None else None
    book, seen, last = _resume(saved, aligned, settings.risk.account_equity_usd, costs or PortfolioCosts())
    rebalancer = Rebalancer(lyra, anonymise=False)
    status = PortfolioLiveStatus(book=book, resumed=saved is not None)
    for t in aligned.times[_first_ready(aligned) :]:
        if seen is not None and t <= seen:
            continue  # played before a restart: the book already holds it
        at_s = status.bars * BAR_SESSION_S
        if session_s is not None and at_s > session_s:
            break
        await clock.sleep_until(at_s, stop=stop)
        if stop is not None and stop.is_set():
            status.interrupted = True
            break
        book.fill_open(t, aligned.opens.loc[t].to_dict())
        book.mark(aligned.closes.loc[t].to_dict())
        status.bars += 1
        if t != aligned.times[-1] and (last is None or t - last >= cadence):  # the last bar has no next open
            view = PortfolioView(
                time=t, known=aligned.known(t), current=book.weights(), equity=book.equity, every=every_bars
            )
            decision = await rebalancer.decide(view)
            book.target(decision.weights)
            status.rebalances.append(decision.to_dict())
            status.errors += decision.errors
            last = t
        if store is not None:
            store.save(name, _state(book, t, last))
    return status


def portfolio_name(symbols: Sequence[str]) -> str:
    """The ledger name of a live portfolio: its symbols, in order."""
    return "portfolio:" + "+".join(symbols)


def _state(book: PaperPortfolio, seen: pd.Timestamp, last: pd.Timestamp | None) -> dict[str, Any]:
    return {
        **book.to_dict(),
        "last_bar": seen.isoformat(),
        "last_rebalance": last.isoformat() if last is not None else None,
    }


def _resume(
    saved: dict[str, Any] | None, aligned: Aligned, equity: float, costs: PortfolioCosts
) -> tuple[PaperPortfolio, pd.Timestamp | None, pd.Timestamp | None]:
    if saved is None:
        return PaperPortfolio(aligned.symbols, cash=exact(equity), costs=costs), None, None
    book = PaperPortfolio.from_dict(saved, costs=costs)
    if list(book.units) != aligned.symbols:
        raise DataError(f"saved portfolio holds {', '.join(book.units)}, not {', '.join(aligned.symbols)}")
    seen = pd.Timestamp(saved["last_bar"]) if saved.get("last_bar") else None
    last = pd.Timestamp(saved["last_rebalance"]) if saved.get("last_rebalance") else None
    return book, seen, last


def _first_ready(aligned: Aligned) -> int:
    """The first position on the tape where every symbol has its warm-up of bars."""
    counts = pd.DataFrame(
        {s: b.frame["close"].reindex(aligned.times).notna().cumsum() for s, b in aligned.bars.items()},
        index=aligned.times,
    )
    ready = (counts >= WARMUP_BARS + 1).all(axis=1).to_numpy()
    return int(ready.argmax()) if ready.any() else len(aligned.times)


def describe(status: PortfolioLiveStatus) -> str:
    """One line for the end of a run."""
    d = status.to_dict()
    return (
        f"portfolio: {d['bars']} bars, {d['rebalances']} rebalances ({d['routes']['premium']} premium tier, "
        f"{d['routes']['panel']} full panel), {d['fills']} fills, "
        f"equity ${Decimal(d['equity_usd'] or 0):,.2f}"
    )


__all__ = ["BAR_SESSION_S", "PortfolioLiveStatus", "describe", "portfolio_name", "run_portfolio_live"]
