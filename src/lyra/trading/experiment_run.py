"""An experiment offline: the pipeline walked forward with one arm per decision, over recorded bars.

Each decision bar is an episode. Before it is decided, every earlier trial whose horizon has
closed by then gets its outcome (walk-forward); the arm is drawn among the arms the test has not
eliminated; the decision (and, with a ledger, its audit record) carries the arm. With a cassette
the answers are recorded or replayed, and a replay gives the same report byte for byte.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from lyra.engine import Lyra
from lyra.errors import ConfigError
from lyra.trading.account import session_start_s
from lyra.trading.backtest import Step, decision_times, walk
from lyra.trading.cassette import Cassette, CassetteMiss
from lyra.trading.data import Bars
from lyra.trading.evaluate import (
    BacktestOptions,
    ReplayMismatch,
    anonymise,
    decision_record,
    window_bars,
)
from lyra.trading.experiments import Experiment, Trial, episode_id
from lyra.trading.pipeline import TradingAIOrchestrator
from lyra.trading.risk import AccountState


def experiment_named(lyra: Lyra, name: str) -> Experiment:
    """The configured experiment, or one line naming the ones there are."""
    found = lyra.settings.experiments.get(name)
    if found is None:
        known = ", ".join(sorted(lyra.settings.experiments)) or "none configured"
        raise ConfigError(f"experiments.{name}: no such experiment in the configuration ({known})")
    return Experiment(name, found)


async def run_experiment(lyra: Lyra, bars: Bars, name: str, options: BacktestOptions, *,
                         cassette: Cassette | None = None, on_step: Callable[[Step], None] | None = None
                         ) -> dict[str, Any]:
    """Walk the pipeline over the window with the experiment's arms; its trials, timeline and verdict."""
    experiment = experiment_named(lyra, name)
    bars = window_bars(bars, options.window)
    times = decision_times(bars, options.window)
    horizon = experiment.settings.horizon_bars or options.window.horizon or _spacing(bars, times)
    frame, round_trip = bars.frame, options.costs.round_trip
    ledger = lyra.ledger
    orchestrator = TradingAIOrchestrator(lyra, audit=ledger is not None,
                                         feature_filter=anonymise if options.anonymise else None)
    timeline: list[dict[str, Any]] = []
    records: list[dict[str, Any]] = []

    def settle(until: pd.Timestamp) -> None:
        for trial in experiment.settle_on(frame, until=until, round_trip=round_trip):
            if ledger is not None:
                ledger.audit.append(experiment.outcome_record(trial), symbol=bars.symbol)

    async def decide(known: Bars, t: pd.Timestamp, account: AccountState) -> Step:
        settle(t)  # outcomes whose horizon closed by t: the only ones the verdict at t may read
        episode = episode_id(bars.symbol, t)
        arm = experiment.choose(episode, t)
        decision = await orchestrator.decide(bars.symbol, known, proposed_notional=options.notional, at=t,
                                             account=account, variant=experiment.variant(arm, episode))
        experiment.record(Trial(episode=episode, arm=arm.name, symbol=bars.symbol, time=t.isoformat(),
                                action=decision.action, decision_seq=decision.audit_seq, horizon=horizon))
        now = experiment.verdict_at(t.isoformat())
        timeline.append({"time": t.isoformat(), "arm": arm.name, "state": now.state, "leader": now.leader,
                         "active": now.active})
        record = decision_record(decision)
        records.append(record)
        return Step(time=t, action=decision.action, notional_usd=decision.notional_usd,
                    cost_nanos=decision.cost_nanos, record=record)

    if cassette is not None:
        cassette.note_time_range(times[0].isoformat(), bars.end.isoformat())
        lyra.set_interceptor(cassette.intercept)
    try:
        run = await walk(f"experiment:{name}", decide, bars, times,
                         equity=lyra.settings.risk.account_equity_usd, costs=options.costs, on_step=on_step,
                         risk=lyra.settings.risk,
                         day_start_s=session_start_s(lyra.settings))
    except CassetteMiss as exc:
        raise ReplayMismatch(str(exc)) from exc
    finally:
        if cassette is not None:
            lyra.set_interceptor(None)
    settle(bars.end)  # what the data's end lets be known
    return {
        "symbol": bars.symbol, "simulated": lyra.config.simulated,
        "window": {"start": times[0].isoformat(), "end": bars.end.isoformat(), "decisions": len(times),
                   "horizon": horizon},
        **experiment.report(),
        "trials": [t.to_dict() for t in experiment.trials.values()],
        "timeline": timeline,
        "ai_spend_nanos": sum(s.cost_nanos for s in run.steps),
        "fills": len(run.fills),
        "decisions": records,
    }


def _spacing(bars: Bars, times: list[pd.Timestamp]) -> int:
    """Bars between decisions: the default horizon, as the backtest's."""
    if len(times) < 2:
        return 1
    index = bars.frame.index
    return max(1, int(index.get_loc(times[1]) - index.get_loc(times[0])))


__all__ = ["experiment_named", "run_experiment"]
