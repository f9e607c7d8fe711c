"""Shadow traffic in `lyra live`: an experiment's arm asked beside the live decision, recorded, never traded.

After each live decision, every experiment in mode "shadow" draws the episode's arm (the symbol at
the decision's bar), asks the signal with that arm's prompt (and models) on the live decision's
own features, and appends the answer to the audit trail as an `experiment_shadow` record. The
answer never reaches the paper account. Outcomes are attached (as `experiment_outcome` records)
on a later tick of the symbol, once `horizon_bars` bars after the decision are known.

Budget priority: the shadow call is made only after the live decision has finished, in the same
tick, so it never competes with that decision for budget headroom or rate-limit tokens; and it is
not made at all when the live decision had a failed stage (a budget refusal, an outage), so a
tight budget goes to live decisions first. It is routed, budgeted, cached and recorded like any
call of its task.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from lyra.engine import Lyra
from lyra.log import get_logger
from lyra.trading.backtest import Costs
from lyra.trading.data import Bars
from lyra.trading.experiments import LIVE_HORIZON_BARS, SHADOW_KIND, Experiment, Trial, episode_id
from lyra.trading.pipeline import DecisionContext, TradeDecision, TradingAIOrchestrator
from lyra.trading.risk import AccountState

log = get_logger("lyra.ops.shadow")


@dataclass(slots=True)
class ShadowCounts:
    """What the shadow arms did this run: calls made, episodes skipped, outcomes attached."""

    calls: int = 0
    skipped: int = 0
    outcomes: int = 0
    cost_nanos: int = 0
    by_arm: dict[str, int] = field(default_factory=dict)


class ShadowExperiments:
    """The configuration's shadow experiments, run after each live decision on its own inputs."""

    def __init__(self, lyra: Lyra, orchestrator: TradingAIOrchestrator, *,
                 costs: Costs | None = None) -> None:
        self.lyra = lyra
        self.orchestrator = orchestrator
        self.round_trip = (costs or Costs()).round_trip
        self.experiments = {name: Experiment(name, s) for name, s in lyra.settings.experiments.items()
                            if s.mode == "shadow"}
        self.counts = ShadowCounts()

    def __bool__(self) -> bool:
        return bool(self.experiments)

    async def after_decision(self, symbol: str, bars: Bars, at: Any, decision: TradeDecision,
                             account: AccountState) -> None:
        """Attach the outcomes now known, then ask each shadow arm for this episode (unless it failed)."""
        when = pd.Timestamp(at)
        for experiment in self.experiments.values():
            self._settle(experiment, symbol, bars, when)
        if decision.errors:  # the live decision met a refusal or an outage: leave the budget to it
            self.counts.skipped += len(self.experiments)
            return
        for experiment in self.experiments.values():
            await self._ask(experiment, symbol, when, decision, account)

    async def _ask(self, experiment: Experiment, symbol: str, when: pd.Timestamp, decision: TradeDecision,
                   account: AccountState) -> None:
        episode = episode_id(symbol, when)
        if episode in experiment.trials:
            return  # this bar was decided before (a replay that wrapped): one shadow call per episode
        arm = experiment.choose(episode, when)
        variant = experiment.variant(arm, episode, shadow=True)
        context = DecisionContext(symbol=symbol, account=account, variant=variant)
        stage, signal = await self.orchestrator.generate_trading_signals(decision.features, (), context)
        action = signal.action if signal is not None else "HOLD"
        self.counts.calls += 1
        self.counts.cost_nanos += stage.cost_nanos
        self.counts.by_arm[arm.name] = self.counts.by_arm.get(arm.name, 0) + 1
        seq = None
        ledger = self.lyra.ledger
        if ledger is not None:
            payload = {"kind": SHADOW_KIND, "experiment": dict(variant.tag), "symbol": symbol,
                       "time": when.isoformat(), "price": decision.price, "action": action,
                       "signal": signal.to_dict() if signal is not None else None, "stage": stage.to_dict(),
                       "live": {"action": decision.action, "audit_seq": decision.audit_seq}}
            seq = ledger.audit.append(payload, symbol=symbol, cost_nanos=stage.cost_nanos).seq
        horizon = experiment.settings.horizon_bars or LIVE_HORIZON_BARS
        experiment.record(Trial(episode=episode, arm=arm.name, symbol=symbol, time=when.isoformat(),
                                action=action, decision_seq=seq, horizon=horizon))

    def _settle(self, experiment: Experiment, symbol: str, bars: Bars, when: pd.Timestamp) -> None:
        for trial in experiment.settle_on(bars.frame, until=when, round_trip=self.round_trip, symbol=symbol):
            self.counts.outcomes += 1
            if self.lyra.ledger is not None:
                self.lyra.ledger.audit.append(experiment.outcome_record(trial), symbol=symbol)

    def report(self) -> dict[str, Any]:
        """Each shadow experiment as `lyra experiment` shows it, with this run's counts."""
        c = self.counts
        return {"calls": c.calls, "skipped": c.skipped, "outcomes": c.outcomes, "cost_nanos": c.cost_nanos,
                "by_arm": dict(sorted(c.by_arm.items())),
                "experiments": [e.report() for e in self.experiments.values()]}


__all__ = ["ShadowCounts", "ShadowExperiments"]
