"""Prompt variants as experiments: one arm per episode, outcomes attached after the horizon, a verdict.

An episode is one decision cycle (a symbol at a bar). Its arm is drawn by a seeded hash of the
experiment's name and the episode id, among the arms the sequential test has not eliminated at
that time, so a replay draws the same arms. An outcome is attached once its horizon has passed,
with the time it became known; the verdict at time t reads only outcomes known at t
(walk-forward), so later outcomes never change an earlier verdict.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from lyra.config.experiments import ArmSettings, ExperimentSettings
from lyra.trading import prompts
from lyra.trading.sequential import StopRule, Verdict, verdict
from lyra.trading.variant import SignalPrompt, SignalVariant

ASSIGNMENT_FORMAT = "lyra-experiment/1"
OUTCOME_KIND = "experiment_outcome"  # an audit record that attaches an outcome to an earlier decision
SHADOW_KIND = "experiment_shadow"  # an audit record of a shadow arm's call (it never trades)
LIVE_HORIZON_BARS = 5

# The named variants of the built-in signal prompt: the same features and news, another instruction.
VARIANT_TASKS = {
    "builtin": prompts.SIGNAL_TASK,
    "brief": "Trading signal for the next bars: answer from the features alone, as briefly as you can.",
    "risk_first": ("First weigh the downside (volatility, drawdown, stretched momentum), then decide a "
                   "trading signal for the next bars from these features; prefer HOLD when unsure."),
    "trend_follow": ("Decide a trading signal for the next bars from these features, following the "
                     "prevailing trend unless momentum clearly reverses."),
}


def assign(experiment: str, episode: str, arms: Sequence[str], *, seed: str = "") -> str:
    """The arm of one episode: a seeded hash of the experiment and the episode, over `arms` in order."""
    if not arms:
        raise ValueError("no arm to assign")
    digest = hashlib.sha256(f"{ASSIGNMENT_FORMAT}\n{seed}\n{experiment}\n{episode}".encode()).digest()
    return arms[int.from_bytes(digest[:8], "big") % len(arms)]


def episode_id(symbol: str, at: Any) -> str:
    """One decision cycle's id: the symbol and the bar it decides on (UTC, ISO 8601)."""
    return f"{symbol}@{pd.Timestamp(at).isoformat()}"


def arm_prompt(arm: ArmSettings) -> SignalPrompt:
    """The arm's signal prompt: its template filled in, or its named variant of the built-in one."""
    template = arm.template
    if template is None:
        text = VARIANT_TASKS[arm.prompt]
        if arm.prompt == "builtin":
            return prompts.signal
        return lambda features, news: prompts.signal_with(text, features, news)

    def filled(features: Mapping[str, Any], news: Sequence[str]) -> prompts.Messages:
        shown = prompts.data_block("news headlines", news) if news else "(no news)"
        return prompts.templated(template.format(features=prompts.features_block(features), news=shown))

    return filled


@dataclass(slots=True, kw_only=True)
class Trial:
    """One episode: the arm it ran, what it decided and, once the horizon passed, its outcome."""

    episode: str
    arm: str
    symbol: str
    time: str  # the bar decided on
    action: str
    decision_seq: int | None = None  # its record in the audit trail
    horizon: int = LIVE_HORIZON_BARS
    outcome: float | None = None  # hit (1/0) or realised return; None: no sample (HOLD under hit_rate)
    known_at: str | None = None  # when the outcome became known: the close `horizon` bars after
    settled: bool = False
    known_ts: pd.Timestamp | None = field(default=None, repr=False, compare=False)  # known_at, parsed once

    def to_dict(self) -> dict[str, Any]:
        return {"episode": self.episode, "arm": self.arm, "symbol": self.symbol, "time": self.time,
                "action": self.action, "horizon": self.horizon, "settled": self.settled,
                "outcome": None if self.outcome is None else round(self.outcome, 8),
                "known_at": self.known_at}


def outcome_of(action: str, move: float, *, metric: str, round_trip: float) -> float | None:
    """The decision's measure over its horizon: a hit (1 or 0) or its return after costs."""
    direction = {"BUY": 1, "SELL": -1}.get(action)
    if metric == "hit_rate":
        return None if direction is None else float(direction * move > 0)
    return 0.0 if direction is None else direction * move - round_trip


@dataclass(slots=True)
class Experiment:
    """An experiment as it runs: its arms, every trial so far, and the test that reads their outcomes."""

    name: str
    settings: ExperimentSettings
    trials: dict[str, Trial] = field(default_factory=dict)  # by episode, in the order asked

    @property
    def rule(self) -> StopRule:
        s = self.settings
        return StopRule(delta=s.delta, min_samples=s.min_samples, indifference=s.indifference)

    @property
    def arm_names(self) -> list[str]:
        return [a.name for a in self.settings.arms]

    def arm(self, name: str) -> ArmSettings:
        return next(a for a in self.settings.arms if a.name == name)

    def reward(self, outcome: float) -> float:
        """An outcome as the test's reward in [0, 1] (a return is clipped to +-return_bound first)."""
        if self.settings.metric == "hit_rate":
            return outcome
        bound = self.settings.return_bound
        return (min(bound, max(-bound, outcome)) + bound) / (2 * bound)

    def verdict_at(self, at: str | None = None) -> Verdict:
        """The verdict on the outcomes known at `at` (ISO 8601; None: every outcome attached)."""
        samples: dict[str, list[float]] = {a: [] for a in self.arm_names}
        cut = None if at is None else pd.Timestamp(at)
        for trial in self.trials.values():
            if (trial.settled and trial.outcome is not None and trial.known_ts is not None
                    and (cut is None or trial.known_ts <= cut)):
                samples[trial.arm].append(self.reward(trial.outcome))
        return verdict(samples, self.rule)

    def choose(self, episode: str, at: Any) -> ArmSettings:
        """The episode's arm, among the arms still in the test at `at` (successive elimination)."""
        known = self.trials.get(episode)
        if known is not None:
            return self.arm(known.arm)
        active = self.verdict_at(pd.Timestamp(at).isoformat()).active
        return self.arm(assign(self.name, episode, active or self.arm_names, seed=self.settings.seed))

    def variant(self, arm: ArmSettings, episode: str, *, shadow: bool = False) -> SignalVariant:
        """What the episode asks with, tagged for the decision record (the audit trail)."""
        tag = {"experiment": self.name, "arm": arm.name, "variant": arm.variant, "episode": episode,
               "mode": "shadow" if shadow else "offline"}
        return SignalVariant(signal=arm_prompt(arm), models=tuple(arm.models), tag=tag)

    def record(self, trial: Trial) -> None:
        self.trials[trial.episode] = trial

    def settle_on(self, frame: pd.DataFrame, *, until: pd.Timestamp, round_trip: float,
                  symbol: str | None = None) -> list[Trial]:
        """Attach the outcome of every open trial (of `symbol`, if given) whose horizon closed by `until`."""
        index = {t: i for i, t in enumerate(frame.index)}
        done = []
        for trial in self.trials.values():
            i = index.get(pd.Timestamp(trial.time))
            other = symbol is not None and trial.symbol != symbol
            if trial.settled or other or i is None or i + trial.horizon >= len(frame):
                continue
            closed = frame.index[i + trial.horizon]
            if closed > until:
                continue
            move = float(frame["close"].iloc[i + trial.horizon] / frame["open"].iloc[i + 1] - 1)
            trial.outcome = outcome_of(trial.action, move, metric=self.settings.metric, round_trip=round_trip)
            trial.known_at, trial.known_ts, trial.settled = closed.isoformat(), closed, True
            done.append(trial)
        return done

    def outcome_record(self, trial: Trial) -> dict[str, Any]:
        """The audit record that attaches a trial's outcome to its decision."""
        return {"kind": OUTCOME_KIND, "experiment": self.name, "arm": trial.arm, "episode": trial.episode,
                "decision_seq": trial.decision_seq, "metric": self.settings.metric,
                **{k: v for k, v in trial.to_dict().items()
                   if k in ("outcome", "known_at", "action", "time")},
                "reward": None if trial.outcome is None else round(self.reward(trial.outcome), 8)}

    def report(self, at: str | None = None) -> dict[str, Any]:
        """Arms, samples, outcomes and the verdict, as `lyra experiment` shows them."""
        found = self.verdict_at(at)
        by_arm = {s.name: s for s in found.arms}
        arms = []
        for arm in self.settings.arms:
            mine = [t for t in self.trials.values() if t.arm == arm.name]
            arms.append({"arm": arm.name, "variant": arm.variant, "models": list(arm.models),
                         "episodes": len(mine), "pending": sum(not t.settled for t in mine),
                         "outcomes": sum(t.settled and t.outcome is not None for t in mine),
                         **{k: v for k, v in by_arm[arm.name].to_dict().items() if k != "arm"}})
        return {"experiment": self.name, "task": self.settings.task, "metric": self.settings.metric,
                "mode": self.settings.mode, "delta": self.settings.delta,
                "min_samples": self.settings.min_samples, "arms": arms, "verdict": found.to_dict()}


def from_audit(name: str, settings: ExperimentSettings, payloads: Sequence[tuple[int, Mapping[str, Any]]]
               ) -> Experiment:
    """The experiment rebuilt from audit records (seq, payload), oldest first: its trials and outcomes.

    An episode recorded twice (a backtest run again on the same ledger) counts once: the last.
    """
    found = Experiment(name, settings)
    for seq, payload in payloads:
        tag = payload.get("experiment")
        if payload.get("kind") == OUTCOME_KIND and tag == name:
            trial = found.trials.get(str(payload.get("episode")))
            known = _timestamp(payload.get("known_at"))
            if trial is not None and known is not None:
                outcome = payload.get("outcome")
                trial.outcome = float(outcome) if isinstance(outcome, int | float) else None
                trial.known_at, trial.known_ts, trial.settled = known.isoformat(), known, True
            continue
        if not isinstance(tag, Mapping) or tag.get("experiment") != name:
            continue
        if str(tag.get("arm")) not in found.arm_names:
            continue  # an arm since removed from the configuration
        action = payload.get("action")
        found.record(Trial(episode=str(tag.get("episode")), arm=str(tag.get("arm")),
                           symbol=str(payload.get("symbol")), time=str(payload.get("time")),
                           action=str(action), decision_seq=seq))
    return found


def _timestamp(value: Any) -> pd.Timestamp | None:
    """A recorded time, or None when the record does not hold one (it is then not counted)."""
    if not isinstance(value, str):
        return None
    try:
        found = pd.Timestamp(value)
    except ValueError:
        return None
    return None if pd.isna(found) else found


__all__ = ["OUTCOME_KIND", "SHADOW_KIND", "VARIANT_TASKS", "Experiment", "Trial", "arm_prompt", "assign",
           "episode_id", "from_audit", "outcome_of"]
