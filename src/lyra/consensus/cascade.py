"""The tuned cascade's sequential stop: ask a panel's members one at a time, stop when the rest hardly matter.

A panel asked one member at a time can stop once its outcome cannot change (`settled`), but on a
panel whose members mostly agree that is late: the last members rarely change anything, yet they
can, so `settled` waits for them. The tuned cascade stops earlier, when the walk-forward estimated
probability that the members not yet asked would change the outcome is small:

- its record holds the complete answer sets of the panel seen before (every escalated decision
  until it holds `min_sets`, then every `audit_every`-th stop by risk, asked in full and paid for,
  so that the record goes on measuring the stops);
- the risk of stopping, by default "predicted": each member not yet asked is predicted from its
  guide, the asked member whose answer agreed with its own most often on the record (what it said
  when the guide said what the guide says now, add-one smoothed); every mix of their answers is
  weighed, and the risk is the weight of the mixes that decide otherwise than the likeliest. Or
  "matched": the record's sets that agree with the answers so far complete them (the correlation
  between the members not asked is kept, but far more sets are needed), the risk being the upper
  end of a Wilson interval (z = 1) of the share that decides otherwise. With fewer than
  `min_matches` sets behind an estimate it does not stop;
- it stops when that risk, times what the audits found of such stops ((misses + 1) / (estimated
  + 1), at least 1), is at most 1 - `min_stop_probability` and the expected disagreements so far,
  this one included, stay within 1 - `target_agreement` of the decisions so far: the budget the
  cheap-panel stop spends too (its audits ask until the panel's outcome is settled);
- the members are asked in order of value: each member's mean cost on earlier decisions divided by
  how often, on the record, its answer decided the outcome (another answer of its would have
  changed it). A member without history goes first, lightest weight first.

Everything here is pure and deterministic: the engine and the backtest study feed it the same way.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from lyra.config import PanelSettings
from lyra.config.calibration import CalibrationSettings
from lyra.consensus.aggregation import RULES, Ballot, settled
from lyra.consensus.calibration import pav, wilson_lower

Answers = Mapping[str, Ballot]  # model -> its ballot


def wilson_upper(hits: float, n: int, z: float = 1.0) -> float:
    """The upper end of the Wilson interval of a share."""
    return 1.0 - wilson_lower(n - hits, n, z)


@dataclass(frozen=True, slots=True)
class Risk:
    """What stopping now would decide, how likely the members not asked would change it, on how many sets."""

    action: str
    share: float  # point estimate of the probability of a change
    upper: float  # its Wilson upper end
    matches: int


@dataclass(slots=True)
class SequentialRecord:
    """What the tuned cascade has seen of one panel, in the order it saw it (walk-forward by construction)."""

    sets: list[dict[str, Ballot]] = field(default_factory=list)  # complete answer sets
    costs: dict[str, tuple[int, int]] = field(default_factory=dict)  # model -> (total nanos, answers)
    leans: list[tuple[float, str]] = field(default_factory=list)  # (cheap panel's lean, panel's decision)
    decisions: int = 0
    expected_misses: float = 0.0
    stops: int = 0  # early stops so far (every audit_every-th is audited)
    # Per kind of stop ("cheap", "sequential"): the risk its audited stops were taken at, summed,
    # and how many of them the complete panel decided otherwise.
    audits: dict[str, tuple[float, int]] = field(default_factory=dict)

    def correction(self, kind: str) -> float:
        """How much more often than estimated this kind of stop was wrong when audited (at least 1).

        (misses + 1) / (estimated + 1): one in-sample miss against a small estimated risk lifts every
        later risk of that kind, so a stop whose calibration the audits refute soon stops stopping.
        """
        estimated, misses = self.audits.get(kind, (0.0, 0))
        return max(1.0, (misses + 1) / (estimated + 1))

    def note_cost(self, model: str, nanos: int) -> None:
        total, n = self.costs.get(model, (0, 0))
        self.costs[model] = (total + nanos, n + 1)

    def mean_cost(self, model: str) -> float | None:
        total, n = self.costs.get(model, (0, 0))
        return total / n if n else None


def decide_all(cfg: PanelSettings, answers: Answers) -> str:
    """The panel's configured rule on a complete answer set (members missing from it: no vote)."""
    ballots = [answers.get(m.model, Ballot(m.weight)) for m in cfg.members]
    return str(RULES[cfg.rule].decide(ballots, threshold=cfg.threshold, quorum=cfg.quorum).action)


def order(cfg: PanelSettings, record: SequentialRecord) -> list[str]:
    """The members in the order they are asked: best value first, mean cost per decisive answer.

    A member's answer is decisive on a recorded set when another answer of its own would have
    changed the set's outcome; the share is smoothed ((d + 1) / (n + 2)). Its cost is its mean cost
    so far; members without a cost yet come first, lightest weight first.
    """
    def key(model: str, weight: float) -> tuple[int, float, float, str]:
        cost = record.mean_cost(model)
        if cost is None:
            return (0, weight, 0.0, model)
        n = sum(1 for s in record.sets if model in s)
        informative = sum(1 for s in record.sets if model in s and _pivotal(cfg, s, model))
        return (1, cost / ((informative + 1) / (n + 2)), weight, model)

    return [m.model for m in sorted(cfg.members, key=lambda m: key(m.model, m.weight))]


def _pivotal(cfg: PanelSettings, answers: Answers, model: str) -> bool:
    """True when some other answer of this member would have changed the set's outcome."""
    base = decide_all(cfg, answers)
    own = answers[model]
    for action in ("BUY", "SELL", "HOLD", None):
        if action == own.action:
            continue
        other = dict(answers)
        other[model] = Ballot(own.weight, action, own.confidence)
        if decide_all(cfg, other) != base:
            return True
    return False


def risk(cfg: PanelSettings, asked: Answers, record: SequentialRecord, calib: CalibrationSettings
         ) -> Risk | None:
    """The risk of stopping with `asked` answered: the record's matching sets complete the rest.

    None while no stop can be judged (too few matching sets).
    """
    def same(s: Answers) -> bool:
        return all(s[m].action == b.action for m, b in asked.items() if m in s) and all(m in s for m in asked)

    matching = [s for s in record.sets if same(s)]
    if len(matching) < calib.min_matches:
        return None
    outcomes = Counter(decide_all(cfg, {**s, **asked}) for s in matching)
    action, agree = max(outcomes.items(), key=lambda kv: (kv[1], kv[0] == "HOLD", kv[0]))
    changes = len(matching) - agree
    return Risk(action, changes / len(matching), wilson_upper(changes, len(matching)), len(matching))


def predicted_risk(cfg: PanelSettings, asked: Answers, record: SequentialRecord, calib: CalibrationSettings
                   ) -> Risk | None:
    """The risk of stopping with `asked` answered, each member not asked predicted from its best asked guide.

    For a member not yet asked, its guide is the asked member whose answer agreed with its own most
    often on the record; its answer is then drawn from what it answered on the record when the
    guide answered as it did now (add-one smoothed over BUY, SELL, HOLD). The members not asked are
    taken as independent given their guides; every mix of their answers is weighed by its
    probability, and the risk is the weight of the mixes that decide otherwise than the likeliest.
    """
    if not asked or len(record.sets) < calib.min_sets:
        return None
    weights = {m.model: m.weight for m in cfg.members}
    pending = [m.model for m in cfg.members if m.model not in asked]
    options: list[list[tuple[Ballot, float]]] = []
    matched = len(record.sets)
    for model in pending:
        best, rate = None, -1.0
        for guide in asked:
            both = [s for s in record.sets if model in s and guide in s]
            if both:
                agree = sum(1 for s in both if s[model].action == s[guide].action) / len(both)
                if agree > rate:
                    best, rate = guide, agree
        seen = [s[model] for s in record.sets if model in s
                and (best is None or (best in s and s[best].action == asked[best].action))]
        matched = min(matched, len(seen))
        counts = Counter(b.action for b in seen)
        total = len(seen) + 3
        confidence = {a: sum(b.confidence for b in seen if b.action == a) / max(1, counts[a])
                      for a in ("BUY", "SELL", "HOLD")}
        options.append([(Ballot(weights[model], a, confidence[a] or 0.5), (counts[a] + 1) / total)
                        for a in ("BUY", "SELL", "HOLD")])
    if matched < calib.min_matches:
        return None
    rule = RULES[cfg.rule]
    mass: dict[str, float] = {}
    done = list(asked.values())

    def walk(k: int, ballots: list[Ballot], p: float) -> None:
        if k == len(options):
            key = str(rule.decide(ballots, threshold=cfg.threshold, quorum=cfg.quorum).action)
            mass[key] = mass.get(key, 0.0) + p
            return
        for ballot, q in options[k]:
            walk(k + 1, [*ballots, ballot], p * q)

    walk(0, done, 1.0)
    action, agree_mass = max(mass.items(), key=lambda kv: (kv[1], kv[0] == "HOLD", kv[0]))
    change = max(0.0, 1.0 - agree_mass)
    return Risk(action, change, change, matched)


def may_stop(found: Risk | None, record: SequentialRecord, calib: CalibrationSettings) -> bool:
    """Stop when the risk is small and the disagreement budget so far allows it."""
    if found is None or len(record.sets) < calib.min_sets:
        return False
    allowance = (1.0 - calib.target_agreement) * (record.decisions + 1)
    spent = stop_risk(found, record)
    return spent <= 1.0 - calib.min_stop_probability and record.expected_misses + spent <= allowance


def stop_risk(found: Risk, record: SequentialRecord) -> float:
    """What a stop adds to the expected disagreements: the risk's upper end, times what the audits of
    such stops found (the predicted risk is smoothed already: every member's answers add-one)."""
    return found.upper * record.correction("sequential")


@dataclass(frozen=True, slots=True)
class Step:
    """What to do next: ask `model`, or stop with `action` (and, when `audit`, ask the rest anyway)."""

    model: str | None = None
    action: str | None = None
    why: str = ""
    risk: float = 0.0  # the expected disagreement this stop adds to the budget
    audit: bool = False
    kind: str = ""  # "cheap" or "sequential" for a stop by risk


def step(cfg: PanelSettings, asked: Answers, ordered: Sequence[str], record: SequentialRecord,
         calib: CalibrationSettings) -> Step:
    """The next member to ask, or the stop (exact when the rest cannot change it, else by risk)."""
    pending = [m for m in ordered if m not in asked]
    if not pending:
        return Step(action=decide_all(cfg, asked), why="every member asked")
    if len(record.sets) < calib.min_sets:
        return Step(model=pending[0])  # building the record: every member, so that the set is complete
    if asked:
        if (settled_action := exact(cfg, asked, pending)) is not None:
            return Step(action=settled_action, why="settled: no answer still to come can change it")
        found = (predicted_risk if calib.sequential == "predicted" else risk)(cfg, asked, record, calib)
        if found is not None and may_stop(found, record, calib):
            audit = bool(calib.audit_every) and (record.stops + 1) % calib.audit_every == 0
            return Step(action=found.action, risk=stop_risk(found, record),
                        audit=audit, kind="sequential",
                        why=f"the {len(pending)} members not asked change it with probability <= "
                            f"{found.upper:.3f} ({found.matches} matching sets on record)")
    return Step(model=pending[0])


def learn(record: SequentialRecord, answers: Answers, costs: Mapping[str, int], stop: Step, *,
          complete: bool, lean: float | None, decided: str, exact_outcome: bool) -> None:
    """File one decision: costs, a complete answer set, the cheap panel's lean against the outcome.

    `decided` is the panel's own outcome when `exact_outcome` (every member asked, or the rest could
    not change it), else the cascade's call.
    """
    for model, nanos in costs.items():
        record.note_cost(model, nanos)
    if complete:
        record.sets.append(dict(answers))
    if lean is not None and exact_outcome:
        record.leans.append((lean, decided))
    if stop.risk > 0:
        record.expected_misses += stop.risk
        record.stops += 1
    if stop.audit and exact_outcome and stop.kind:
        estimated, misses = record.audits.get(stop.kind, (0.0, 0))
        record.audits[stop.kind] = (estimated + stop.risk, misses + (decided != stop.action))
    record.decisions += 1


def cheap_call(record: SequentialRecord, lean: float | None, calib: CalibrationSettings
               ) -> tuple[str, float] | None:
    """The panel's most likely decision given the cheap panel's lean, and its calibrated probability.

    Calibrated on the record of (lean, panel's decision): P(BUY) rises with the lean, P(SELL) falls
    with it, P(HOLD) falls with its size, each an isotonic fit; the probability is the lower end of
    the Wilson interval of the block the lean falls in. None while the record is shorter than min_record.
    """
    if lean is None or len(record.leans) < calib.min_record:
        return None
    leans = [x for x, _ in record.leans]
    fits = {"BUY": (pav(leans, [float(a == "BUY") for _, a in record.leans]), lean),
            "SELL": (pav([-x for x in leans], [float(a == "SELL") for _, a in record.leans]), -lean),
            "HOLD": (pav([-abs(x) for x in leans], [float(a == "HOLD") for _, a in record.leans]),
                     -abs(lean))}
    scored = []
    for action, (fit, x) in fits.items():
        share, n = fit.block(x)
        scored.append((wilson_lower(share * n, n), action))
    probability, action = max(scored)
    return action, probability


def cheap_stop(record: SequentialRecord, lean: float | None, calib: CalibrationSettings) -> Step | None:
    """Stop at the cheap panel when its calibrated call is likely enough and the budget allows."""
    call = cheap_call(record, lean, calib)
    if call is None:
        return None
    action, probability = call
    risk_of = (1.0 - probability) * record.correction("cheap")
    allowance = (1.0 - calib.target_agreement) * (record.decisions + 1)
    if risk_of > 1.0 - calib.min_stop_probability or record.expected_misses + risk_of > allowance:
        return None
    audit = bool(calib.audit_every) and (record.stops + 1) % calib.audit_every == 0
    return Step(action=action, risk=risk_of, audit=audit, kind="cheap",
                why=f"the cheap panel's call is the full panel's with probability >= {probability:.3f}")


def lean_of(ballots: Sequence[Ballot]) -> float | None:
    """The cheap panel's lean: its weighted mean stated probability of a rise, less 0.5 (None: no vote)."""
    voted = [(b.weight, p_up(b)) for b in ballots if b.action is not None]
    total = sum(w for w, _ in voted)
    return sum(w * (q - 0.5) for w, q in voted) / total if voted and total > 0 else None


def p_up(ballot: Ballot) -> float:
    """A vote read as a probability that the price rises: BUY conf, SELL 1 - conf, HOLD 0.5."""
    c = min(1.0, max(0.0, ballot.confidence))
    return {"BUY": c, "SELL": 1.0 - c}.get(str(ballot.action), 0.5)


def exact(cfg: PanelSettings, asked: Answers, pending: Sequence[str]) -> str | None:
    """The outcome when no answer still pending can change it (the exact stop), else None."""
    weights = {m.model: m.weight for m in cfg.members}
    done = list(asked.values())
    out = settled(RULES[cfg.rule], done, [weights[m] for m in pending], threshold=cfg.threshold,
                  quorum=cfg.quorum)
    return None if out is None else str(out.action)


__all__ = ["Answers", "Risk", "SequentialRecord", "Step", "Walk", "cheap_call", "cheap_stop", "decide_all",
           "exact", "lean_of", "learn", "may_stop", "order", "p_up", "predicted_risk", "risk",
           "step", "wilson_upper"]


@dataclass(slots=True)
class Walk:
    """One decision through the tuned cascade: feed it answers while `next()` names a member.

    The cheap panel's lean is given first (None: no cheap panel or no vote); the cheap-panel stop is
    judged then, and the members are asked in `order` until a stop. An audited stop keeps its action
    but goes on asking every member, so that the record gains a complete set.
    """

    cfg: PanelSettings
    record: SequentialRecord
    calib: CalibrationSettings
    lean: float | None = None
    asked: dict[str, Ballot] = field(default_factory=dict)
    costs: dict[str, int] = field(default_factory=dict)
    ordered: list[str] = field(default_factory=list)
    stop: Step | None = None
    at_cheap: bool = False  # it stopped at the cheap panel
    outcome: str | None = None  # the panel's own outcome when the answers fix it (set by `finish`)

    def __post_init__(self) -> None:
        self.ordered = order(self.cfg, self.record)
        if self.lean is not None:
            self.stop = cheap_stop(self.record, self.lean, self.calib)
            self.at_cheap = self.stop is not None

    def next(self) -> str | None:
        """The member to ask next, or None when the decision is taken."""
        if self.stop is not None:
            if not self.stop.audit:
                return None
            pending = [m for m in self.ordered if m not in self.asked]
            # A cheap-panel stop is audited against the panel's decision (asked until it is settled);
            # a sequential one against the complete set, which its record is made of.
            if self.stop.kind == "cheap" and self.asked and exact(self.cfg, self.asked, pending) is not None:
                return None
            return pending[0] if pending else None
        found = step(self.cfg, self.asked, self.ordered, self.record, self.calib)
        if found.model is not None:
            return found.model
        self.stop = found
        return self.next()

    def answer(self, model: str, ballot: Ballot, cost_nanos: int) -> None:
        self.asked[model] = ballot
        self.costs[model] = cost_nanos

    @property
    def complete(self) -> bool:
        return len(self.asked) == len(self.cfg.members)

    def finish(self) -> str:
        """The decision; files what was seen in the record (call once, after `next()` returned None)."""
        stop = self.stop if self.stop is not None else Step(action=decide_all(self.cfg, self.asked))
        action = str(stop.action)
        pending = [m for m in self.ordered if m not in self.asked]
        outcome = exact(self.cfg, self.asked, pending) if self.asked else None
        self.outcome = outcome
        learn(self.record, self.asked, self.costs, stop, complete=self.complete, lean=self.lean,
              decided=outcome or action, exact_outcome=outcome is not None)
        return action

    def describe(self) -> dict[str, object]:
        """What the decision record says: members asked in order, why it stopped, whether audited."""
        stop, members = self.stop, len(self.cfg.members)
        return {"kind": "tuned", "order": list(self.ordered), "asked": list(self.asked),
                "stopped_at": "cheap panel" if self.at_cheap else f"{len(self.asked)} of {members}",
                "why": stop.why if stop is not None else "", "audit": bool(stop and stop.audit),
                "risk": stop.risk if stop is not None else 0.0, "stop_kind": stop.kind if stop else "",
                "members": members, "outcome": self.outcome,
                "record_sets": len(self.record.sets), "decisions_seen": self.record.decisions}
