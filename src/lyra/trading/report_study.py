"""The panel study in the HTML report: baselines, calibration per model, reliability curves, diversity."""

from __future__ import annotations

import html
from typing import Any

from lyra.money import format_usd
from lyra.trading.svg_chart import COLOURS, WIDTH


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _table(table_id: str, head: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    cells = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows)
    return (f"<table id='{table_id}'><tr>{''.join(f'<th>{html.escape(h)}</th>' for h in head)}</tr>"
            f"{cells}</table>")


def _calibration_row(r: dict[str, Any]) -> tuple[str, ...]:
    per = r["cost_per_correct_nanos"]
    return (r["model"], _pct(r["hit_rate"]), _num(r["brier_stated"]), _num(r["brier_calibrated"]),
            _num(r["ece_stated"]), _num(r["ece_calibrated"]), format_usd(r["cost_nanos"]),
            "-" if per is None else format_usd(per))


def reliability_chart(row: dict[str, Any], size: int = 180) -> str:
    """A small SVG reliability diagram: observed rate against mean probability, stated and calibrated."""
    lines = []
    for key, colour in (("reliability_stated", COLOURS[1]), ("reliability_calibrated", COLOURS[0])):
        points = [(b["mean_p"], b["observed"]) for b in row[key] if b["count"]]
        path = " ".join(f"{10 + p * (size - 20):.1f},{size - 10 - o * (size - 20):.1f}" for p, o in points)
        lines.append(f"<polyline fill='none' stroke='{colour}' stroke-width='2' points='{path}'/>")
    diagonal = f"<line x1='10' y1='{size - 10}' x2='{size - 10}' y2='10' stroke='#999' stroke-dasharray='4'/>"
    return (f"<svg xmlns='http://www.w3.org/2000/svg' width='{size}' height='{size}' role='img' "
            f"data-model='{html.escape(row['model'])}'><title>{html.escape(row['model'])}</title>"
            f"{diagonal}{''.join(lines)}</svg>")


def study_section(study: dict[str, Any] | None) -> str:
    """The baselines beside the full panel and the calibration figures, or nothing without a study."""
    if not study:
        return ""
    base = _table("panel-baselines", ("baseline", "AI spend", "cost per decision", "spend vs full panel",
                                      "same as full panel", "escalated", "audited", "signal accuracy", "P&L",
                                      "trades"),
                  [(r["label"], format_usd(r["ai_spend_nanos"]), format_usd(r["cost_per_decision_nanos"]),
                    _pct(r["spend_vs_full_panel"]), _pct(r["same_as_full_panel"]), str(r["escalated"]),
                    str(r["audited"]), _pct(r["accuracy"]), f"{r['pnl_usd']:,.2f}", str(r["trades"]))
                   for r in study["baselines"]])
    calibration = _table("calibration", ("model", "hit rate", "Brier stated", "Brier calibrated",
                                         "ECE stated", "ECE calibrated", "AI spend", "cost per correct call"),
                         [_calibration_row(r) for r in study["calibration"]])
    charts = "".join(reliability_chart(r) for r in study["calibration"])
    diversity = "".join(
        f"<p data-panel='{name}'>{name} panel: {p['members']} members, mean pairwise error correlation "
        f"{_num(p['mean_error_correlation'])}, wrong together agree {_pct(p['mean_error_agreement'])}: worth "
        f"{p['effective_voters']:.2f} independent voters.</p>" for name, p in study["diversity"].items())
    missing = (f"<p><strong>{study['missing_votes']} of {study['asked']} study answers were no vote (failed, "
               "refused by a budget cap or abstained); they weigh nothing.</strong></p>"
               if study["missing_votes"] else "")
    sc = study["self_consistency"]
    return (f"<h2>Baselines beside the panel ({study['decisions']} decisions, same fills and fees)</h2>{base}"
            f"{missing}"
            f"<p><small>Self-consistency: {html.escape(sc['model'])} sampled {sc['samples']} times. Every "
            f"baseline is computed from the votes of every member of both panels on each decision, at its "
            f"own members' costs.</small></p><h2>Calibration per model (walk-forward)</h2>{calibration}"
            f"<div style='max-width:{WIDTH}px'>{charts}</div><p><small>Reliability: observed rate of a rise "
            f"against the mean probability per bin; dashed: perfect calibration; orange stated, blue "
            f"calibrated.</small></p>{diversity}")


__all__ = ["reliability_chart", "study_section"]
