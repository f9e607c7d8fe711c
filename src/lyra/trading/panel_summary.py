"""The panel study in a backtest: collect votes, compute baselines, walk each with the same fills and fees."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from lyra.engine import Lyra
from lyra.trading.backtest import Costs, summarise, walk
from lyra.trading.data import Bars
from lyra.trading.panel_baselines import LABELS, STRATEGIES, StudyResult, choice_decider, evaluate, same_share
from lyra.trading.panel_study import StudyOptions, collect, sampled_model


async def run_study(lyra: Lyra, bars: Bars, times: list[pd.Timestamp], options: StudyOptions, *,
                    horizon: int, costs: Costs, notional: float,
                    feature_filter: Callable[[dict[str, Any]], dict[str, Any]] | None) -> dict[str, Any]:
    """The study's part of a backtest result: baselines (cost per decision, agreement) and calibration."""
    points = await collect(lyra, bars, times, options, feature_filter=feature_filter)
    model = sampled_model(lyra.settings, options)
    result = evaluate(points, bars, horizon, lyra.settings, cheap_panel=options.cheap_panel,
                      full_panel=options.full_panel, band=costs.round_trip, sampled_model=model)
    equity = lyra.settings.risk.account_equity_usd
    rows = []
    for name in STRATEGIES:
        run = await walk(name, choice_decider(times, result.choices[name].actions, notional), bars, times,
                         equity=equity, costs=costs)
        rows.append(_row(name, run_summary=summarise(run, bars, horizon, costs), result=result))
    return {
        "cheap_panel": options.cheap_panel, "full_panel": options.full_panel,
        "self_consistency": {"model": model, "samples": options.samples},
        "decisions": len(points), "times": [p.time.isoformat() for p in points],
        # Answers that were no vote (a failed call, a budget refusal, an abstention): they weigh nothing.
        "missing_votes": sum(1 for p in points for v in (*p.cheap, *p.full, *p.samples) if v.action is None),
        "asked": sum(len(p.cheap) + len(p.full) + len(p.samples) for p in points),
        "calibration_settings": lyra.settings.calibration.model_dump(),
        "baselines": rows,
        "cascade_probability": [None if t is None else round(t, 4)
                               for t in result.thresholds],
        "calibration": result.calibration,
        "diversity": result.diversity,
    }


def _row(name: str, *, run_summary: dict[str, Any], result: StudyResult) -> dict[str, Any]:
    choices = result.choices[name]
    full, calibrated = result.choices["full_panel"], result.choices["calibrated_panel"]
    spend, n = sum(choices.costs), len(choices.costs)
    full_spend = sum(full.costs)
    return {
        "name": name, "label": LABELS[name], "decisions": n,
        "ai_spend_nanos": spend, "cost_per_decision_nanos": spend // n if n else 0,
        "spend_vs_full_panel": spend / full_spend if full_spend else None,
        "same_as_full_panel": same_share(choices.actions, full.actions),
        "same_as_calibrated_panel": same_share(choices.actions, calibrated.actions),
        "escalated": choices.escalated, "audited": choices.audited,
        "actions": {a: choices.actions.count(a) for a in ("BUY", "SELL", "HOLD")},
        "decided": list(choices.actions), "cost_nanos_by_decision": list(choices.costs),
        "accuracy": run_summary.get("accuracy"), "pnl_usd": run_summary["pnl_usd"],
        "trades": run_summary["trades"], "fees_usd": run_summary["fees_usd"],
        "total_return": run_summary.get("total_return"), "sharpe": run_summary.get("sharpe"),
    }


__all__ = ["run_study"]
