"""The six-stage decision pipeline (TradingAIOrchestrator), on the engine's public API only."""

from __future__ import annotations

import asyncio
import collections
import hashlib
import math
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from lyra.consensus.decision import DECISION_RESPONSE_FORMAT, Decision, parse_decision
from lyra.consensus.panel import Consensus, MemberVote, with_instructions
from lyra.engine import Lyra
from lyra.errors import BudgetExceeded, LyraError
from lyra.trading import prompts
from lyra.trading.compliance_review import gate_for, order_of
from lyra.trading.data import Bars, as_utc
from lyra.trading.features import FEATURE_NAMES, compute_features, features_at
from lyra.trading.risk import AccountState, FinalAction, RiskRules, RiskVerdict, Verdict
from lyra.trading.stages import FINAL_PANEL, SIGNAL_PANEL, stage
from lyra.trading.variant import SignalVariant
from lyra.types import Completion, Message

StageStatus = Literal["ok", "error", "skipped"]


@dataclass(slots=True, kw_only=True)
class StageResult:
    """One stage: who answered, what it cost, how long it took and what it said."""

    stage: str
    tier: str | None = None
    model: str | None = None
    cost_nanos: int = 0
    latency_s: float = 0.0
    status: StageStatus = "ok"
    output: Any = None
    error: str = ""
    error_kind: str = ""  # the exception's class name (BudgetExceeded, NoModelAvailable, ...) when it failed
    cap: str | None = None  # the budget cap that refused it (global, tier:fast, key:premium, ...)
    # The profile of each call behind the stage (a panel: each member that answered): the exact model,
    # the provider preferences and service tier sent, and their fingerprint.
    profiles: list[dict[str, Any]] = field(default_factory=list)
    # The messages the stage sent, exactly (a panel: what every member got), and a single call's
    # answer before parsing; a panel's answers are on its votes. Training data is built from them.
    messages: list[dict[str, Any]] | None = None
    answer: str | None = None

    @property
    def failed(self) -> bool:
        """True when the stage was asked and had no answer (skipped stages were never asked)."""
        return self.status == "error"

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "tier": self.tier, "model": self.model, "cost_nanos": self.cost_nanos,
                "latency_s": round(self.latency_s, 4), "status": self.status, "output": self.output,
                "error": self.error, "error_kind": self.error_kind, "cap": self.cap,
                "profiles": self.profiles, "messages": self.messages, "answer": self.answer}


@dataclass(slots=True, kw_only=True)
class TradeDecision:
    """The pipeline's answer for one symbol at one time, with every stage behind it."""

    symbol: str
    time: str
    price: float
    action: FinalAction
    notional_usd: float
    confidence: float
    agreement: float
    risk: RiskVerdict
    signal: Consensus | None
    final: Consensus | None
    stages: list[StageResult]
    features: dict[str, Any]
    inputs_hash: str
    cost_nanos: int = 0
    latency_s: float = 0.0
    audit_seq: int | None = None
    errors: list[str] = field(default_factory=list)
    compliance: dict[str, Any] | None = None  # the desk's rules and review, when [compliance] is enabled
    experiment: dict[str, Any] | None = None  # the experiment arm this decision was asked with

    def to_dict(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol, "time": self.time, "price": self.price, "action": self.action,
            "notional_usd": round(self.notional_usd, 2), "confidence": round(self.confidence, 4),
            "agreement": round(self.agreement, 4), "cost_nanos": self.cost_nanos,
            "latency_s": round(self.latency_s, 4), "inputs_hash": self.inputs_hash,
            "risk": {"action": self.risk.action, "verdict": self.risk.verdict,
                     "notional_usd": round(self.risk.notional_usd, 2), "reasons": list(self.risk.reasons),
                     "premium_route": self.risk.premium_route},
            "signal": self.signal.to_dict() if self.signal else None,
            "final": self.final.to_dict() if self.final else None,
            "stages": [s.to_dict() for s in self.stages], "features": self.features,
            "audit_seq": self.audit_seq, "errors": self.errors,
            "failed_stages": sum(s.failed for s in self.stages),
            **({"experiment": self.experiment} if self.experiment is not None else {}),
        } | ({"compliance": self.compliance} if self.compliance is not None else {})


@dataclass(frozen=True, slots=True)
class DecisionContext:
    """One decision's own inputs, handed to every stage: what it is for and the account it is ruled on."""

    symbol: str
    account: AccountState
    news: tuple[str, ...] = ()
    variant: SignalVariant | None = None  # an experiment arm's signal prompt (and models)


class TradingAIOrchestrator:
    """The origin document's orchestrator: market analysis, signals, risk, validation, decisions."""

    def __init__(self, lyra: Lyra, *, account: AccountState | None = None, signal_panel: str = SIGNAL_PANEL,
                 final_panel: str = FINAL_PANEL, audit: bool = True,
                 feature_filter: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
                 client: str | None = None,
                 extra_features: Callable[[Bars, Any], dict[str, Any]] | None = None) -> None:
        self.lyra = lyra
        # More features from the bars known at the decision (higher timeframes: lyra.trading.timeframes),
        # added to what every stage's prompt carries.
        self.extra_features = extra_features
        self.client = client  # a gateway client whose daily cap pays for every stage
        # What the prompts may see (a backtest strips dates and rebases prices). It is given the
        # features at full precision and rounds what it returns, so that no digit left over from
        # rounding at the original price level survives the rebasing.
        self.feature_filter = feature_filter
        self.rules = RiskRules(lyra.settings.risk)
        equity = lyra.settings.risk.account_equity_usd
        self.account = account or AccountState(equity_at_day_start=equity, equity=equity)
        self.signal_panel = signal_panel
        self.final_panel = final_panel
        self.audit = audit
        desk = lyra.settings.compliance
        self.compliance = gate_for(lyra, desk) if desk.enabled else None  # rules before any decision is final

    async def analyze_market_conditions(self, features: dict[str, Any],
                                        context: DecisionContext | None = None) -> list[StageResult]:
        """Stage 1 (fast tier summary) and stage 2 (advanced-tier technical analysis), together."""
        data, analysis = stage("market_data"), stage("technical_analysis")
        asked, studied = prompts.market_summary(features), prompts.technical_analysis(features)
        summary, technical = await asyncio.gather(
            run_stage(data.name, lambda: self.lyra.complete(client=self.client, tier=data.tier,
                task=data.task, messages=asked, max_tokens=data.max_tokens), messages=asked),
            run_stage(analysis.name, lambda: self.lyra.complete(client=self.client, tier=analysis.tier,
                task=analysis.task, messages=studied, max_tokens=analysis.max_tokens), messages=studied),
        )
        return [summary, technical]

    async def generate_trading_signals(self, features: dict[str, Any], news: Sequence[str] = (),
                                       context: DecisionContext | None = None
                                       ) -> tuple[StageResult, Consensus | None]:
        """Stage 3: the signal panel's consensus on the features (and fenced news)."""
        variant = context.variant if context is not None else None
        if variant is not None and variant.models:
            return await single_signal(self.lyra, variant.signal(features, news), models=variant.models,
                                       client=self.client)
        asked = variant.signal if variant is not None else prompts.signal
        return await _panel_stage("signal_generation", lambda: self.lyra.consensus(client=self.client,
            messages=asked(features, news), panel=self.signal_panel, cascade=False))

    async def assess_trade_risk(
        self, features: dict[str, Any], *, action: str, notional_usd: float, price: float | None = None,
        context: DecisionContext | None = None,
    ) -> tuple[StageResult, Verdict | None, float | None]:
        """Stage 4: the premium tier's view of the trade, as a structured verdict.

        `price` is the real last close (the features' close may be rebased), to value the position.
        """
        held = context.account if context is not None else self.account
        account = account_block(held, price if price is not None else _float(features.get("close")))
        messages = prompts.risk_assessment(features, action=action, notional_usd=notional_usd,
                                           account=account)
        result = await run_stage("risk_assessment", lambda: self.lyra.complete(client=self.client,
            task="risk_assessment", response_format=prompts.RISK_SCHEMA, messages=messages),
            messages=messages)
        verdict, cap = _parse_risk(result)
        return result, verdict, cap

    async def validate_strategy(self, description: str) -> StageResult:
        """A premium-tier review of a strategy description: approve, reduce or reject, with the reason."""
        messages = prompts.risk_assessment({"strategy": description[:2000]}, action="RUN STRATEGY",
                                           notional_usd=self.account.equity, account={})
        result = await run_stage("strategy_validation", lambda: self.lyra.complete(client=self.client,
            task="risk_assessment", response_format=prompts.RISK_SCHEMA, messages=messages),
            messages=messages)
        _parse_risk(result)
        return result

    async def decide(self, symbol: str, bars: Bars, *, proposed_notional: float = 5_000.0,
                     news: Sequence[str] = (), at: Any = None, account: AccountState | None = None,
                     variant: SignalVariant | None = None) -> TradeDecision:
        """Run the six stages on the bars known at `at` (default: the last bar).

        `account` is the book this decision is ruled on (default: the orchestrator's own); it travels
        to every stage in a `DecisionContext`, so one orchestrator can decide for several accounts
        at once. `variant` (an experiment's arm) replaces the signal prompt of stages 3 and 5.
        """
        started = time.monotonic()
        context = DecisionContext(symbol=symbol, account=account or self.account, news=tuple(news),
                                  variant=variant)
        asked = variant.signal if variant is not None else prompts.signal
        when = at if at is not None else bars.end
        known = features_at(bars, when)
        features = known if self.feature_filter is None else self.feature_filter(raw_features_at(bars, when))
        if self.extra_features is not None:
            features = {**features, **self.extra_features(bars.until(when), when)}
        price, atr = float(known["close"]), _float(known.get("atr"))
        analysis, (signal_stage, signal) = await asyncio.gather(
            self.analyze_market_conditions(features, context),
            self.generate_trading_signals(features, news, context))
        stages = [*analysis, signal_stage]
        wanted: FinalAction = signal.action if signal is not None else "HOLD"
        verdict: Verdict | None = None
        cap: float | None = None
        final: Consensus | None = None
        if wanted in ("BUY", "SELL"):
            (risk_stage, verdict, cap), (final_stage, final) = await asyncio.gather(
                self.assess_trade_risk(features, action=wanted, notional_usd=proposed_notional, price=price,
                                       context=context),
                _panel_stage("final_decision", lambda: self.lyra.consensus(client=self.client,
                    messages=asked(features, news), panel=self.final_panel,
                    notional=proposed_notional)))
            stages += [risk_stage, final_stage]
            wanted = final.action if final is not None else "HOLD"
        else:
            stages += [StageResult(stage="risk_assessment", status="skipped", output="no trade proposed"),
                       StageResult(stage="final_decision", status="skipped", output="no trade proposed")]
        review = next((s for s in stages if s.stage == "risk_assessment"), None)
        failed = review is not None and review.status == "error"
        missing = (review.error or "no answer") if review is not None and failed else None
        risk = self.rules.rule(signal=wanted, proposed_notional_usd=proposed_notional, price=price, atr=atr,
                               account=context.account, model_verdict=verdict, model_max_notional_usd=cap,
                               review_missing=missing)
        compliance = None
        if self.compliance is not None:
            risk, verdict_, review_stage = await self.compliance.apply(
                order_of(symbol, as_utc(str(known["time"])), risk, context.account, price), risk,
                lambda request: run_stage("compliance_review", lambda: self.lyra.run(request)),
                anonymous=self.feature_filter is not None, client=self.client)
            stages.append(review_stage)
            compliance = verdict_.to_dict()
        stages.append(await self._monitor(features, risk))
        deciding = final or signal
        decision = TradeDecision(
            symbol=symbol, time=str(known["time"]), price=price, action=risk.action,
            notional_usd=risk.notional_usd, confidence=deciding.score if deciding else 0.0,
            agreement=deciding.agreement if deciding else 0.0, risk=risk, signal=signal, final=final,
            stages=stages, features=features, inputs_hash=_inputs_hash(symbol, features, news),
            cost_nanos=sum(s.cost_nanos for s in stages), latency_s=time.monotonic() - started,
            errors=[f"{s.stage}: {s.error}" for s in stages if s.status == "error"], compliance=compliance,
            experiment=dict(variant.tag) if variant is not None else None)
        if self.audit and self.lyra.ledger is not None:
            payload = decision.to_dict() | ({"client": self.client} if self.client is not None else {})
            record = self.lyra.ledger.audit.append(payload, symbol=symbol, action=decision.action,
                                                   cost_nanos=decision.cost_nanos)
            decision.audit_seq = record.seq
        return decision

    async def _monitor(self, features: dict[str, Any], risk: RiskVerdict) -> StageResult:
        """Stage 6: execution monitoring on the fast tier, for decisions that change exposure."""
        if risk.action == "HOLD":
            return StageResult(stage="execution_monitoring", status="skipped", output="nothing to execute")
        messages = prompts.execution_monitoring(features, action=risk.action, notional_usd=risk.notional_usd)
        monitor = stage("execution_monitoring")
        return await run_stage(monitor.name, lambda: self.lyra.complete(
            client=self.client, tier=monitor.tier, task=monitor.task, max_tokens=monitor.max_tokens,
            messages=messages), messages=messages)


def account_block(account: AccountState, price: float | None) -> dict[str, Any]:
    """The account as the risk prompt shows it: equity, drawdown and the position as a share of equity.

    Never the position's units: units beside a dollar notional give away the price level, and
    with it the asset and the era that anonymised prompts hide.
    """
    units = account.position.units
    share = units * price / account.equity if price is not None and account.equity > 0 else 0.0
    return {"equity": round(account.equity), "drawdown": round(account.drawdown, 4),
            "position_share_of_equity": round(share, 4) + 0.0}


def raw_features_at(bars: Bars, when: Any) -> dict[str, Any]:
    """The features at `when` at full precision: a filter that rebases them rounds after rebasing.

    Rounding first (as `features_at` does for prompts sent as they are) would leave digits in the
    rebased values that depend on the original price level.
    """
    known = bars.until(when)
    row = compute_features(known).iloc[-1]
    out: dict[str, Any] = {"time": str(known.end.isoformat()), "close": float(known.frame["close"].iloc[-1])}
    for name in FEATURE_NAMES:
        value = float(row[name])
        if math.isfinite(value):
            out[name] = value
    return out


def _failed(name: str, exc: LyraError, started: float) -> StageResult:
    cap = (exc.cap or None) if isinstance(exc, BudgetExceeded) else None
    return StageResult(stage=name, status="error", error=f"{type(exc).__name__}: {exc}"[:300],
                       error_kind=type(exc).__name__, cap=cap, latency_s=time.monotonic() - started)


async def run_stage(name: str, call: Callable[[], Awaitable[Completion]], *,
                    messages: Sequence[Message] | None = None) -> StageResult:
    """One stage's call, with what it cost and how long it took; an engine error is a failed stage.

    `messages` are the ones `call` sends, recorded with the stage as they were sent.
    """
    started = time.monotonic()
    sent = [dict(m) for m in messages] if messages is not None else None
    try:
        c = await call()
    except LyraError as exc:
        failed = _failed(name, exc, started)
        failed.messages = sent
        return failed
    return StageResult(stage=name, tier=c.tier, model=c.model, cost_nanos=c.total_cost_nanos,
                       latency_s=c.latency_s, output=c.text, profiles=[c.profile] if c.profile else [],
                       messages=sent, answer=c.text)


async def single_signal(lyra: Lyra, messages: prompts.Messages, *, models: Sequence[str] = (),
                        client: str | None = None) -> tuple[StageResult, Consensus | None]:
    """The signal as one routed call of the signal_generation task (to `models` in order, if given).

    Its answer is the decision format's; an abstention or an unparseable answer is no signal.
    """
    sent = with_instructions(messages)
    stage_result = await run_stage("signal_generation", lambda: lyra.complete(
        client=client, task="signal_generation", messages=sent,
        response_format=DECISION_RESPONSE_FORMAT, models=list(models) or None), messages=sent)
    if stage_result.status != "ok":
        return stage_result, None
    parsed = parse_decision(str(stage_result.output))
    if not isinstance(parsed, Decision):
        stage_result.output = {"abstained": parsed.reason}
        return stage_result, None
    vote = MemberVote(model=stage_result.model or "", key="", weight=1.0, status="vote",
                      action=parsed.action, confidence=parsed.confidence, rationale=parsed.rationale,
                      served_model=stage_result.model, cost_nanos=stage_result.cost_nanos,
                      latency_s=stage_result.latency_s, answer=stage_result.answer or "")
    return stage_result, Consensus.of_one(vote, panel="task:signal_generation")


async def _panel_stage(
    name: str, call: Callable[[], Awaitable[Consensus]]
) -> tuple[StageResult, Consensus | None]:
    started = time.monotonic()
    try:
        c = await call()
    except LyraError as exc:
        return _failed(name, exc, started), None
    voted = [v.served_model or v.model for v in c.votes if v.status == "vote"]
    result = StageResult(stage=name, tier=f"panel:{c.panel}", model=", ".join(voted) or None,
                         cost_nanos=c.cost_nanos, latency_s=c.latency_s,
                         output={"action": c.action, "score": round(c.score, 4), "reason": c.reason},
                         profiles=_panel_profiles(c), messages=[dict(m) for m in c.prompt])
    _mark_member_failures(result, c)
    return result, c


def _panel_profiles(consensus: Consensus) -> list[dict[str, Any]]:
    """The profile of every member call that answered, this panel's and the ones it escalated from."""
    found: list[dict[str, Any]] = []
    panel: Consensus | None = consensus
    while panel is not None:
        found += [v.profile for v in panel.votes if v.profile is not None]
        panel = panel.escalated_from
    return found


_CAP_IN_MESSAGE = re.compile(r"budget cap (\S+) reached")


def _mark_member_failures(result: StageResult, consensus: Consensus) -> None:
    """A panel that missed its quorum because members failed (not abstained) is a failed stage.

    Its HOLD is what the outage or the budget left, not the models' view.
    """
    lost = [v for v in consensus.votes if v.status in ("error", "dropped")]
    if consensus.quorum_met or not lost:
        return
    first = lost[0]
    kinds = collections.Counter(_member_kind(v.status, v.reason) for v in lost)
    caps = [m.group(1) for v in lost if (m := _CAP_IN_MESSAGE.search(v.reason))]
    result.status = "error"
    result.error_kind = kinds.most_common(1)[0][0]
    result.cap = caps[0] if caps else None
    result.error = (f"{len(lost)} of {len(consensus.votes)} panel members failed, no quorum: "
                    f"{first.model}: {first.reason}")[:300]


def _member_kind(status: str, reason: str) -> str:
    if status == "dropped":
        return "PanelDeadline"
    head = reason.split(":", 1)[0]
    return head if head.isidentifier() else "Error"


def _parse_risk(result: StageResult) -> tuple[Verdict | None, float | None]:
    """The risk model's verdict; anything unparseable counts as a rejection (fail safe)."""
    if result.status != "ok":
        return None, None
    try:
        payload = orjson.loads(str(result.output).strip().removeprefix("```json").removesuffix("```"))
    except orjson.JSONDecodeError:
        raw = str(result.output)[:200]
        result.output = {"verdict": "reject", "reason": "unparseable risk answer", "raw": raw}
        return "reject", None
    verdict = payload.get("verdict") if isinstance(payload, dict) else None
    if verdict not in ("approve", "reduce", "reject"):
        result.output = {"verdict": "reject", "reason": "no valid verdict", "raw": payload}
        return "reject", None
    cap = payload.get("max_notional_usd")
    result.output = payload
    return verdict, float(cap) if isinstance(cap, int | float) and not isinstance(cap, bool) else None


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _inputs_hash(symbol: str, features: dict[str, Any], news: Sequence[str]) -> str:
    material = orjson.dumps({"symbol": symbol, "features": features, "news": list(news)},
                            option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(material).hexdigest()
