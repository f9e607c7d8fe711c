"""A backtest as one self-contained HTML page: inline SVG charts, no scripts, no external files."""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

_W, _H, _PAD = 860, 260, 44
_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")
Series = Sequence[Sequence[Any]]  # [[iso time, value], ...]


def line_chart(title: str, lines: dict[str, Series], *, percent: bool = False) -> str:
    """An SVG line chart of time series sharing one time axis."""
    points = [(_ns(t), float(v)) for s in lines.values() for t, v in s]
    if not points:
        return f"<h2>{html.escape(title)}</h2><p>no data</p>"
    x0, x1 = min(p[0] for p in points), max(p[0] for p in points)
    y0, y1 = min(p[1] for p in points), max(p[1] for p in points)
    y0, y1 = (y0 - 1, y1 + 1) if y0 == y1 else (y0, y1)

    def xy(t: Any, v: float) -> str:
        x = _PAD + (_ns(t) - x0) / max(1, x1 - x0) * (_W - 2 * _PAD)
        y = _H - _PAD - (v - y0) / (y1 - y0) * (_H - 2 * _PAD)
        return f"{x:.1f},{y:.1f}"

    paths = [f'<polyline fill="none" stroke="{_COLOURS[i % len(_COLOURS)]}" stroke-width="1.5" '
             f'points="{" ".join(xy(t, float(v)) for t, v in s)}"/>' for i, s in enumerate(lines.values())]
    spec = ".1%" if percent else ",.2f"

    def fmt(v: float) -> str:
        return format(v, spec)

    axis = (f'<text x="4" y="{_PAD}" font-size="11">{fmt(y1)}</text>'
            f'<text x="4" y="{_H - _PAD}" font-size="11">{fmt(y0)}</text>'
            f'<text x="{_PAD}" y="{_H - 12}" font-size="11">{pd.Timestamp(x0).date()}</text>'
            f'<text x="{_W - _PAD - 70}" y="{_H - 12}" font-size="11">{pd.Timestamp(x1).date()}</text>')
    legend = "".join(f'<text x="{_PAD + 10 + 170 * i}" y="16" font-size="12" '
                     f'fill="{_COLOURS[i % len(_COLOURS)]}">{html.escape(name)}</text>'
                     for i, name in enumerate(lines))
    return (f"<h2>{html.escape(title)}</h2><svg xmlns='http://www.w3.org/2000/svg' width='{_W}' "
            f"height='{_H}' role='img'><rect width='100%' height='100%' fill='#fafafa'/>"
            f"{axis}{legend}{''.join(paths)}</svg>")


def bar_chart(title: str, bars: dict[str, float | None]) -> str:
    """Horizontal SVG bars of shares in 0..1, one per label (missing values drawn as '-')."""
    height = 26 * len(bars) + 20
    rows = []
    for i, (label, value) in enumerate(bars.items()):
        y = 10 + 26 * i
        width = (value or 0.0) * (_W - 360)
        text = "-" if value is None else f"{value:.1%}"
        rows.append(f'<text x="4" y="{y + 14}" font-size="12">{html.escape(label)}</text>'
                    f'<rect x="300" y="{y}" width="{width:.1f}" height="18" fill="{_COLOURS[0]}"/>'
                    f'<text x="{306 + width:.1f}" y="{y + 14}" font-size="12">{text}</text>')
    return (f"<h2>{html.escape(title)}</h2><svg xmlns='http://www.w3.org/2000/svg' width='{_W}' "
            f"height='{height}' role='img'>{''.join(rows)}</svg>")


def drawdowns(curve: Series) -> list[list[Any]]:
    """The fall from the running peak at each point, as a negative fraction."""
    peak, out = float("-inf"), []
    for t, v in curve:
        peak = max(peak, float(v))
        out.append([t, float(v) / peak - 1 if peak > 0 else 0.0])
    return out


def render(result: dict[str, Any]) -> str:
    """The whole page for one backtest result (as `run_backtest` returns it)."""
    curves: dict[str, Series] = result["curves"]
    w, costs = result["window"], result["costs"]
    title = f"Lyra backtest: {result['symbol']} {w['start'][:10]} .. {w['end'][:10]}"
    rows = "".join(_strategy_row(s) for s in result["strategies"])
    spend = [[t, v / 1e9] for t, v in result["spend_curve"]]
    accuracy = {r["model"]: r["accuracy"] for r in result["track_record"]}
    warnings = "".join(f"<li>{html.escape(x)}</li>" for x in result["warnings"])
    yearly = html.escape(result.get("annualisation", {}).get("text", ""))
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:24px;max-width:1100px}}td,th{{padding:2px 8px;
text-align:right}}td:first-child,td.sizing{{text-align:left}}table{{border-collapse:collapse}}tr:nth-child(even)
{{background:#f0f0f0}}</style></head><body><h1>{html.escape(title)}</h1>
<p>{w['decisions']} decisions every {w['every']} bars, signals scored over {w['horizon']} bars;
fills at the next bar's open with {costs['fee_bps']} bps fees and {costs['slippage_bps']} bps slippage;
prompts {'anonymised' if result['anonymised'] else 'with dates'}{'; simulated models' if result['simulated']
else ''}. Sharpe and annual return: {yearly}.</p>
<table><tr><th>strategy</th><th>sizing</th><th>signal accuracy</th><th>profitable</th><th>total</th>
<th>annual</th><th>Sharpe</th><th>max DD</th><th>worst day</th><th>exposure</th><th>trades</th>
<th>already held</th><th>failed decisions</th><th>AI spend</th>
<th>return on AI spend (P&amp;L $ per $1 of AI spend)<sup>1</sup></th></tr>{rows}
</table>
<p><small><sup>1</sup> {html.escape(_roas_footnote(result))}. "already held": BUY or SELL signals that
traded nothing because the position was already that way. "failed decisions": decisions with a stage
that failed (a budget refusal, an outage); such a decision holds, whatever the models would have said.
</small></p>
{_failures(result.get("failures"))}
{line_chart("Equity", curves)}
{line_chart("Drawdown", {k: drawdowns(v) for k, v in curves.items()}, percent=True)}
{line_chart("Cumulative AI spend (USD)", {"pipeline": spend})}
{bar_chart("Accuracy per panel member (BUY/SELL votes)", accuracy)}
<h2>Warnings</h2><ul>{warnings or "<li>none</li>"}</ul></body></html>
"""


def _strategy_row(s: dict[str, Any]) -> str:
    failed = s.get("failed_decisions")
    roas = s.get("return_on_ai_spend")
    return (f"<tr><td>{html.escape(s.get('label', s['name']))}</td>"
            f"<td class='sizing'>{html.escape(s.get('sizing', ''))}</td><td>{_pct(s['accuracy'])}</td>"
            f"<td>{_pct(s['profitable_share'])}</td><td>{_pct(s['total_return'])}</td>"
            f"<td>{_pct(s['annualised_return'])}</td><td>{s['sharpe']:.2f}</td><td>{_pct(s['max_drawdown'])}</td>"
            f"<td>{_pct(s['worst_daily_drawdown'])}</td><td>{_pct(s['exposure'])}</td><td>{s['trades']}</td>"
            f"<td>{s.get('already_held', 0)}</td><td>{'-' if failed is None else failed}</td>"
            f"<td>${s['ai_spend_nanos'] / 1e9:,.4f}</td>"
            f"<td>{'-' if roas is None else f'{roas:,.2f}'}</td></tr>")


def _roas_footnote(result: dict[str, Any]) -> str:
    """The definition of return on AI spend, with what the pipeline's figure means in words."""
    from lyra.trading.evaluate import RETURN_ON_AI_SPEND_DEFINITION, return_on_ai_spend_example

    text = result.get("return_on_ai_spend_definition", RETURN_ON_AI_SPEND_DEFINITION)
    values = [s["return_on_ai_spend"] for s in result["strategies"]]
    value = next((v for v in values if v is not None), None)
    return f"{text}; {return_on_ai_spend_example(float(value))}" if value is not None else text


def _failures(failures: dict[str, Any] | None) -> str:
    """The failed stages of the pipeline's decisions, by stage, kind and budget cap."""
    if not failures:
        return ""
    head = (f"<h2>Failed stages</h2><p>{failures['failed_decisions']} of {failures['decisions']} "
            f"decisions ({failures['failed_share']:.1%}) had a failed stage ({failures['failed_stages']} "
            f"stages in all); at most {failures['allowed_share']:.1%} allowed.</p>")
    if failures.get("message"):
        head += f"<p><strong>{html.escape('This run failed: ' + failures['message'])}</strong></p>"
    parts = (("stage", "by_stage"), ("error kind", "by_kind"), ("budget cap", "by_cap"))
    tables = "".join(_count_table(title, failures.get(key) or {}) for title, key in parts)
    return head + tables


def _count_table(title: str, counts: dict[str, int]) -> str:
    if not counts:
        return ""
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v}</td></tr>" for k, v in counts.items())
    return f"<table><tr><th>{html.escape(title)}</th><th>failed</th></tr>{rows}</table>"


def _ns(t: Any) -> int:
    """Nanoseconds since the epoch of a time."""
    return int(pd.Timestamp(t).value)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


def write_report(result: dict[str, Any], path: Path) -> None:
    """Write the page to `path`."""
    path.write_text(render(result), encoding="utf-8")


__all__ = ["bar_chart", "drawdowns", "line_chart", "render", "write_report"]
