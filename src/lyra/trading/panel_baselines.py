"""Baselines beside the panel from the panel study's votes: each one's decisions and exact cost, walk-forward.

At decision i (bar b) every learnt quantity uses only outcomes whose horizon had closed by b
(a vote at bar j is scored at bar j + horizon <= b): each model's calibrator, its hit rate (which
picks the best single model), the panels' error correlations (their effective number of voters)
and the cascade's calibration. Agreement is with full_panel. The baselines:

- full_panel: the full panel's configured rule on all its members (what "the full panel on every
  decision" means), at all its members' costs;
- best_single: the one full-panel member with the best hit rate so far, at its own cost;
- self_consistency: one model asked k times, the plurality of its answers (a tie holds);
- calibrated_panel: the full panel's calibrated vote (weighted log-odds, scaled to its
  effective number of voters), BUY or SELL beyond the margin;
- full_cheapest_first: the full panel asked one member at a time, cheapest first, until its
  outcome cannot change (`settled`): the full panel's decisions exactly, without the members
  whose answers could not have changed them (it trades latency for cost);
- cascade: the tuned cascade, exactly as a panel with `cascade = "tuned"` runs it
  (lyra.consensus.cascade): the cheap panel's calibrated stop, else the full panel's members one
  at a time in order of value with the sequential stop;
- cascade_cheap_stop: the cheap panel's stop alone. Its lean (the weighted mean of its stated
  probabilities of a rise) is calibrated against the full panel's decisions on the cascade's
  record (isotonic, the lower end of a Wilson interval per block): it stops when the full panel's
  most likely decision is at least `min_stop_probability` likely and the expected disagreements
  so far stay within 1 - `target_agreement` of the decisions so far; else it escalates to the full
  panel asked cheapest first until settled. The record is what the cascade itself saw: every
  decision until it holds `min_record`, then its escalations and every `audit_every`-th stop;
- cascade_configured: the configured escalation (the cheap panel's own rule, escalating when it
  is unsure or split), for comparison.
"""

from __future__ import annotations

import collections
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from lyra.config import PanelSettings, Settings
from lyra.config.calibration import CalibrationSettings
from lyra.consensus.aggregation import RULES, Ballot, settled
from lyra.consensus.calibration import (
    WalkForward,
    action_of,
    brier,
    calibrated_vote,
    ece,
    effective_voters,
    error_agreement,
    error_correlation,
    pav,
    reliability,
    wilson_lower,
)
from lyra.consensus.cascade import SequentialRecord, Walk, lean_of
from lyra.consensus.decision import ACTIONS, Action
from lyra.trading.backtest import Step, forward_move
from lyra.trading.data import Bars
from lyra.trading.panel_study import StudyPoint, StudyVote

STRATEGIES = ("full_panel", "full_cheapest_first", "best_single", "self_consistency", "calibrated_panel",
              "cascade", "cascade_cheap_stop", "cascade_configured")
LABELS = {
    "full_panel": "full panel, configured weights (every decision)",
    "full_cheapest_first": "full panel, cheapest member first until settled",
    "best_single": "best single model (walk-forward)",
    "self_consistency": "one model sampled k times",
    "calibrated_panel": "full panel, calibrated vote",
    "cascade": "cost-tuned cascade (calibrated)",
    "cascade_cheap_stop": "cheap-panel stop only, escalation cheapest first",
    "cascade_configured": "configured escalation cascade",
}


@dataclass(slots=True)
class Choices:
    """One baseline's action and cost at each decision."""

    actions: list[str] = field(default_factory=list)
    costs: list[int] = field(default_factory=list)
    escalated: int = 0
    audited: int = 0  # decisions the full panel was asked on only to keep the cascade's record honest


@dataclass(slots=True)
class StudyResult:
    """Every baseline's decisions, and the calibration and diversity figures behind them."""

    choices: dict[str, Choices]
    # The cascade's calibrated probability of its call at each decision; None: no record yet.
    thresholds: list[float | None]
    calibration: list[dict[str, Any]]
    diversity: dict[str, Any]
    sampled_model: str
    samples: int


def p_up(vote: StudyVote) -> float | None:
    """A vote read as a probability that the price rises: BUY conf, SELL 1 - conf, HOLD 0.5; None: no vote."""
    if vote.action is None:
        return None
    c = min(1.0, max(0.0, vote.confidence))
    return {"BUY": c, "SELL": 1.0 - c}.get(vote.action, 0.5)


def truth(move: float, band: float) -> str:
    """What would have been right: BUY above the round-trip cost, SELL below minus it, else HOLD."""
    return "BUY" if move > band else "SELL" if move < -band else "HOLD"


@dataclass(slots=True)
class _Record:
    """What is known at a decision bar: closed outcomes per model and the cascade's record."""

    calibration: CalibrationSettings
    horizon: int
    calibrators: dict[str, WalkForward] = field(default_factory=dict)
    closed: list[tuple[int, dict[str, str | None], str, float]] = field(default_factory=list)
    cascade: list[tuple[float, str]] = field(default_factory=list)  # (cheap lean, full panel's action)

    costs: dict[str, tuple[int, int]] = field(default_factory=dict)  # model -> (total nanos, answers)

    def note_costs(self, votes: Sequence[StudyVote]) -> None:
        for v in votes:
            total, n = self.costs.get(v.model, (0, 0))
            self.costs[v.model] = (total + v.cost_nanos, n + 1)

    def mean_costs(self) -> dict[str, float]:
        return {m: total / n for m, (total, n) in self.costs.items() if n}

    def calibrator(self, model: str) -> WalkForward:
        return self.calibrators.setdefault(model, WalkForward(self.calibration.method,
                                                              self.calibration.min_samples))


def evaluate(points: Sequence[StudyPoint], bars: Bars, horizon: int, settings: Settings, *,
             cheap_panel: str, full_panel: str, band: float, sampled_model: str) -> StudyResult:
    """Every baseline's action and cost at each study point, walk-forward."""
    calib = settings.calibration
    cheap_cfg, full_cfg = settings.panels[cheap_panel], settings.panels[full_panel]
    frame = bars.frame
    record = _Record(calib, horizon)
    outcomes: list[tuple[float, str] | None] = []
    for p in points:
        move = forward_move(frame, p.bar, horizon)
        outcomes.append(None if move is None else (1.0 if move > 0 else 0.0, truth(move, band)))
    choices = {name: Choices() for name in STRATEGIES}
    thresholds: list[float | None] = []
    calibrated: dict[str, list[tuple[float, float, float]]] = collections.defaultdict(list)
    filed = stops = 0
    expected_misses = 0.0
    tuned = SequentialRecord()
    for i, point in enumerate(points):
        # File the outcomes whose horizon has closed by this bar: nothing later is ever read.
        while filed < i and points[filed].bar + max(1, horizon) <= point.bar:
            _file(record, points[filed], outcomes[filed])
            filed += 1
        fitted = {m: record.calibrator(m).at(point.bar) for m in _models(point)}
        probs = {id(v): fitted[v.model](q) for v in (*point.cheap, *point.full)
                 if (q := p_up(v)) is not None}
        for v in (*point.cheap, *point.full):
            q = p_up(v)
            if q is not None and outcomes[i] is not None:
                calibrated[v.model].append((q, probs[id(v)], outcomes[i][0]))  # type: ignore[index]
        n_full = _n_eff(record, [m.model for m in full_cfg.members])
        full_configured = _configured(full_cfg, point.full)
        full_cal = action_of(_vote(point.full, probs, n_full), calib.margin)
        cheap_cost, full_cost = _cost(point.cheap), _cost(point.full)
        settled_cost = cheapest_first_cost(full_cfg, point.full, record.mean_costs())
        record.note_costs(point.full)
        _add(choices["full_cheapest_first"], full_configured, settled_cost)
        _add(choices["full_panel"], full_configured, full_cost)
        _add(choices["calibrated_panel"], full_cal, full_cost)
        best = _best_single(record, full_cfg)
        vote = next(v for v in point.full if v.model == best)
        _add(choices["best_single"], vote.action or "HOLD", vote.cost_nanos)
        _add(choices["self_consistency"], _plurality(point.samples), _cost(point.samples))
        # The tuned cascade: the cheap panel's stop, else the full panel asked in order of value with
        # the sequential stop (lyra.consensus.cascade), exactly as the engine runs `cascade = "tuned"`.
        answers = {v.model: (Ballot(v.weight, _action(v.action), v.confidence), v.cost_nanos)
                   for v in point.full}
        run = Walk(full_cfg, tuned, calib, lean_of([Ballot(v.weight, _action(v.action), v.confidence)
                                                     for v in point.cheap]))
        while (model := run.next()) is not None:
            run.answer(model, *answers[model])
        audited = bool(run.stop is not None and run.stop.audit)
        _add(choices["cascade"], run.finish(), cheap_cost + sum(run.costs.values()))
        choices["cascade"].audited += audited
        choices["cascade"].escalated += not run.at_cheap
        expected_misses, stops = _cheap_stop_only(choices["cascade_cheap_stop"], record, point, calib, i,
                                                  full_configured, (cheap_cost, settled_cost),
                                                  (expected_misses, stops), thresholds)
        kept = _configured_clear(cheap_cfg, full_cfg, point.cheap)
        if kept is not None:
            _add(choices["cascade_configured"], kept, cheap_cost)
        else:
            _add(choices["cascade_configured"], full_configured, cheap_cost + full_cost)
            choices["cascade_configured"].escalated += 1
    while filed < len(points):  # for the report only: every outcome known by the data's end
        _file(record, points[filed], outcomes[filed])
        filed += 1
    return StudyResult(choices=choices, thresholds=thresholds,
                       calibration=_calibration_rows(points, outcomes, calibrated, calib),
                       diversity=_diversity(points, outcomes, cheap_cfg, full_cfg),
                       sampled_model=sampled_model, samples=len(points[0].samples) if points else 0)


def _cheap_stop_only(choices: Choices, record: _Record, point: StudyPoint, calib: CalibrationSettings,
                     i: int, full_configured: str, costs: tuple[int, int], spent: tuple[float, int],
                     thresholds: list[float | None]) -> tuple[float, int]:
    """The cascade before the sequential stop: the cheap panel's stop, else the full panel until settled.

    Its record is (lean, full panel's decision) on every decision until `min_record`, then on its
    escalations and audits; returns the expected disagreements and stops so far.
    """
    cheap_cost, settled_cost = costs
    expected_misses, stops = spent
    lean = cheap_evidence(point.cheap)
    call = cascade_call(record.cascade, lean, calib)
    thresholds.append(None if call is None else call[1])
    # Stop where the call is likely enough and the expected disagreements so far, this one
    # included, stay within what the target allows over the decisions so far.
    risk = 1.0 - call[1] if call is not None else 1.0
    if (call is not None and lean is not None and call[1] >= calib.min_stop_probability
            and expected_misses + risk <= (1.0 - calib.target_agreement) * (i + 1)):
        expected_misses += risk
        stops += 1
        if calib.audit_every and stops % calib.audit_every == 0:
            # An audit: the full panel is asked (and paid) but the cheap call stands, so that the
            # record keeps measuring the calls the cascade stops on, not only those it escalates.
            _add(choices, call[0], cheap_cost + settled_cost)
            record.cascade.append((lean, full_configured))
            choices.audited += 1
        else:
            _add(choices, call[0], cheap_cost)
    else:
        _add(choices, full_configured, cheap_cost + settled_cost)
        choices.escalated += 1
        if lean is not None:
            record.cascade.append((lean, full_configured))
    return expected_misses, stops


def _models(point: StudyPoint) -> set[str]:
    return {v.model for v in (*point.cheap, *point.full)}


def _file(record: _Record, point: StudyPoint, outcome: tuple[float, str] | None) -> None:
    if outcome is None:
        return
    up, right = outcome
    answers: dict[str, str | None] = {}
    for v in (*point.cheap, *point.full):
        q = p_up(v)
        if q is not None:
            record.calibrator(v.model).observe(q, up, closes_at=point.bar + max(1, record.horizon))
        answers[v.model] = v.action
    record.closed.append((point.bar, answers, right, up))


def _add(choices: Choices, action: str, cost: int) -> None:
    choices.actions.append(action)
    choices.costs.append(cost)


def _cost(votes: Sequence[StudyVote]) -> int:
    return sum(v.cost_nanos for v in votes)


def _vote(votes: Sequence[StudyVote], probs: dict[int, float], n_eff: float) -> float:
    voted = [v for v in votes if id(v) in probs]
    scale = n_eff * len(voted) / len(votes) if votes else 0.0  # missing voters carry no weight
    return calibrated_vote([probs[id(v)] for v in voted], [v.weight for v in voted], n_eff=scale)


def _outcome(cfg: PanelSettings, votes: Sequence[StudyVote]) -> Any:
    ballots = [Ballot(v.weight, _action(v.action), v.confidence) for v in votes]
    return RULES[cfg.rule].decide(ballots, threshold=cfg.threshold, quorum=cfg.quorum)


def _action(action: str | None) -> Action | None:
    return next((a for a in ACTIONS if a == action), None)


def _configured(cfg: PanelSettings, votes: Sequence[StudyVote]) -> str:
    """The panel's configured rule on the votes."""
    return str(_outcome(cfg, votes).action)


def _configured_clear(cheap: PanelSettings, target: PanelSettings, votes: Sequence[StudyVote]
                      ) -> str | None:
    """The cheap panel's action when the configured cascade keeps it (as `ConsensusEngine._clear`)."""
    outcome = _outcome(cheap, votes)
    decisive = max(outcome.supports.values(), default=0.0) >= cheap.threshold
    if outcome.quorum_met and decisive and outcome.agreement >= target.escalate_below_agreement:
        return str(outcome.action)
    return None


def cheapest_first_cost(cfg: PanelSettings, votes: Sequence[StudyVote], expected: dict[str, float]) -> int:
    """What the panel costs asked one member at a time, cheapest first, until its outcome cannot change.

    "Cheapest" is each member's mean cost on the decisions before (`expected`; what this one will
    cost is not known before it answers); a member without history goes first, lightest first.
    The outcome is the panel's configured one by construction (`settled` only stops when every
    answer still to come would leave it as it is); what it saves is the members never asked.
    """
    order = sorted(votes, key=lambda v: (expected.get(v.model, -1.0), v.weight, v.model))
    rule, spent, done = RULES[cfg.rule], 0, []
    for k, vote in enumerate(order):
        spent += vote.cost_nanos
        done.append(Ballot(vote.weight, _action(vote.action), vote.confidence))
        pending = [v.weight for v in order[k + 1:]]
        if settled(rule, done, pending, threshold=cfg.threshold, quorum=cfg.quorum) is not None:
            break
    return spent


def _plurality(votes: Sequence[StudyVote]) -> str:
    counts = collections.Counter(v.action for v in votes if v.action is not None).most_common()
    if not counts or (len(counts) > 1 and counts[0][1] == counts[1][1]):
        return "HOLD"
    return str(counts[0][0])


def _best_single(record: _Record, full: PanelSettings) -> str:
    """The full-panel member with the best hit rate on closed outcomes (min_samples calls), else heaviest."""
    heaviest = max(full.members, key=lambda m: m.weight).model
    best, rate = heaviest, -1.0
    for member in full.members:
        calls = [(a, right) for _, answers, right, _ in record.closed
                 if (a := answers.get(member.model)) in ("BUY", "SELL")]
        if len(calls) < record.calibration.min_samples:
            continue
        hit = sum(1 for a, right in calls if a == right) / len(calls)
        if hit > rate:
            best, rate = member.model, hit
    return best if rate >= 0 else heaviest


def _errors(record_closed: Sequence[tuple[int, dict[str, str | None], str, float]], a: str, b: str
            ) -> tuple[list[float], list[float]]:
    pairs = [(ans[a], ans[b], right) for _, ans, right, _ in record_closed
             if ans.get(a) is not None and ans.get(b) is not None]
    return [float(x != r) for x, _, r in pairs], [float(y != r) for _, y, r in pairs]


def _mean_correlation(closed: Sequence[tuple[int, dict[str, str | None], str, float]], models: list[str]
                      ) -> float | None:
    values = [c for a, b in itertools.combinations(models, 2)
              if (c := error_correlation(*_errors(closed, a, b))) is not None]
    return sum(values) / len(values) if values else None


def _n_eff(record: _Record, models: list[str]) -> float:
    if len(record.closed) < record.calibration.min_samples:
        return float(len(models))
    return effective_voters(len(models), _mean_correlation(record.closed, models))


def cheap_evidence(votes: Sequence[StudyVote]) -> float | None:
    """The cheap panel's lean: its weighted mean stated probability of a rise, less 0.5 (None: no vote)."""
    voted = [(v.weight, q) for v in votes if (q := p_up(v)) is not None]
    total = sum(w for w, _ in voted)
    return sum(w * (q - 0.5) for w, q in voted) / total if voted and total > 0 else None


def cascade_call(record: Sequence[tuple[float, str]], lean: float | None, calib: CalibrationSettings
                 ) -> tuple[str, float] | None:
    """The full panel's most likely decision given the cheap panel's lean, and its calibrated probability.

    Calibrated on the cascade's record of (lean, full panel's decision): P(BUY) rises with the lean,
    P(SELL) falls with it, P(HOLD) falls with its size, each an isotonic fit. The probability is
    the lower end of the Wilson interval of the block the lean falls in, so that a block of a few
    lucky agreements is not taken for certainty. None while the record is shorter than min_record.
    """
    if lean is None or len(record) < calib.min_record:
        return None
    leans = [x for x, _ in record]
    fits = {"BUY": (pav(leans, [float(a == "BUY") for _, a in record]), lean),
            "SELL": (pav([-x for x in leans], [float(a == "SELL") for _, a in record]), -lean),
            "HOLD": (pav([-abs(x) for x in leans], [float(a == "HOLD") for _, a in record]), -abs(lean))}
    scored = []
    for action, (fit, x) in fits.items():
        share, n = fit.block(x)
        scored.append((wilson_lower(share * n, n), action))
    probability, action = max(scored)
    return action, probability


def _calibration_rows(points: Sequence[StudyPoint], outcomes: Sequence[tuple[float, str] | None],
                      calibrated: dict[str, list[tuple[float, float, float]]], calib: CalibrationSettings
                      ) -> list[dict[str, Any]]:
    """Per model: Brier, ECE, reliability of stated and walk-forward calibrated probabilities; hits, cost."""
    rows = []
    for model in sorted(calibrated):
        triples = calibrated[model]
        stated, cal, ys = [t[0] for t in triples], [t[1] for t in triples], [t[2] for t in triples]
        votes = [(v, o) for p, o in zip(points, outcomes, strict=True)
                 for v in (*p.cheap, *p.full) if v.model == model]
        cost = sum(v.cost_nanos for v, _ in votes)
        calls = [(v.action, o[1]) for v, o in votes if o is not None and v.action in ("BUY", "SELL")]
        correct = sum(1 for a, right in calls if a == right)
        rows.append({
            "model": model, "votes": len(votes), "scored": len(triples), "calls": len(calls),
            "correct": correct, "hit_rate": correct / len(calls) if calls else None,
            "brier_stated": brier(stated, ys), "brier_calibrated": brier(cal, ys),
            "ece_stated": ece(stated, ys, bins=calib.bins), "ece_calibrated": ece(cal, ys, bins=calib.bins),
            "reliability_stated": [b.to_dict() for b in reliability(stated, ys, bins=calib.bins)],
            "reliability_calibrated": [b.to_dict() for b in reliability(cal, ys, bins=calib.bins)],
            "cost_nanos": cost, "cost_per_correct_nanos": cost // correct if correct else None,
        })
    return rows


def _diversity(points: Sequence[StudyPoint], outcomes: Sequence[tuple[float, str] | None],
               cheap: PanelSettings, full: PanelSettings) -> dict[str, Any]:
    """Pairwise error agreement and correlation per panel, and its effective number of voters."""
    closed = [(p.bar, {v.model: v.action for v in (*p.cheap, *p.full)}, o[1], o[0])
              for p, o in zip(points, outcomes, strict=True) if o is not None]
    out: dict[str, Any] = {}
    for name, cfg in (("full", full), ("cheap", cheap)):
        models = [m.model for m in cfg.members]
        pairs: list[dict[str, Any]] = []
        for a, b in itertools.combinations(models, 2):
            both = [(ans.get(a), ans.get(b), right) for _, ans, right, _ in closed]
            agree, n = error_agreement([x for x, _, _ in both], [y for _, y, _ in both],
                                       [r for *_, r in both])
            pairs.append({"a": a, "b": b, "both_wrong": n, "error_agreement": agree,
                          "error_correlation": error_correlation(*_errors(closed, a, b))})
        rho = _mean_correlation(closed, models)
        agreements = [float(x) for p in pairs if isinstance(x := p["error_agreement"], float)]
        out[name] = {"members": len(models), "pairs": pairs, "mean_error_correlation": rho,
                     "mean_error_agreement": sum(agreements) / len(agreements) if agreements else None,
                     "effective_voters": effective_voters(len(models), rho)}
    return out


def same_share(a: Sequence[str], b: Sequence[str]) -> float | None:
    """The share of decisions on which two baselines decided the same."""
    return sum(1 for x, y in zip(a, b, strict=True) if x == y) / len(a) if a else None




def choice_decider(times: Sequence[pd.Timestamp], actions: Sequence[str], notional: float) -> Any:
    """A baseline's recorded actions as a strategy for the walk: the same fills, fees and size for each."""
    by_time = dict(zip(times, actions, strict=True))

    async def decide(known: Bars, t: pd.Timestamp, account: Any) -> Step:
        return Step(time=t, action=_action(by_time[t]) or "HOLD", notional_usd=notional)

    return decide


__all__ = [
    "LABELS",
    "STRATEGIES",
    "Choices",
    "StudyResult",
    "cascade_call",
    "cheap_evidence",
    "choice_decider",
    "evaluate",
    "p_up",
    "same_share",
    "truth",
]
