"""Walk-forward simulation: decide on the bars known at t, fill at the next bar's open, mark at closes.

A strategy is a `Decider`: given only the bars up to t (the walk passes `bars.until(t)`) and the
account, it returns a `Step`. Orders fill at the open of the bar after the decision, moved
against the trader by the slippage, and pay the fee on the traded notional. One position at a
time: long, short or flat; BUY goes long, SELL goes short, CLOSE goes flat, HOLD keeps it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from lyra.config import RiskSettings
from lyra.errors import LyraError
from lyra.trading.account import AccountEvent, Costs, Fill, PaperAccount, bar_prices
from lyra.trading.data import Bars, DataError, as_utc
from lyra.trading.features import SMA_SLOW, compute_features
from lyra.trading.metrics import Scored, curve_stats, signal_stats
from lyra.trading.risk import AccountState, FinalAction

WARMUP_BARS = SMA_SLOW + 5  # enough history for every feature the prompts carry
DEFAULT_POINTS = 100


class LookAheadError(LyraError):
    """A strategy used information from after its decision time."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Window:
    """Which bars to walk over and how often to decide."""

    start: str | None = None
    end: str | None = None
    every: int | None = None  # None: about DEFAULT_POINTS decisions over the window
    horizon: int | None = None  # bars over which a signal is scored; None: `every`


@dataclass(slots=True, kw_only=True)
class Vote:
    """One panel member's call at one step."""

    model: str
    action: str | None
    confidence: float
    cost_nanos: int


@dataclass(slots=True, kw_only=True)
class Step:
    """What a strategy decided at one bar, with what it cost and (for replay) its canonical record."""

    time: pd.Timestamp
    action: FinalAction
    notional_usd: float
    cost_nanos: int = 0
    votes: list[Vote] = field(default_factory=list)
    record: dict[str, Any] = field(default_factory=dict)
    already_held: bool = False  # a BUY or SELL that traded nothing: the position was already that way


Decider = Callable[[Bars, pd.Timestamp, AccountState], Awaitable[Step]]


@dataclass(slots=True, kw_only=True)
class Run:
    """A strategy's walk: its steps, fills and per-bar equity and position."""

    name: str
    steps: list[Step]
    fills: list[Fill]
    equity: pd.Series
    units: pd.Series
    events: list[AccountEvent] = field(default_factory=list)  # stops and halts, as they fired


def decision_times(bars: Bars, window: Window) -> list[pd.Timestamp]:
    """The decision bars: every `every`-th bar of the window after the warm-up, the last one excluded."""
    frame = bars.frame
    lo = as_utc(window.start) if window.start else frame.index[0]
    hi = as_utc(window.end) if window.end else frame.index[-1]
    positions = np.flatnonzero((frame.index >= lo) & (frame.index <= hi))
    positions = positions[positions >= WARMUP_BARS]
    positions = positions[positions < len(frame) - 1]  # a decision needs a next bar to fill at
    if not len(positions):
        span = f"{bars.start.isoformat()} .. {bars.end.isoformat()}"
        raise DataError(f"no bar to decide on in {lo.isoformat()} .. {hi.isoformat()} after the "
                        f"{WARMUP_BARS}-bar warm-up (data: {span})")
    every = step_every(len(positions), window.every)
    return [frame.index[i] for i in positions[::every]]


def step_every(n_bars: int, every: int | None) -> int:
    """The decision spacing: as asked, or about DEFAULT_POINTS decisions over the window."""
    if every is not None:
        if every < 1:
            raise DataError(f"--every must be at least 1, got {every}")
        return every
    return max(1, -(-n_bars // DEFAULT_POINTS))


async def walk(name: str, decider: Decider, bars: Bars, times: list[pd.Timestamp], *, equity: float,
               costs: Costs, on_step: Callable[[Step], None] | None = None, risk: RiskSettings | None = None,
               day_start_s: int = 0) -> Run:
    """Walk forward: decide at each time on the bars known then, fill at the next open, mark to the end.

    The book is a `PaperAccount`; with `risk`, its emergency stop and drawdown halt are applied on
    every bar of the walk (intrabar, on highs and lows), not only on decision bars.
    """
    frame = bars.frame
    index = {t: i for i, t in enumerate(frame.index)}
    account = PaperAccount(equity=equity, costs=costs, risk=risk, day_start_s=day_start_s)
    first, steps = index[times[0]], []
    decide_at = set(times)
    marks: dict[pd.Timestamp, tuple[float, float]] = {}
    for i in range(first, len(frame)):
        account.bar(bar_prices(frame, i))
        t = frame.index[i]
        marks[t] = (account.equity, account.units)
        if t not in decide_at:
            continue
        step = await decider(bars.until(t), t, account.state())
        if step.time != t:
            raise LookAheadError(f"{name}: asked to decide at {t.isoformat()}, answered for "
                                 f"{pd.Timestamp(step.time).isoformat()}")
        step.already_held = not account.order(step.action, step.notional_usd)
        steps.append(step)
        if on_step is not None:
            on_step(step)
    times_index = pd.DatetimeIndex(list(marks))
    return Run(name=name, steps=steps, fills=account.fills, events=account.events,
               equity=pd.Series([m[0] for m in marks.values()], index=times_index, dtype=float),
               units=pd.Series([m[1] for m in marks.values()], index=times_index, dtype=float))


def score(steps: list[Step], bars: Bars, horizon: int, costs: Costs) -> list[Scored]:
    """Each BUY or SELL scored from the next bar's open to the close `horizon` bars after the decision."""
    frame = bars.frame
    index = {t: i for i, t in enumerate(frame.index)}
    scored = []
    for step in steps:
        move = forward_move(frame, index[step.time], horizon)
        if step.action in ("BUY", "SELL") and move is not None:
            scored.append(Scored(time=step.time, direction=1 if step.action == "BUY" else -1, move=move,
                                 cost=costs.round_trip))
    return scored


def forward_move(frame: pd.DataFrame, i: int, horizon: int) -> float | None:
    """Close `horizon` bars after bar i over the open of bar i + 1, less 1; None past the data's end."""
    if i + max(1, horizon) >= len(frame):
        return None
    return float(frame["close"].iloc[i + max(1, horizon)] / frame["open"].iloc[i + 1] - 1)


def summarise(run: Run, bars: Bars, horizon: int, costs: Costs) -> dict[str, Any]:
    """A run's measures: signals, returns, risk, exposure, trades and AI spend and its return."""
    spend = sum(s.cost_nanos for s in run.steps)
    pnl = float(run.equity.iloc[-1] - run.equity.iloc[0]) if len(run.equity) else 0.0
    return {
        "name": run.name,
        **signal_stats(score(run.steps, bars, horizon, costs)),
        **curve_stats(run.equity, run.units, bars.interval),
        "pnl_usd": pnl,
        "trades": len(run.fills),
        "fees_usd": sum(f.fee for f in run.fills),
        "ai_spend_nanos": spend,
        "return_on_ai_spend": pnl / (spend / 1_000_000_000) if spend else None,
        "emergency_stops": sum(e.kind == "emergency_stop" for e in run.events),
        "drawdown_halts": sum(e.kind == "drawdown_halt" for e in run.events),
    }


def buy_and_hold(notional: float) -> Decider:
    """Baseline: long from the first decision to the end."""

    async def decide(known: Bars, t: pd.Timestamp, account: AccountState) -> Step:
        return Step(time=t, action="BUY", notional_usd=notional)

    return decide


def moving_average_cross(bars: Bars, notional: float) -> Decider:
    """Baseline: long while the fast SMA is above the slow one, short while below.

    Features are computed once on the whole series; they are causal (trailing windows), and the
    decider reads only the row at t.
    """
    features = compute_features(bars)

    async def decide(known: Bars, t: pd.Timestamp, account: AccountState) -> Step:
        ratio = float(features.at[t, "sma_ratio"])
        action: FinalAction = "HOLD" if not np.isfinite(ratio) else ("BUY" if ratio > 0 else "SELL")
        return Step(time=t, action=action, notional_usd=notional)

    return decide


__all__ = ["Costs", "Decider", "Fill", "LookAheadError", "Run", "Step", "Vote", "Window",
           "buy_and_hold", "decision_times", "forward_move", "moving_average_cross", "score", "step_every",
           "summarise", "walk"]
