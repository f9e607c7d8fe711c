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
    rows = "".join(
        f"<tr><td>{html.escape(s['name'])}</td><td>{_pct(s['accuracy'])}</td><td>{_pct(s['profitable_share'])}"
        f"</td><td>{_pct(s['total_return'])}</td><td>{_pct(s['annualised_return'])}</td><td>{s['sharpe']:.2f}"
        f"</td><td>{_pct(s['max_drawdown'])}</td><td>{_pct(s['worst_daily_drawdown'])}</td>"
        f"<td>{_pct(s['exposure'])}</td><td>{s['trades']}</td>"
        f"<td>${s['ai_spend_nanos'] / 1e9:,.4f}</td></tr>"
        for s in result["strategies"])
    spend = [[t, v / 1e9] for t, v in result["spend_curve"]]
    accuracy = {r["model"]: r["accuracy"] for r in result["track_record"]}
    warnings = "".join(f"<li>{html.escape(x)}</li>" for x in result["warnings"])
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:24px;max-width:1100px}}td,th{{padding:2px 8px;
text-align:right}}td:first-child{{text-align:left}}table{{border-collapse:collapse}}tr:nth-child(even)
{{background:#f0f0f0}}</style></head><body><h1>{html.escape(title)}</h1>
<p>{w['decisions']} decisions every {w['every']} bars, signals scored over {w['horizon']} bars;
fills at the next bar's open with {costs['fee_bps']} bps fees and {costs['slippage_bps']} bps slippage;
prompts {'anonymised' if result['anonymised'] else 'with dates'}{'; simulated models' if result['simulated']
else ''}.</p>
<table><tr><th>strategy</th><th>signal accuracy</th><th>profitable</th><th>total</th><th>annual</th>
<th>Sharpe</th><th>max DD</th><th>worst day</th><th>exposure</th><th>trades</th><th>AI spend</th></tr>{rows}
</table>
{line_chart("Equity", curves)}
{line_chart("Drawdown", {k: drawdowns(v) for k, v in curves.items()}, percent=True)}
{line_chart("Cumulative AI spend (USD)", {"pipeline": spend})}
{bar_chart("Accuracy per panel member (BUY/SELL votes)", accuracy)}
<h2>Look-ahead warnings</h2><ul>{warnings or "<li>none</li>"}</ul></body></html>
"""


def _ns(t: Any) -> int:
    """Nanoseconds since the epoch of a time."""
    return int(pd.Timestamp(t).value)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


def write_report(result: dict[str, Any], path: Path) -> None:
    """Write the page to `path`."""
    path.write_text(render(result), encoding="utf-8")


__all__ = ["bar_chart", "drawdowns", "line_chart", "render", "write_report"]
