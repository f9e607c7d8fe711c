"""The tables of `lyra backtest --baselines`: baselines, calibration per model, panel diversity."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from lyra.cli.common import FitTable
from lyra.money import format_usd


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def render_study(console: Console, study: dict[str, Any]) -> None:
    """Print the baselines beside the full panel, each model's calibration and the panels' error overlap."""
    base = FitTable(f"Baselines on the same {study['decisions']} decisions (cheap panel "
                    f"{study['cheap_panel']}, "
                    f"full panel {study['full_panel']}; same fills and fees)")
    for column, drop in (("baseline", 0), ("AI spend", 0), ("per decision", 0), ("vs full", 0),
                         ("same as full", 0), ("same as calibrated", 3), ("escalated", 2), ("audited", 4),
                         ("accuracy", 1), ("P&L", 1), ("trades", 5)):
        base.column(column, justify="left" if column == "baseline" else "right", whole=column != "baseline",
                    drop=drop)
    for row in study["baselines"]:
        base.row(row["label"], format_usd(row["ai_spend_nanos"]), format_usd(row["cost_per_decision_nanos"]),
                 _pct(row["spend_vs_full_panel"]), _pct(row["same_as_full_panel"]),
                 _pct(row["same_as_calibrated_panel"]), str(row["escalated"]), str(row["audited"]),
                 _pct(row["accuracy"]), f"{row['pnl_usd']:,.2f}", str(row["trades"]))
    console.print(base)
    if study["missing_votes"]:
        console.print(f"[yellow]warning:[/yellow] {study['missing_votes']} of {study['asked']} study answers "
                      "were no vote (failed, refused by a budget cap or abstained); they weigh nothing")
    sc = study["self_consistency"]
    console.print(f"self-consistency: {sc['model']} sampled {sc['samples']} times (seeds 1..{sc['samples']})",
                  markup=False)
    cal = FitTable("Calibration per model (walk-forward; probability of a rise)")
    for column, drop in (("model", 0), ("hit rate", 0), ("Brier stated", 0), ("Brier calibrated", 0),
                         ("ECE stated", 1), ("ECE calibrated", 1), ("cost", 2), ("cost/correct", 0)):
        cal.column(column, justify="left" if column == "model" else "right", whole=column != "model",
                   drop=drop)
    for row in study["calibration"]:
        per = row["cost_per_correct_nanos"]
        cal.row(row["model"], _pct(row["hit_rate"]), _num(row["brier_stated"]), _num(row["brier_calibrated"]),
                _num(row["ece_stated"]), _num(row["ece_calibrated"]), format_usd(row["cost_nanos"]),
                format_usd(per) if per is not None else "-")
    console.print(cal)
    for name, panel in study["diversity"].items():
        console.print(f"{name} panel: {panel['members']} members, mean pairwise error correlation "
                      f"{_num(panel['mean_error_correlation'], 2)}, wrong together agree "
                      f"{_pct(panel['mean_error_agreement'])}: worth {panel['effective_voters']:.2f} "
                      "independent voters", markup=False)
