"""Inline SVG time-series charts with labelled axes, gridlines and trade markers (no scripts)."""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

WIDTH, HEIGHT = 860, 260
LEFT, RIGHT, TOP, BOTTOM = 76, 16, 28, 30
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")
Series = Sequence[Sequence[Any]]  # [[iso time, value], ...]
_MONTH_STEPS = (1, 2, 3, 6, 12, 24, 60, 120)
_DAY_STEPS = (1, 2, 5, 7, 14)


@dataclass(frozen=True, slots=True)
class Marker:
    """A trade drawn on a chart: when, at what value, and which way (+1 bought, -1 sold)."""

    time: str
    value: float
    side: int
    label: str = ""


def ns(t: Any) -> int:
    """Nanoseconds since the epoch of a time."""
    return int(pd.Timestamp(t).value)


def value_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values (1, 2 or 5 times a power of ten apart) covering lo..hi, at least three."""
    if hi <= lo:
        lo, hi = lo - 1, hi + 1
    raw = (hi - lo) / max(2, count - 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.floor(lo / step) * step
    ticks = [first + i * step for i in range(math.ceil((hi - first) / step) + 1)]
    while len(ticks) < 3:
        ticks.append(ticks[-1] + step)
    return [round(t, 12) for t in ticks]


def date_ticks(x0: int, x1: int, count: int = 8) -> list[pd.Timestamp]:
    """Calendar tick dates inside x0..x1 (ns): month starts, or days for short spans; at least three."""
    start, end = pd.Timestamp(x0, tz="UTC"), pd.Timestamp(x1, tz="UTC")
    months = (end.year - start.year) * 12 + end.month - start.month
    if months >= 3:
        step = next((m for m in _MONTH_STEPS if months / m <= count), _MONTH_STEPS[-1])
        first = pd.Timestamp(year=start.year, month=1, day=1, tz="UTC")
        ticks = [t for t in pd.date_range(first, end, freq=pd.DateOffset(months=step)) if t >= start]
    else:
        days = max(1, (end - start).days)
        step = next((d for d in _DAY_STEPS if days / d <= count), max(1, days // count))
        ticks = list(pd.date_range(start.normalize(), end, freq=f"{step}D"))
        ticks = [t for t in ticks if t >= start]
    if len(ticks) < 3:  # under a few days: hours
        hours = max(1, -(-(x1 - x0) // (3_600 * 10**9 * count)))
        ticks = [t for t in pd.date_range(start.floor("h"), end, freq=f"{hours}h") if t >= start]
    if len(ticks) < 3:
        ticks = [pd.Timestamp(x0 + (x1 - x0) * i // 3, tz="UTC") for i in range(4)]
    return ticks


def date_label(t: pd.Timestamp, spacing: pd.Timedelta) -> str:
    """A tick's label, as fine as the spacing between ticks needs: month, day or minute."""
    if spacing >= pd.Timedelta(days=28):
        return str(t.strftime("%b %Y"))
    return str(t.strftime("%Y-%m-%d" if spacing >= pd.Timedelta(days=1) else "%m-%d %H:%M"))


def line_chart(title: str, lines: dict[str, Series], *, percent: bool = False, usd: bool = False,
               x_range: tuple[int, int] | None = None, markers: Sequence[Marker] = (),
               chart_id: str = "") -> str:
    """An SVG line chart of time series on one time axis, with ticks and gridlines on both axes.

    `x_range` (ns) fixes the time axis so charts of one report line up; `markers` draw trades.
    """
    points = [(ns(t), float(v)) for s in lines.values() for t, v in s]
    points += [(ns(m.time), m.value) for m in markers]
    if not points:
        return f"<h2>{html.escape(title)}</h2><p>no data</p>"
    data_last = max(p[0] for p in points)
    x0, x1 = x_range or (min(p[0] for p in points), data_last)
    ys = value_ticks(min(p[1] for p in points), max(p[1] for p in points))
    y0, y1 = ys[0], ys[-1]
    inner_w, inner_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(t: int) -> float:
        return LEFT + (t - x0) / max(1, x1 - x0) * inner_w

    def py(v: float) -> float:
        return TOP + inner_h - (v - y0) / (y1 - y0) * inner_h

    fmt = _formatter(percent=percent, usd=usd, step=ys[1] - ys[0])
    grid = [f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{py(v):.1f}" y2="{py(v):.1f}" stroke="#ddd"/>'
            f'<text class="tick-y" x="{LEFT - 6}" y="{py(v) + 4:.1f}" font-size="11" '
            f'text-anchor="end">{html.escape(fmt(v))}</text>' for v in ys]
    dates = date_ticks(x0, x1)
    spacing = dates[1] - dates[0] if len(dates) > 1 else pd.Timedelta(days=1)
    day = spacing >= pd.Timedelta(days=1)
    grid += [f'<line x1="{px(ns(t)):.1f}" x2="{px(ns(t)):.1f}" y1="{TOP}" y2="{TOP + inner_h}" '
             f'stroke="#eee"/>'
             f'<text class="tick-x" data-time="{t.isoformat()[:10 if day else 16]}" x="{px(ns(t)):.1f}" '
             f'y="{HEIGHT - 10}" font-size="11" text-anchor="middle">{date_label(t, spacing)}</text>'
             for t in dates]
    frame = f'<rect x="{LEFT}" y="{TOP}" width="{inner_w}" height="{inner_h}" fill="none" stroke="#999"/>'
    paths = [f'<polyline fill="none" stroke="{COLOURS[i % len(COLOURS)]}" stroke-width="1.5" '
             f'points="{" ".join(f"{px(ns(t)):.1f},{py(float(v)):.1f}" for t, v in s)}"/>'
             for i, s in enumerate(lines.values())]
    legend = "".join(f'<text x="{LEFT + 8 + 190 * i}" y="16" font-size="12" '
                     f'fill="{COLOURS[i % len(COLOURS)]}">{html.escape(name)}</text>'
                     for i, name in enumerate(lines))
    marks = "".join(_marker(m, px(ns(m.time)), py(m.value)) for m in markers)
    if markers:
        legend += (f'<text x="{WIDTH - RIGHT - 150}" y="16" font-size="12"><tspan fill="#2ca02c">'
                   '&#9650; bought</tspan>  <tspan fill="#d62728">&#9660; sold</tspan></text>')
    attrs = (f' id="{html.escape(chart_id)}"' if chart_id else "") + (
        f' data-x-first="{_iso(x0)}" data-x-last="{_iso(x1)}" data-last-point="{_iso(data_last)}"')
    return (f"<h2>{html.escape(title)}</h2><svg xmlns='http://www.w3.org/2000/svg'{attrs} width='{WIDTH}' "
            f"height='{HEIGHT}' role='img'><rect width='100%' height='100%' fill='#fafafa'/>"
            f"{''.join(grid)}{frame}{legend}{''.join(paths)}{marks}</svg>")


def _marker(m: Marker, x: float, y: float) -> str:
    """An up triangle under a buy, a down triangle over a sell."""
    if m.side > 0:
        shape, colour, kind = f"M{x:.1f},{y:.1f} l-5,9 h10 z", "#2ca02c", "buy"
    else:
        shape, colour, kind = f"M{x:.1f},{y:.1f} l-5,-9 h10 z", "#d62728", "sell"
    tip = f"<title>{html.escape(m.label)}</title>" if m.label else ""
    return (f'<path class="trade {kind}" data-time="{html.escape(m.time)}" data-price="{m.value}" '
            f'd="{shape}" fill="{colour}">{tip}</path>')


def _formatter(*, percent: bool, usd: bool, step: float) -> Callable[[float], str]:
    """Tick labels with just enough decimals to tell one tick from the next."""
    scale = 100 if percent else 1
    places = _places(step * scale)
    if percent:
        return lambda v: f"{v * 100:.{places}f}%"
    prefix = "$" if usd else ""
    return lambda v: f"{prefix}{v:,.{places}f}"


def _places(step: float) -> int:
    """The fewest decimals that write `step` exactly (to 1e-9)."""
    return next((p for p in range(10) if abs(round(step * 10**p) - step * 10**p) < 1e-6), 9)


def _iso(t: int) -> str:
    return str(pd.Timestamp(t, tz="UTC").date().isoformat())


__all__ = ["COLOURS", "Marker", "Series", "date_ticks", "line_chart", "ns", "value_ticks"]
