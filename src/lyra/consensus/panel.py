"""Consensus: one prompt to a panel of models in parallel, votes aggregated by the panel's rule."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from lyra.config import PanelMember, PanelSettings, Settings
from lyra.consensus.aggregation import RULES, Ballot, Outcome, settled
from lyra.consensus.cascade import SequentialRecord
from lyra.consensus.decision import (
    DECISION_INSTRUCTIONS,
    DECISION_RESPONSE_FORMAT,
    Abstention,
    Action,
    parse_decision,
)
from lyra.consensus.tuned import decide_tuned
from lyra.errors import ConfigError, LyraError
from lyra.log import get_logger
from lyra.money import nanos_to_usd
from lyra.types import Completion, CompletionRequest, Message, SpendTally

log = get_logger("lyra.consensus.panel")

Call = Callable[[CompletionRequest], Awaitable[Completion]]
VoteStatus = Literal["vote", "abstain", "error", "dropped", "cancelled"]
Task = asyncio.Task["MemberVote"]


@dataclass(slots=True, kw_only=True)
class MemberVote:
    """One panel member's answer, or why there is none."""

    model: str
    key: str
    weight: float
    status: VoteStatus
    action: Action | None = None
    confidence: float = 0.0
    rationale: str = ""
    reason: str = ""
    served_model: str | None = None
    cost_nanos: int = 0
    latency_s: float = 0.0
    cached: bool = False
    profile: dict[str, Any] | None = None  # the exact model and provider preferences its call sent
    answer: str = ""  # the model's answer as it came back, before parsing (training data needs it)

    def ballot(self) -> Ballot:
        return Ballot(self.weight, self.action if self.status == "vote" else None, self.confidence)


@dataclass(slots=True, kw_only=True)
class Consensus:
    """A panel's decision with every vote, abstention, cost and timing behind it."""

    panel: str
    rule: str
    action: Action
    score: float
    agreement: float
    threshold: float
    quorum_met: bool
    reason: str
    votes: list[MemberVote]
    cost_nanos: int
    latency_s: float
    early_exit: bool = False
    notional: float | None = None
    escalated_from: Consensus | None = None
    supports: dict[str, float] = field(default_factory=dict)
    # The messages every member was sent (the decision instructions first). Not in `to_dict`: a
    # decision record stores them once per stage, and the consensus API's callers sent them.
    prompt: list[Message] = field(default_factory=list)
    cascade: dict[str, Any] | None = None  # a tuned cascade's record: members asked, order, why it stopped

    @classmethod
    def of_one(cls, vote: MemberVote, *, panel: str) -> Consensus:
        """The decision of a single voter (a task routed to one model): its vote is the outcome."""
        if vote.status != "vote" or vote.action is None:
            raise ValueError("a consensus of one needs a vote with an action")
        return cls(panel=panel, rule="single", action=vote.action, score=vote.confidence, agreement=1.0,
                   threshold=0.0, quorum_met=True, reason=vote.rationale, votes=[vote],
                   cost_nanos=vote.cost_nanos, latency_s=vote.latency_s)

    @property
    def abstentions(self) -> list[MemberVote]:
        return [v for v in self.votes if v.status != "vote"]

    @property
    def cost_usd(self) -> Any:
        return nanos_to_usd(self.cost_nanos)

    @property
    def execute(self) -> bool:
        """True when the decision is a trade (BUY or SELL), not a hold."""
        return self.action != "HOLD"

    def to_dict(self) -> dict[str, Any]:
        return {
            "panel": self.panel, "rule": self.rule, "action": self.action, "score": round(self.score, 4),
            "agreement": round(self.agreement, 4), "threshold": self.threshold,
            "quorum_met": self.quorum_met, "reason": self.reason, "early_exit": self.early_exit,
            "cost_usd": str(self.cost_usd), "latency_s": round(self.latency_s, 4),
            "notional": self.notional, "supports": {k: round(v, 4) for k, v in self.supports.items()},
            "votes": [_vote_dict(v) for v in self.votes],
            "escalated_from": self.escalated_from.to_dict() if self.escalated_from else None,
            **({"cascade": self.cascade} if self.cascade is not None else {}),
        }


def _vote_dict(v: MemberVote) -> dict[str, Any]:
    return {"model": v.model, "served_model": v.served_model, "key": v.key, "weight": v.weight,
            "status": v.status, "action": v.action, "confidence": v.confidence, "rationale": v.rationale,
            "reason": v.reason, "cost_usd": str(nanos_to_usd(v.cost_nanos)),
            "latency_s": round(v.latency_s, 4), "cached": v.cached, "profile": v.profile, "answer": v.answer}


def with_instructions(messages: Sequence[Message]) -> list[Message]:
    """The caller's messages, led by the decision format instructions."""
    return [{"role": "system", "content": DECISION_INSTRUCTIONS}, *messages]


class ConsensusEngine:
    """Runs panels from the configuration through a completion call (cached, budgeted, routed)."""

    def __init__(self, settings: Settings, call: Call) -> None:
        self._settings = settings
        self._call = call
        self.tuned: dict[str, SequentialRecord] = {}  # what each tuned panel learnt, walk-forward

    def panel(self, name: str) -> PanelSettings:
        found = self._settings.panels.get(name)
        if found is None:
            raise ConfigError(f"unknown panel {name!r}; configured: {', '.join(self._settings.panels)}")
        return found

    async def decide(self, messages: Sequence[Message], *, panel: str, notional: float | None = None,
                     cache: Literal["use", "bypass", "refresh"] = "use",
                     client: str | None = None) -> Consensus:
        """Run the escalation cascade: the cheaper panel first unless the trade is large or it is unsure."""
        target = self.panel(panel)
        large = notional is not None and notional >= target.escalate_notional_usd
        if target.cascade == "tuned" and not large:
            return await decide_tuned(self, messages, panel=panel, notional=notional, cache=cache,
                                      client=client, calibration=self._settings.calibration,
                                      record=self.tuned.setdefault(panel, SequentialRecord()))
        cheap = target.escalate_from
        if cheap is None or (notional is not None and notional >= target.escalate_notional_usd):
            return await self.ask(messages, panel=panel, notional=notional, cache=cache, client=client)
        started = time.monotonic()
        first = await self.ask(messages, panel=cheap, notional=notional, cache=cache, client=client)
        if self._clear(first, target):
            return first
        log.info("panel %s unsure (%s, agreement %.2f): escalating to %s", cheap, first.reason,
                 first.agreement, panel)
        final = await self.ask(messages, panel=panel, notional=notional, cache=cache, client=client)
        final.escalated_from = first
        final.cost_nanos += first.cost_nanos
        final.latency_s = time.monotonic() - started
        return final

    @staticmethod
    def _clear(result: Consensus, target: PanelSettings) -> bool:
        decisive = max(result.supports.values(), default=0.0) >= result.threshold
        return result.quorum_met and decisive and result.agreement >= target.escalate_below_agreement

    async def ask(self, messages: Sequence[Message], *, panel: str, notional: float | None = None,
                  cache: Literal["use", "bypass", "refresh"] = "use",
                  client: str | None = None) -> Consensus:
        """One panel: members in parallel, early exit once the outcome cannot change."""
        cfg = self.panel(panel)
        rule = RULES[cfg.rule]
        prompt = with_instructions(messages)
        started = time.monotonic()
        votes = [MemberVote(model=m.model, key=m.key, weight=m.weight, status="dropped",
                            reason=f"no answer within the {cfg.deadline_s:g}s deadline") for m in cfg.members]
        tallies = [SpendTally() for _ in cfg.members]
        tasks = {asyncio.create_task(self._member(m, prompt, cfg, cache, client, tallies[i])): i
                 for i, m in enumerate(cfg.members)}
        pending: set[Task] = set(tasks)
        deadline = started + cfg.deadline_s
        early = False
        while pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            done, pending = await asyncio.wait(pending, timeout=remaining,
                                               return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                votes[tasks[task]] = task.result()
            if pending and self._settled(rule.name, votes, tasks, pending, cfg) is not None:
                early = True
                break
        await self._stop(pending, tasks, votes, early)
        for vote, tally in zip(votes, tallies, strict=True):
            # Failed and cancelled members' booked cost counts too; a replayed answer books nothing,
            # so it keeps the cost recorded with it and a replay reports what the recording did.
            vote.cost_nanos = max(tally.nanos, vote.cost_nanos)
        outcome = rule.decide([v.ballot() for v in votes], threshold=cfg.threshold, quorum=cfg.quorum)
        result = self._result(panel, cfg, outcome, votes, started, early, notional)
        result.prompt = prompt
        return result

    def _settled(self, rule_name: str, votes: list[MemberVote], tasks: Mapping[Task, int],
                 pending: set[Task], cfg: PanelSettings) -> Outcome | None:
        waiting = {tasks[t] for t in pending}
        done = [v.ballot() for i, v in enumerate(votes) if i not in waiting]
        weights = [votes[i].weight for i in waiting]
        return settled(RULES[rule_name], done, weights, threshold=cfg.threshold, quorum=cfg.quorum)

    async def _stop(self, pending: set[Task], tasks: Mapping[Task, int], votes: list[MemberVote],
                    early: bool) -> None:
        """Cancel members still running; each books its call at the worst case as it unwinds."""
        for task in pending:
            task.cancel()
            if early:
                i = tasks[task]
                votes[i].status, votes[i].reason = "cancelled", "outcome settled before it answered"
        await asyncio.gather(*pending, return_exceptions=True)

    async def member(self, member: PanelMember, prompt: list[Message], cfg: PanelSettings,
                     cache: Literal["use", "bypass", "refresh"], client: str | None,
                     tally: SpendTally) -> MemberVote:
        """One member's answer as a panel asks it (a tuned cascade asks them one at a time)."""
        return await self._member(member, prompt, cfg, cache, client, tally)

    async def _member(self, member: PanelMember, prompt: list[Message], cfg: PanelSettings,
                      cache: Literal["use", "bypass", "refresh"], client: str | None,
                      tally: SpendTally) -> MemberVote:
        started = time.monotonic()
        vote = MemberVote(model=member.model, key=member.key, weight=member.weight, status="error")
        request = CompletionRequest(messages=prompt, task=cfg.task, model=member.model, key=member.key,
                                    max_tokens=cfg.max_tokens, response_format=DECISION_RESPONSE_FORMAT,
                                    deadline_s=cfg.deadline_s, cache=cache, client=client, spend=tally)
        try:
            completion = await self._call(request)
        except LyraError as exc:
            vote.reason = f"{type(exc).__name__}: {exc}"
            vote.latency_s = time.monotonic() - started
            return vote
        vote.served_model, vote.cost_nanos = completion.model, completion.total_cost_nanos
        vote.cached = completion.cached
        vote.profile = completion.profile
        vote.answer = completion.text
        vote.latency_s = time.monotonic() - started
        parsed = parse_decision(completion.text)
        if isinstance(parsed, Abstention):
            vote.status, vote.reason = "abstain", parsed.reason
            return vote
        vote.status, vote.action, vote.confidence, vote.rationale = (
            "vote", parsed.action, parsed.confidence, parsed.rationale)
        return vote

    @staticmethod
    def _result(panel: str, cfg: PanelSettings, outcome: Outcome, votes: list[MemberVote], started: float,
                early: bool, notional: float | None) -> Consensus:
        return Consensus(
            panel=panel, rule=cfg.rule, action=outcome.action, score=outcome.score,
            agreement=outcome.agreement, threshold=cfg.threshold, quorum_met=outcome.quorum_met,
            reason=outcome.reason, votes=votes, cost_nanos=sum(v.cost_nanos for v in votes),
            latency_s=time.monotonic() - started, early_exit=early, notional=notional,
            supports=outcome.supports,
        )
