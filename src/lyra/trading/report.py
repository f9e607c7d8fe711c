"""A backtest as one self-contained HTML page, read like a tearsheet: inline SVG charts, no scripts."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import pandas as pd

from lyra.money import format_usd
from lyra.trading.report_study import study_section
from lyra.trading.svg_chart import COLOURS, WIDTH, Marker, Series, line_chart, ns
from lyra.trading.tearsheet import drawdown_periods, monthly_returns, yearly_returns

_W = WIDTH
_COLOURS = COLOURS


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
    yearly = html.escape(result.get("annualisation", {}).get("text", ""))
    x_range = _time_range(curves, result.get("prices") or [])
    pipeline = curves.get("pipeline") or next(iter(curves.values()), [])
    warnings = "".join(f"<li>{html.escape(x)}</li>" for x in grouped_warnings(result["warnings"]))
    prompts = ("anonymised" if result["anonymised"] else "with dates") + (
        "; simulated models" if result["simulated"] else "")
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:24px;max-width:1100px}}td,th{{padding:2px 8px;
text-align:right}}th:first-child,td:first-child{{text-align:left}}table{{border-collapse:collapse;
margin:8px 0}}tr:nth-child(even){{background:#f0f0f0}}td.up{{color:#1a7f37}}td.down{{color:#c62828}}
#monthly-returns td,#monthly-returns th{{padding:2px 5px;font-size:13px}}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{w['decisions']} decisions every {w['every']} bars, scored over {w['horizon']}; fills at the next open,
{costs['fee_bps']} bps fees, {costs['slippage_bps']} bps slippage; prompts {prompts}. Sharpe and annual
return: {yearly}.</p>
{_strategy_table(result["strategies"])}
<p><small><sup>1</sup> {html.escape(_roas_footnote(result))}.</small></p>
{_failures(result.get("failures"))}
{line_chart("Price and the pipeline's trades", _price_lines(result), usd=True, x_range=x_range,
            markers=_trade_markers(result.get("fills") or []), chart_id="chart-price")}
{line_chart("Equity", curves, usd=True, x_range=x_range, chart_id="chart-equity")}
{line_chart("Drawdown", {k: drawdowns(v) for k, v in curves.items()}, percent=True, x_range=x_range,
            chart_id="chart-drawdown")}
{line_chart("Cumulative AI spend (USD)", {"pipeline": _spend_to_end(result, x_range)}, usd=True,
            x_range=x_range, chart_id="chart-spend")}
{_monthly_table(curves)}
{_drawdown_table(pipeline)}
{_member_table(result["track_record"])}
{study_section(result.get("panel_study"))}
{f"<h2>Warnings</h2><ul>{warnings}</ul>" if warnings else ""}</body></html>
"""


_MEASURES = (
    ("sizing", "sizing", "text", ""), ("accuracy", "signal accuracy", "pct", ""),
    ("profitable_share", "profitable", "pct", ""), ("total_return", "total return", "pct", ""),
    ("annualised_return", "annual return", "pct", ""), ("sharpe", "Sharpe", "num", ""),
    ("max_drawdown", "max drawdown", "pct", ""), ("worst_daily_drawdown", "worst day", "pct", ""),
    ("exposure", "exposure", "pct", ""), ("trades", "trades", "int", ""),
    ("already_held", "already held", "int",
     "BUY or SELL signals that traded nothing: the position was already so"),
    ("failed_decisions", "failed decisions", "int",
     "decisions with a failed stage (a budget refusal, an outage): such a decision holds"),
    ("ai_spend_nanos", "AI spend", "usd", ""),
    ("return_on_ai_spend", "return on AI spend (P&L $ per $1 of AI spend)<sup>1</sup>", "num", ""),
)  # fmt: skip


def _strategy_table(strategies: list[dict[str, Any]]) -> str:
    """The pipeline and each baseline side by side: one column each, one measure a row."""
    head = "".join(f"<th data-strategy='{html.escape(s['name'])}'>"
                   f"{html.escape(s.get('label', s['name']))}</th>" for s in strategies)
    rows = []
    for key, label, kind, tip in _MEASURES:
        name = html.escape(label).replace("&lt;sup&gt;1&lt;/sup&gt;", "<sup>1</sup>")
        hint = f" title='{html.escape(tip)}'" if tip else ""
        cells = "".join(f"<td data-key='{key}'>{_value(s.get(key), kind)}</td>" for s in strategies)
        rows.append(f"<tr><td{hint}>{name}</td>{cells}</tr>")
    return f"<table id='strategies'><tr><th>measure</th>{head}</tr>{''.join(rows)}</table>"


def _value(value: Any, kind: str) -> str:
    if value is None:
        return "-"
    if kind == "pct":
        return _pct(value)
    if kind == "num":
        return f"{value:,.2f}"
    if kind == "usd":
        return format_usd(int(value))
    return html.escape(str(value))


def _time_range(curves: dict[str, Series], prices: Series) -> tuple[int, int] | None:
    """The one time axis every chart shares: the walk's first to last bar."""
    times = [ns(t) for s in curves.values() for t, _ in s] + [ns(t) for t, _ in prices]
    return (min(times), max(times)) if times else None


def _spend_to_end(result: dict[str, Any], x_range: tuple[int, int] | None) -> list[list[Any]]:
    """Cumulative AI spend in USD, held flat from the last decision to the end of the window."""
    spend = [[t, v / 1e9] for t, v in result["spend_curve"]]
    if spend and x_range is not None and ns(spend[-1][0]) < x_range[1]:
        end = pd.Timestamp(x_range[1], tz="UTC").isoformat()
        spend.append([end, spend[-1][1]])
    return spend


def _price_lines(result: dict[str, Any]) -> dict[str, Series]:
    prices = result.get("prices") or []
    return {f"{result['symbol']} close": prices} if prices else {}


def _trade_markers(fills: list[dict[str, Any]]) -> list[Marker]:
    """A marker per fill, at the price it filled at (slippage included)."""
    return [Marker(time=f["time"], value=float(f["price"]), side=1 if f["units"] > 0 else -1,
                   label=f"{'bought' if f['units'] > 0 else 'sold'} {abs(f['units']):,.4f} at "
                         f"${f['price']:,.2f} ({f['reason']}) {f['time'][:10]}") for f in fills]


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _monthly_table(curves: dict[str, Series]) -> str:
    """Each strategy's return in each calendar month (a row a year), and each year compounded."""
    rows = []
    for name, curve in curves.items():
        monthly = monthly_returns(curve)
        years = yearly_returns(monthly)
        for year in sorted(years):
            cells = []
            for month in range(1, 13):
                r = monthly.get((year, month))
                cells.append("<td></td>" if r is None else
                             f"<td class='{'up' if r >= 0 else 'down'}' data-strategy='{html.escape(name)}' "
                             f"data-year='{year}' data-month='{month}' data-return='{r!r}'>{_pct(r)}</td>")
            rows.append(f"<tr><td>{html.escape(name)}</td><td>{year}</td>{''.join(cells)}"
                        f"<td data-strategy='{html.escape(name)}' data-year-total='{year}'>"
                        f"{_pct(years[year])}</td></tr>")
    if not rows:
        return ""
    head = "".join(f"<th>{m}</th>" for m in _MONTHS)
    return (f"<h2>Monthly returns</h2><table id='monthly-returns'><tr><th>strategy</th><th>year</th>{head}"
            f"<th>year</th></tr>{''.join(rows)}</table>")


def _drawdown_table(curve: Series) -> str:
    """The pipeline's deepest drawdown periods: peak, trough, recovery, depth and length."""
    periods = drawdown_periods(curve)
    if not periods:
        return "<h2>Drawdown periods (pipeline)</h2><p>none: the equity never fell below a peak</p>"
    rows = "".join(f"<tr data-depth='{p.depth!r}'><td>{p.start[:10]}</td><td>{p.trough[:10]}</td>"
                   f"<td>{p.recovery[:10] if p.recovery else 'not recovered'}</td><td>{_pct(p.depth)}</td>"
                   f"<td>{p.bars}</td></tr>" for p in periods)
    return (f"<h2>Drawdown periods (pipeline, deepest {len(periods)})</h2><table id='drawdown-periods'><tr>"
            f"<th>peak</th><th>trough</th><th>recovery</th><th>depth</th><th>bars</th></tr>{rows}</table>")


def _member_table(track: list[dict[str, Any]]) -> str:
    """Each panel member's record, as the CLI's track record table prints it."""
    rows = []
    for r in track:
        per = r["cost_per_correct_nanos"]
        cells = (r["model"], str(r["votes"]), str(r["calls"]), _pct(r["accuracy"]),
                 "-" if r["brier"] is None else f"{r['brier']:.2f}", format_usd(r["cost_nanos"]),
                 "-" if per is None else format_usd(per))
        rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    names = ("model", "votes", "BUY/SELL calls", "accuracy", "Brier", "AI spend", "cost per correct call")
    head = "".join(f"<th>{c}</th>" for c in names)
    return (f"<h2>Track record per panel member</h2><table id='members'><tr>{head}</tr>"
            f"{''.join(rows)}</table>"
            "<p><small>Brier: mean squared error of the probability of a rise each vote implied (0 is "
            "perfect, 0.25 a coin toss).</small></p>")


_CUTOFF = re.compile(r"(?P<model>\S+): knowledge cutoff (?P<cutoff>\S+) is after the window start "
                     r"(?P<start>\S+); it may remember what happened next")


def grouped_warnings(warnings: list[str]) -> list[str]:
    """The warnings, those about training cutoffs after the window's start folded into one line."""
    cutoffs = [m for m in map(_CUTOFF.fullmatch, warnings) if m is not None]
    rest = [w for w in warnings if _CUTOFF.fullmatch(w) is None]
    if len(cutoffs) < 2:
        return warnings
    models = ", ".join(f"{m['model']} ({m['cutoff']})" for m in cutoffs)
    return [f"{len(cutoffs)} models were trained on data past the window start {cutoffs[0]['start']} and may "
            f"remember what happened next: {models}", *rest]


def _roas_footnote(result: dict[str, Any]) -> str:
    """The definition of return on AI spend, with what the pipeline's figure means in words."""
    from lyra.trading.evaluate import RETURN_ON_AI_SPEND_DEFINITION, return_on_ai_spend_example

    text = result.get("return_on_ai_spend_definition", RETURN_ON_AI_SPEND_DEFINITION)
    values = [s["return_on_ai_spend"] for s in result["strategies"]]
    value = next((v for v in values if v is not None), None)
    return f"{text}; {return_on_ai_spend_example(float(value))}" if value is not None else text


def _failures(failures: dict[str, Any] | None) -> str:
    """The failed stages of the pipeline's decisions, by stage, kind and budget cap."""
    if not failures or not (failures.get("failed_decisions") or failures.get("message")):
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


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.2%}"


def write_report(result: dict[str, Any], path: Path) -> None:
    """Write the page to `path`."""
    path.write_text(render(result), encoding="utf-8")


__all__ = ["bar_chart", "drawdowns", "grouped_warnings", "line_chart", "render", "write_report"]
