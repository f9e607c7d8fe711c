"""Backtests of the decision pipeline: walk-forward, baselines, per-model track record, look-ahead guards.

`run_backtest(lyra, bars, ...)` walks the pipeline over the bars (each decision sees only
`bars.until(t)`, with dates stripped from its prompts by default), fills at the next bar's open,
and reports the pipeline beside buy-and-hold (at the pipeline's trade size and fully invested)
and a moving-average cross on the same bars and fill rules, over exactly the window asked for.
With a `Cassette` installed the model answers are recorded or replayed.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from lyra.catalog.models import Catalog
from lyra.engine import Lyra
from lyra.errors import LyraError
from lyra.trading.account import Fill, session_start_s
from lyra.trading.adaptive import AdaptiveWeights, panel_weights
from lyra.trading.backtest import (
    Costs,
    Decider,
    LookAheadError,
    Run,
    Step,
    Vote,
    Window,
    buy_and_hold,
    decision_times,
    forward_move,
    moving_average_cross,
    summarise,
    walk,
)
from lyra.trading.cassette import Cassette, CassetteMiss
from lyra.trading.data import Bars, DataError, as_utc
from lyra.trading.features import SIGNIFICANT_DIGITS
from lyra.trading.metrics import Annualisation, annualisation, curve_stats
from lyra.trading.panel_study import StudyOptions
from lyra.trading.panel_summary import run_study
from lyra.trading.pipeline import TradeDecision, TradingAIOrchestrator
from lyra.trading.risk import AccountState
from lyra.trading.stages import FINAL_PANEL, SIGNAL_PANEL, Stage, single_calls, stage_models
from lyra.trading.timeframes import timeframes_hook

HIDDEN_FEATURES = ("time", "symbol")
# Absolute price levels name the asset and the era as surely as a date does: they are rebased so
# that the last close reads 100 (ratios, returns, RSI and the like are unchanged).
PRICE_LEVELS = ("close", "sma_fast", "sma_slow", "ema_12", "ema_26", "bb_upper", "bb_lower", "atr", "macd",
                "macd_signal", "macd_hist")


class ReplayMismatch(LyraError):
    """A replayed backtest asked a question its cassette never recorded."""


def anonymise(features: dict[str, Any]) -> dict[str, Any]:
    """The features without date or symbol, prices rebased to 100: nothing to recall the future by.

    Every number is rounded to SIGNIFICANT_DIGITS after rebasing, so that two series that differ
    only by a scale factor give the same values, digit for digit.
    """
    close = features.get("close")
    scale = 100.0 / close if isinstance(close, int | float) and close > 0 else None
    out: dict[str, Any] = {}
    for name, value in features.items():
        if name in HIDDEN_FEATURES:
            continue
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = _significant(value * scale if scale is not None and name in PRICE_LEVELS else value)
        out[name] = value
    return out


def _significant(value: float) -> float:
    return float(f"{float(value):.{SIGNIFICANT_DIGITS}g}") + 0.0


def decision_record(decision: TradeDecision) -> dict[str, Any]:
    """The decision as JSON without timings or audit numbers: what a replay must reproduce byte for byte."""
    data = decision.to_dict()
    data.pop("audit_seq", None)
    cleaned: dict[str, Any] = _without(data, "latency_s")
    return cleaned


def _without(value: Any, key: str) -> Any:
    if isinstance(value, dict):
        return {k: _without(v, key) for k, v in value.items() if k != key}
    if isinstance(value, list):
        return [_without(v, key) for v in value]
    return value


def pipeline_decider(orchestrator: TradingAIOrchestrator, symbol: str, notional: float, *,
                     adaptive: AdaptiveWeights | None = None) -> Decider:
    """The six-stage pipeline as a strategy; the account it sees is the backtest's own.

    With `adaptive`, the signal and final panels' member weights are scaled by each member's
    track record over the outcomes known at the decision (walk-forward).
    """
    panels = (orchestrator.signal_panel, orchestrator.final_panel)

    async def decide(known: Bars, t: pd.Timestamp, account: AccountState) -> Step:
        if adaptive is None:
            decision = await orchestrator.decide(symbol, known, proposed_notional=notional, at=t,
                                                     account=account)
        else:
            with panel_weights(orchestrator.lyra.settings, panels, adaptive.at(known.frame)):
                decision = await orchestrator.decide(symbol, known, proposed_notional=notional, at=t,
                                                     account=account)
        step = Step(time=pd.Timestamp(decision.time), action=decision.action,
                    notional_usd=decision.notional_usd, cost_nanos=decision.cost_nanos,
                    votes=_votes(decision), record=decision_record(decision))
        if adaptive is not None:
            adaptive.observe(len(known) - 1, step.votes)
        return step

    return decide


def _votes(decision: TradeDecision) -> list[Vote]:
    """The signal panel's votes, and the final panel's when it is another panel (no double counting)."""
    signal, final = decision.signal, decision.final
    panels = [signal]
    if final is not None and (signal is None or final.panel != signal.panel):
        panels.append(final)
    return [Vote(model=v.model, action=v.action, confidence=v.confidence, cost_nanos=v.cost_nanos)
            for c in panels if c is not None for v in c.votes if v.status in ("vote", "abstain")]


def track_record(steps: list[Step], bars: Bars, horizon: int) -> list[dict[str, Any]]:
    """Each panel member scored against realised moves: accuracy, Brier score, cost per correct call.

    Accuracy counts BUY and SELL votes (direction right over the horizon); the Brier score reads
    a vote as a probability that the price rises (BUY: confidence, SELL: 1 - confidence, HOLD or
    abstain: 0.5) and scores every vote.
    """
    index = {t: i for i, t in enumerate(bars.frame.index)}
    rows: dict[str, dict[str, Any]] = {}
    for step in steps:
        move = forward_move(bars.frame, index[step.time], horizon)
        for vote in step.votes:
            row = rows.setdefault(vote.model, {"model": vote.model, "votes": 0, "calls": 0, "correct": 0,
                                               "brier_sum": 0.0, "scored": 0, "cost_nanos": 0})
            row["votes"] += 1
            row["cost_nanos"] += vote.cost_nanos
            if move is None:
                continue
            up = 1.0 if move > 0 else 0.0
            row["brier_sum"] += (_p_up(vote) - up) ** 2
            row["scored"] += 1
            if vote.action in ("BUY", "SELL"):
                row["calls"] += 1
                row["correct"] += (vote.action == "BUY") == (move > 0)
    return [_finish_row(r) for r in sorted(rows.values(), key=lambda r: str(r["model"]))]


def _p_up(vote: Vote) -> float:
    confidence = min(1.0, max(0.0, vote.confidence))
    return {"BUY": confidence, "SELL": 1.0 - confidence}.get(vote.action or "", 0.5)


def _finish_row(row: dict[str, Any]) -> dict[str, Any]:
    scored, calls, correct = row.pop("scored"), row["calls"], row["correct"]
    brier = row.pop("brier_sum")
    return {**row, "accuracy": correct / calls if calls else None,
            "brier": brier / scored if scored else None,
            "cost_per_correct_nanos": row["cost_nanos"] // correct if correct else None}


def budget_warnings(records: list[dict[str, Any]]) -> list[str]:
    """One line when budget caps refused stages: those decisions reflect the budget, not the market."""
    refused = [r for r in records if any(_refused(s) for s in r.get("stages", ()))]
    if not refused:
        return []
    return [f"{len(refused)} of {len(records)} decisions had a stage refused by a budget cap, so they "
            "show what the budget allowed, not what the models would say; see `lyra budget`"]


def _refused(stage: dict[str, Any]) -> bool:
    kinds = ("BudgetExceeded", "CostUnbounded")
    return stage.get("error_kind") in kinds or str(stage.get("error", "")).startswith(kinds)


def cutoff_warnings(lyra: Lyra, start: pd.Timestamp, *, panels: tuple[str, ...] = (SIGNAL_PANEL, FINAL_PANEL)
                    ) -> list[str]:
    """One line per model the pipeline may ask whose training data reaches past the window's start."""
    s = lyra.settings
    names = {n for n in panels if n in s.panels}
    names |= {s.panels[n].escalate_from or n for n in names}
    models = {m.model for n in names if n in s.panels for m in s.panels[n].members}
    models |= stage_models(s)
    return [f"{model}: knowledge cutoff {cutoff} is after the window start {start.date()}; it may "
            f"remember what happened next" for model, cutoff in _cutoffs(lyra.catalog, models)
            if pd.Timestamp(cutoff, tz="UTC") > start]


def _cutoffs(catalog: Catalog, models: set[str]) -> list[tuple[str, str]]:
    found = [(m, catalog.find(m)) for m in sorted(models)]
    return [(m, info.knowledge_cutoff) for m, info in found if info is not None and info.knowledge_cutoff]


async def probe_lookahead(decider: Decider, bars: Bars, t: pd.Timestamp, account: AccountState) -> None:
    """Raise LookAheadError if the decision at t changes when every bar after t changes.

    The decider is given the whole series (as `lyra run` gives the pipeline) once as it is and once
    with the future scrambled; a causal strategy cannot tell the two apart.
    """
    frame = bars.frame
    future = frame.index > t
    scrambled = frame.copy()
    scrambled.loc[future, ["open", "high", "low", "close"]] = scrambled.loc[future, ["open", "high", "low",
                                                                                     "close"]].to_numpy()[::-1]
    other = Bars(frame=scrambled, symbol=bars.symbol, interval=bars.interval)
    first = await decider(bars, t, account)
    second = await decider(other, t, account)
    if _substance(first) != _substance(second):
        raise LookAheadError(f"the decision at {t.isoformat()} changed when only bars after it changed "
                             f"({first.action} vs {second.action}): the strategy looks ahead")


def _substance(step: Step) -> tuple[Any, ...]:
    """What must not depend on the future: the action, its size and what the prompts carried.

    For the pipeline, `inputs_hash` covers the features and news the prompts were built from;
    costs and cache flags may differ between two asks of the same question.
    """
    carried = step.record.get("inputs_hash", step.record)
    return step.action, round(step.notional_usd, 2), carried


@dataclass(frozen=True, slots=True, kw_only=True)
class BacktestOptions:
    """What to walk and how to trade it."""

    window: Window = field(default_factory=Window)
    costs: Costs = field(default_factory=Costs)
    notional: float = 5_000.0
    anonymise: bool = True
    adaptive: bool = False  # also walk with adaptive panel weights, to compare with the fixed ones
    max_failed_share: float | None = None  # None: the configured risk.max_failed_share
    # Append the pipeline walk's decisions to the audit trail (prompts as sent, anonymised or not),
    # so that `lyra export finetune` can learn from them; the adaptive walk's repeats are not.
    audit: bool = False

    study: StudyOptions | None = None  # also ask both panels on every decision: baselines and calibration
    timeframes: tuple[str, ...] = ()  # higher intervals whose closed bars' features go in every prompt


FULLY_INVESTED = "buy_and_hold_fully_invested"


@dataclass(frozen=True, slots=True)
class Walked:
    """A strategy's walk with its label and how it sizes its trades."""

    run: Run
    label: str
    sizing: str


RETURN_ON_AI_SPEND_UNIT = "USD of P&L per USD of AI spend"
RETURN_ON_AI_SPEND_DEFINITION = "P&L in USD divided by AI spend in USD"


def return_on_ai_spend_example(value: float) -> str:
    """What a return on AI spend means, in words: "-7,154.66 means the strategy lost $7,154.66 ..."."""
    verb = "lost" if value < 0 else "made"
    return f"{value:,.2f} means the strategy {verb} ${abs(value):,.2f} for each dollar spent on models"


def window_bars(bars: Bars, window: Window) -> Bars:
    """The bars a backtest may use: none after the window's end, so nothing later is walked or scored."""
    if window.end is None:
        return bars
    cut = bars.until(window.end)
    if not len(cut):
        raise DataError(f"--to {window.end}: no bar at or before {as_utc(window.end).isoformat()}; the data "
                        f"starts at {bars.start.isoformat()}")
    return cut


def fully_invested() -> Decider:
    """Baseline: the whole account equity long from the first decision (the next open) to the end."""

    async def decide(known: Bars, t: pd.Timestamp, account: AccountState) -> Step:
        return Step(time=t, action="BUY", notional_usd=account.equity)

    return decide


async def run_backtest(lyra: Lyra, bars: Bars, options: BacktestOptions, *, cassette: Cassette | None = None,
                       on_step: Callable[[Step], None] | None = None) -> dict[str, Any]:
    """Walk the pipeline and the baselines over the window's bars and report them side by side.

    Nothing after the window's end is used: the bars are cut there before anything is walked,
    so a window ending at B measures exactly what the data truncated at B would.
    """
    bars = window_bars(bars, options.window)
    times = decision_times(bars, options.window)
    every = _spacing(bars, times)
    horizon = options.window.horizon or every
    if cassette is not None:
        cassette.note_time_range(times[0].isoformat(), bars.end.isoformat())
        lyra.set_interceptor(cassette.intercept)
    equity = lyra.settings.risk.account_equity_usd
    started = time.monotonic()
    try:
        runs = await _pipeline_runs(lyra, bars, times, options, horizon, on_step)
        study = None if options.study is None else await run_study(
            lyra, bars, times, options.study, horizon=horizon, costs=options.costs, notional=options.notional,
            feature_filter=anonymise if options.anonymise else None)
    except CassetteMiss as exc:
        raise ReplayMismatch(str(exc)) from exc
    finally:
        if cassette is not None:
            lyra.set_interceptor(None)
    elapsed = time.monotonic() - started
    runs += await _baseline_runs(bars, times, options, equity)
    ai = runs[0].run
    yearly = annualisation(pd.DatetimeIndex(bars.frame.index), bars.interval)
    allowed = options.max_failed_share
    allowed = lyra.settings.risk.max_failed_share if allowed is None else allowed
    decisions = [_decision_row(s) for s in ai.steps]
    strategies = [_summary(w, bars, horizon, options.costs, yearly) for w in runs]
    return {
        "symbol": bars.symbol, "interval": bars.interval, "simulated": lyra.config.simulated,
        "window": {"start": times[0].isoformat(), "end": bars.end.isoformat(), "decisions": len(times),
                   "every": every, "horizon": horizon},
        "costs": {"fee_bps": options.costs.fee_bps, "slippage_bps": options.costs.slippage_bps},
        "notional_usd": options.notional, "equity_usd": equity, "anonymised": options.anonymise,
        "timeframes": [bars.interval, *options.timeframes],
        "elapsed_s": round(elapsed, 3), "annualisation": yearly.to_dict(),
        "return_on_ai_spend_unit": RETURN_ON_AI_SPEND_UNIT,
        "return_on_ai_spend_definition": RETURN_ON_AI_SPEND_DEFINITION,
        "warnings": cutoff_warnings(lyra, times[0]) + budget_warnings(decisions),
        "failures": failure_summary(decisions, allowed_share=allowed),
        "strategies": strategies,
        "track_record": track_record(ai.steps, bars, horizon),
        "decisions": decisions,
        "decisions_adaptive": [_decision_row(s) for s in runs[1].run.steps] if options.adaptive else None,
        "curves": {w.run.name: _curve(w.run.equity) for w in runs},
        "spend_curve": _spend_curve(ai.steps),
        "events": [{"time": e.time.isoformat(), "kind": e.kind, "detail": e.detail} for e in ai.events],
        "cassette": cassette.summary() if cassette is not None else None,
        "prices": _price_curve(bars, times[0]),
        "fills": [_fill_row(f) for f in ai.fills],
        "panel_study": study,
    }


async def _pipeline_runs(lyra: Lyra, bars: Bars, times: list[pd.Timestamp], options: BacktestOptions,
                         horizon: int, on_step: Callable[[Step], None] | None) -> list[Walked]:
    """The pipeline's walk (and the adaptive one), each with how it sizes its trades."""
    equity = lyra.settings.risk.account_equity_usd
    features = anonymise if options.anonymise else None
    extra = timeframes_hook(options.timeframes) if options.timeframes else None
    orchestrator = TradingAIOrchestrator(lyra, audit=options.audit, feature_filter=features,
                                         extra_features=extra)
    sizing = f"proposes ${options.notional:,.0f} a trade; the risk rules may cut it"
    # The pipeline trades under the risk rules on every bar (stops and halts intrabar); baselines do not.
    risk, day_start = lyra.settings.risk, session_start_s(lyra.settings)
    decider = pipeline_decider(orchestrator, bars.symbol, options.notional)
    lyra.running.consensus.tuned.clear()  # a tuned cascade learns from this walk's decisions only
    run = await walk("pipeline", decider, bars, times, equity=equity, costs=options.costs, on_step=on_step,
                     risk=risk, day_start_s=day_start)
    runs = [Walked(run, "pipeline", sizing)]
    if options.adaptive:
        learner = AdaptiveWeights(horizon=horizon)
        again = TradingAIOrchestrator(lyra, audit=False, feature_filter=features, extra_features=extra)
        adaptive = pipeline_decider(again, bars.symbol, options.notional, adaptive=learner)
        lyra.running.consensus.tuned.clear()
        run = await walk("pipeline_adaptive", adaptive, bars, times, equity=equity, costs=options.costs,
                         on_step=on_step, risk=risk, day_start_s=day_start)
        runs.append(Walked(run, "pipeline_adaptive", sizing))
    return runs


async def _baseline_runs(bars: Bars, times: list[pd.Timestamp], options: BacktestOptions, equity: float
                         ) -> list[Walked]:
    """Buy-and-hold at the pipeline's trade size and fully invested, and the MA cross, on the same fills."""
    notional, costs = options.notional, options.costs
    position = f"${notional:,.0f} position"
    hold = await walk("buy_and_hold", buy_and_hold(notional), bars, times, equity=equity, costs=costs)
    full = await walk(FULLY_INVESTED, fully_invested(), bars, times, equity=equity, costs=costs)
    cross = await walk("ma_cross", moving_average_cross(bars, notional), bars, times, equity=equity,
                       costs=costs)
    return [Walked(hold, f"buy_and_hold ({position})",
                   f"{position} (the pipeline's proposed size) in a ${equity:,.0f} account"),
            Walked(full, "buy_and_hold (fully invested)",
                   f"fully invested: all ${equity:,.0f} of equity in the asset, fees and slippage once"),
            Walked(cross, f"ma_cross ({position})", f"{position}, long above the slow average, short below")]


def _decision_row(step: Step) -> dict[str, Any]:
    """A decision's record, flagged when its BUY or SELL traded nothing: the position was already so."""
    return {**step.record, "already_held": step.already_held}


def _summary(walked: Walked, bars: Bars, horizon: int, costs: Costs, yearly: Annualisation) -> dict[str, Any]:
    run = walked.run
    row = summarise(run, bars, horizon, costs)
    row.update(curve_stats(run.equity, run.units, bars.interval, per_year=yearly.bars_per_year))
    row["label"], row["sizing"] = walked.label, walked.sizing
    row["already_held"] = sum(s.already_held for s in run.steps)
    pipeline = run.name.startswith("pipeline")
    failed = sum(1 for s in run.steps if _failed_stages(s.record)) if pipeline else None
    row["failed_decisions"] = failed
    row["failed_share"] = failed / len(run.steps) if failed is not None and run.steps else None
    row["return_on_ai_spend_unit"] = RETURN_ON_AI_SPEND_UNIT
    if run.name == "pipeline_adaptive":
        # It asks the fixed run's questions again; the engine's cache answers many of them for
        # free, so its spend is not comparable and its return on spend would flatter it.
        row["return_on_ai_spend"] = None
        row["note"] = "AI spend understated: answers shared with the fixed-weight run through the cache"
    return row


def _failed_stages(record: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in record.get("stages", ()) if s.get("status") == "error"]


def failure_summary(records: list[dict[str, Any]], *, allowed_share: float) -> dict[str, Any]:
    """Failed stages (status "error"; skipped is not failure) per decision, stage, error kind and cap.

    `exceeded` is True when the share of decisions with a failed stage is above `allowed_share`;
    `message` then says in one line what failed and why (for budget refusals, which cap).
    """
    failed = [_failed_stages(r) for r in records]
    stages = [s for f in failed for s in f]
    n, hit = len(records), sum(1 for f in failed if f)
    share = hit / n if n else 0.0
    first = next((f"{s['stage']}: {s.get('error', '')}" for s in stages), None)
    summary: dict[str, Any] = {
        "decisions": n, "failed_decisions": hit, "failed_share": share, "failed_stages": len(stages),
        "by_stage": _counts(s["stage"] for s in stages),
        "by_kind": _counts(s.get("error_kind") or _kind_of(str(s.get("error", ""))) for s in stages),
        "by_cap": _counts(s["cap"] for s in stages if s.get("cap")),
        "first_error": first, "allowed_share": allowed_share, "exceeded": share > allowed_share,
    }
    summary["message"] = failure_message(summary) if summary["exceeded"] else None
    return summary


def failure_message(summary: dict[str, Any]) -> str:
    """One line: how many decisions failed, against what was allowed, by kind, cap and stage."""
    kinds = ", ".join(f"{kind} {count}" for kind, count in summary["by_kind"].items())
    caps = ", ".join(f"{cap} {count}" for cap, count in summary["by_cap"].items())
    stages = ", ".join(f"{stage} {count}" for stage, count in summary["by_stage"].items())
    first = " ".join(str(summary["first_error"] or "").split())
    first = first if len(first) <= 240 else first[:239] + "…"
    return (f"{summary['failed_decisions']} of {summary['decisions']} decisions "
            f"({summary['failed_share']:.1%}) had a failed stage, more than the "
            f"{summary['allowed_share']:.1%} allowed (max_failed_share): {kinds}"
            + (f"; refused by budget cap {caps}" if caps else "") + f"; stages: {stages}; first: {first}")


def describe_failures(summary: dict[str, Any]) -> str:
    """The failed stages in one line for a table's foot: by stage, error kind and budget cap."""
    if not summary["failed_stages"]:
        return f"failed stages: none in {summary['decisions']} decisions"
    parts = [", ".join(f"{k} {v}" for k, v in summary[key].items())
             for key in ("by_stage", "by_kind", "by_cap")]
    return (f"failed stages: {summary['failed_stages']} in {summary['failed_decisions']} of "
            f"{summary['decisions']} decisions ({summary['failed_share']:.1%}; allowed "
            f"{summary['allowed_share']:.1%}): by stage {parts[0]}; by kind {parts[1]}"
            + (f"; by budget cap {parts[2]}" if parts[2] else ""))


def _counts(items: Iterable[str]) -> dict[str, int]:
    return dict(collections.Counter(items).most_common())


def _kind_of(error: str) -> str:
    head = error.split(":", 1)[0]
    return head if head.isidentifier() else "Error"


def _spacing(bars: Bars, times: list[pd.Timestamp]) -> int:
    """The spacing between decisions in bars (the default horizon: the period a signal is held)."""
    if len(times) < 2:
        return 1
    index = bars.frame.index
    return max(1, int(index.get_loc(times[1]) - index.get_loc(times[0])))


def _curve(equity: pd.Series) -> list[list[Any]]:
    return [[t.isoformat(), round(float(v), 2)] for t, v in equity.items()]


def _price_curve(bars: Bars, first: pd.Timestamp) -> list[list[Any]]:
    """The closes the walk marked at, from the first decision to the window's end."""
    closes = bars.frame["close"]
    return [[t.isoformat(), float(v)] for t, v in closes[closes.index >= first].items()]


def _fill_row(fill: Fill) -> dict[str, Any]:
    """One of the pipeline's fills: when, signed units, the price paid (slippage included), fee, why."""
    return {"time": fill.time.isoformat(), "units": fill.units, "price": fill.price, "fee": fill.fee,
            "reason": fill.reason}


def _spend_curve(steps: list[Step]) -> list[list[Any]]:
    total, out = 0, []
    for step in steps:
        total += step.cost_nanos
        out.append([step.time.isoformat(), total])
    return out



def estimate_cost_nanos(lyra: Lyra, decisions: int, *, signal_panel: str = SIGNAL_PANEL,
                        final_panel: str = FINAL_PANEL) -> int:
    """An upper bound of what a backtest will spend: every stage of every decision, at listed prices.

    It assumes each decision proposes a trade (risk, final panel and monitoring all run) and that
    the final panel escalates; cache hits and holds make the real figure lower.
    """
    s = lyra.settings
    per_decision = sum(_stage_nanos(lyra, one) for one in single_calls())
    for name in dict.fromkeys((signal_panel, final_panel)):
        panel = s.panels.get(name)
        if panel is None:
            continue
        task = s.tasks.get(panel.task)
        prompt = task.expected_prompt_tokens if task is not None else 700
        per_decision += sum(_call_nanos(lyra.catalog, m.model, prompt, panel.max_tokens)
                            for m in panel.members)
    return per_decision * decisions


def _stage_nanos(lyra: Lyra, one: Stage) -> int:
    """One single-call stage at its first model's list price: its task's expected tokens, or its own."""
    s = lyra.settings
    task = s.tasks.get(one.task) if one.task is not None else None
    tier = one.routed_tier(s)
    models = (task.models if task is not None else ()) or (s.tiers[tier].models if tier in s.tiers else [])
    if not models:
        return 0
    prompt = task.expected_prompt_tokens if task is not None else 700
    completion = one.max_tokens or (task.expected_completion_tokens if task is not None else 200)
    return _call_nanos(lyra.catalog, models[0], prompt, completion)


def _call_nanos(catalog: Catalog, model: str, prompt_tokens: int, completion_tokens: int) -> int:
    info = catalog.find(model)
    return info.cost_nanos(prompt_tokens, completion_tokens, round_up=True) if info is not None else 0


__all__ = ["FULLY_INVESTED", "RETURN_ON_AI_SPEND_DEFINITION", "RETURN_ON_AI_SPEND_UNIT", "BacktestOptions",
           "ReplayMismatch", "anonymise", "cutoff_warnings", "decision_record", "describe_failures",
           "estimate_cost_nanos", "failure_message", "failure_summary", "fully_invested", "pipeline_decider",
           "probe_lookahead", "return_on_ai_spend_example", "run_backtest", "track_record", "window_bars"]
