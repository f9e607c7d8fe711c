"""The backtest report reads like a tearsheet, and each figure on it is the one the backtest computed.

A report is generated on the bundled sample over the simulator by `lyra backtest --report`, its HTML
parsed, and every table and chart checked against what is recomputed here from the JSON result.
"""

from __future__ import annotations

import itertools
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from lyra.money import format_usd
from lyra.trading.report import grouped_warnings
from lyra.trading.svg_chart import date_ticks, value_ticks
from lyra.trading.tearsheet import drawdown_periods

WINDOW = ["--from", "2018-03-01", "--every", "10"]
CHARTS = ("chart-price", "chart-equity", "chart-drawdown", "chart-spend")


class Page(HTMLParser):
    """Elements with their attributes and text, the enclosing chart of each, and tables as rows of cells."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.elements: list[dict[str, Any]] = []
        self.tables: dict[str, list[list[str]]] = {}
        self._open: list[dict[str, Any]] = []
        self._chart: str | None = None
        self._table: str | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = {"tag": tag, **{k: v or "" for k, v in attrs}, "text": "", "chart": self._chart}
        if tag == "svg":
            self._chart = element["chart"] = element.get("id")
        if tag == "table":
            self._table = element.get("id")
            self.tables[self._table or ""] = []
        if tag == "tr" and self._table is not None:
            self.tables[self._table].append([])
        self.elements.append(element)
        if tag not in ("line", "rect", "polyline", "meta", "br"):
            self._open.append(element)

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            element = self._open.pop()
            if element["tag"] in ("td", "th") and self._table is not None:
                self.tables[self._table][-1].append(element["text"].strip())
            if element["tag"] == tag:
                break
        if tag == "svg":
            self._chart = None
        if tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        for element in self._open:
            element["text"] += data

    def find(self, tag: str, **attrs: str) -> list[dict[str, Any]]:
        return [e for e in self.elements if e["tag"] == tag and all(e.get(k) == v for k, v in attrs.items())]

    def with_class(self, name: str, chart: str) -> list[dict[str, Any]]:
        return [e for e in self.elements if name in e.get("class", "").split() and e["chart"] == chart]


@pytest.fixture
def report(cli: typer.Typer, tmp_path: Path) -> tuple[dict[str, Any], Page]:
    """The JSON result of one backtest on the sample and the parsed page it wrote."""
    page = tmp_path / "out.html"
    result = CliRunner().invoke(cli, ["backtest", *WINDOW, "--json", "--report", str(page)])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout), Page(page.read_text())


def pipeline_equity(result: dict[str, Any]) -> pd.Series:
    times, values = zip(*result["curves"]["pipeline"], strict=True)
    return pd.Series(values, index=pd.to_datetime(list(times)), dtype=float)


def test_the_monthly_table_holds_the_returns_of_the_equity_series(report: tuple[dict[str, Any], Page]) -> None:
    result, page = report
    equity = pipeline_equity(result)
    month_end = equity.groupby([equity.index.year, equity.index.month]).last()
    previous = month_end.shift(1).fillna(equity.iloc[0])
    expected = {(int(y), int(m)): float(v) for (y, m), v in (month_end / previous - 1).items()}
    cells = {(int(c["data-year"]), int(c["data-month"])): c for c in page.find("td", **{"data-strategy": "pipeline"})
             if "data-month" in c}
    assert len(expected) >= 6 and set(cells) == set(expected)
    strategies = {c["data-strategy"] for c in page.find("td") if "data-month" in c}
    assert strategies == {s["name"] for s in result["strategies"]}, "each baseline has its months too"
    for month, value in expected.items():
        assert float(cells[month]["data-return"]) == pytest.approx(value, abs=1e-12)
        assert cells[month]["text"] == f"{value:.2%}"
    total = float(equity.iloc[-1] / equity.iloc[0] - 1)
    [year_cell] = [c for c in page.find("td", **{"data-strategy": "pipeline"}) if "data-year-total" in c]
    assert year_cell["text"] == f"{total:.2%}"


def test_every_fill_is_marked_on_the_price_chart(report: tuple[dict[str, Any], Page]) -> None:
    result, page = report
    fills = result["fills"]
    markers = page.with_class("trade", "chart-price")
    assert len(fills) == result["strategies"][0]["trades"] > 0
    assert len(markers) == len(fills)
    for fill, marker in zip(fills, markers, strict=True):
        assert marker["data-time"] == fill["time"] and float(marker["data-price"]) == fill["price"]
        assert ("buy" if fill["units"] > 0 else "sell") in marker["class"].split()
    assert page.with_class("buy", "chart-price") and page.with_class("sell", "chart-price")


def test_equity_drawdown_and_spend_share_one_time_axis(report: tuple[dict[str, Any], Page]) -> None:
    result, page = report
    charts = {c: page.find("svg", id=c)[0] for c in CHARTS}
    equity_last = result["curves"]["pipeline"][-1][0][:10]
    assert result["spend_curve"][-1][0][:10] < equity_last, "the last decision comes before the window's end"
    for chart in charts.values():
        assert chart["data-x-first"] == result["curves"]["pipeline"][0][0][:10]
        assert chart["data-x-last"] == equity_last == result["window"]["end"][:10]
    assert charts["chart-spend"]["data-last-point"] == charts["chart-equity"]["data-last-point"] == equity_last
    ends = [e["points"].split()[-1].split(",")[0] for e in page.find("polyline")
            if e["chart"] in ("chart-equity", "chart-spend")]
    assert len(set(ends)) == 1, "every line ends at the same x"


def test_each_axis_has_labelled_ticks(report: tuple[dict[str, Any], Page]) -> None:
    result, page = report
    start, end = result["window"]["start"][:10], result["window"]["end"][:10]
    for chart in CHARTS:
        xs, ys = page.with_class("tick-x", chart), page.with_class("tick-y", chart)
        assert len(xs) >= 3 and len(ys) >= 3, chart
        days = [x["data-time"] for x in xs]
        assert days == sorted(days) and start <= days[0] and days[-1] <= end
        assert all(re.fullmatch(r"[A-Z][a-z]{2} \d{4}|\d{4}-\d{2}-\d{2}", x["text"]) for x in xs)
        values = [float(y["text"].replace("$", "").replace(",", "").rstrip("%")) for y in ys]
        assert values == sorted(values) and len(set(values)) == len(values)
    assert len(page.find("line")) >= 4 * 6, "gridlines"


def test_the_deepest_drawdown_period_is_the_max_drawdown(report: tuple[dict[str, Any], Page]) -> None:
    result, page = report
    rows = page.tables["drawdown-periods"][1:]
    equity = pipeline_equity(result)
    deepest = float((equity / equity.cummax() - 1).min())
    assert rows and deepest < 0
    depths = [float(e["data-depth"]) for e in page.find("tr") if "data-depth" in e]
    assert depths[0] == pytest.approx(deepest, abs=1e-12) and depths == sorted(depths)
    assert rows[0][3] == f"{deepest:.2%}"
    assert -depths[0] == pytest.approx(result["strategies"][0]["max_drawdown"], abs=1e-6)


def test_drawdown_periods_start_at_the_peak_and_end_at_the_recovery() -> None:
    curve = [[f"2024-01-0{i + 1}", v] for i, v in enumerate([100, 110, 99, 105, 111, 100, 120, 102])]
    first, second, third = drawdown_periods(curve)
    assert (first.start, first.trough, first.recovery, first.bars) == ("2024-01-07", "2024-01-08", None, 1)
    assert first.depth == pytest.approx(102 / 120 - 1)
    assert (second.start, second.trough, second.recovery, second.bars) == ("2024-01-02", "2024-01-03", "2024-01-05", 3)
    assert second.depth == pytest.approx(99 / 110 - 1)
    assert (third.start, third.trough, third.recovery, third.bars) == ("2024-01-05", "2024-01-06", "2024-01-07", 2)
    assert third.depth == pytest.approx(100 / 111 - 1)
    assert drawdown_periods(curve, top=1) == [first] and drawdown_periods([[t, 1.0] for t, _ in curve]) == []


def test_baselines_stand_beside_the_pipeline_in_one_table(report: tuple[dict[str, Any], Page]) -> None:
    result, page = report
    heads = [h["data-strategy"] for h in page.find("th") if "data-strategy" in h]
    assert heads == [s["name"] for s in result["strategies"]]
    assert heads[0] == "pipeline" and len(heads) == 4
    [totals] = [row[1:] for row in page.tables["strategies"] if row[0] == "total return"]
    assert totals == [f"{s['total_return']:.2%}" for s in result["strategies"]]


def test_the_member_table_has_the_clis_brier_and_cost_per_correct_call(cli: typer.Typer, tmp_path: Path) -> None:
    page_path = tmp_path / "out.html"
    result = CliRunner().invoke(cli, ["backtest", *WINDOW, "--report", str(page_path)])
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    # The CLI's fitted table: columns at least two spaces apart, a rule under the header, rows to the
    # first line that is not one (a value holds no run of two spaces).
    header = next(i for i, line in enumerate(lines) if "Brier" in line)
    names = re.split(r"\s{2,}", lines[header].strip())
    brier, per = names.index("Brier"), next(i for i, n in enumerate(names) if "correct" in n)
    printed = {}
    for line in lines[header + 2:]:
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) != len(names):
            break
        printed[cells[0]] = (cells[brier], cells[per])
    table = Page(page_path.read_text()).tables["members"]
    columns = table[0]
    assert "Brier" in columns and "cost per correct call" in columns
    shown = {row[0]: (row[columns.index("Brier")], row[columns.index("cost per correct call")]) for row in table[1:]}
    assert len(printed) >= 2 and shown == printed
    assert any(p != "-" for _, p in printed.values())


@pytest.mark.parametrize(("lo", "hi"), [(5.0, 5.0), (0.00123, 0.0369), (-0.1377, 0.001), (99_450.61, 100_020.0)])
def test_value_ticks_are_evenly_spaced_and_cover_the_values(lo: float, hi: float) -> None:
    ticks = value_ticks(lo, hi)
    steps = {round(b - a, 9) for a, b in itertools.pairwise(ticks)}
    assert len(ticks) >= 3 and len(steps) == 1 and ticks[0] <= lo and hi <= ticks[-1]


@pytest.mark.parametrize(("start", "end"), [("2015-01-01", "2020-06-01"), ("2018-03-01", "2018-08-29"),
                                            ("2024-01-01", "2024-01-20"), ("2024-01-01T00:00", "2024-01-01T20:00")])
def test_date_ticks_fall_inside_the_span(start: str, end: str) -> None:
    lo, hi = pd.Timestamp(start, tz="UTC"), pd.Timestamp(end, tz="UTC")
    ticks = date_ticks(lo.value, hi.value)
    assert len(ticks) >= 3 and ticks == sorted(set(ticks)) and lo <= ticks[0] and ticks[-1] <= hi


def test_an_hourly_report_has_its_ticks_and_markers(cli: typer.Typer, tmp_path: Path) -> None:
    page_path = tmp_path / "out.html"
    run = CliRunner().invoke(cli, ["backtest", "--data", "EURUSD", "--every", "48", "--json", "--report",
                                   str(page_path)])
    assert run.exit_code == 0, run.stderr
    result, page = json.loads(run.stdout), Page(page_path.read_text())
    assert result["interval"] == "1h" and result["fills"]
    for chart in CHARTS:
        labels = [x["text"] for x in page.with_class("tick-x", chart)]
        assert len(labels) >= 3 and len(set(labels)) == len(labels), chart
        assert len(page.with_class("tick-y", chart)) >= 3, chart
    assert len(page.with_class("trade", "chart-price")) == len(result["fills"])


def test_cutoff_warnings_fold_into_one_line_naming_each_model(report: tuple[dict[str, Any], Page]) -> None:
    result, page = report
    cutoffs = [w for w in result["warnings"] if "knowledge cutoff" in w]
    assert len(cutoffs) >= 2
    items = [e["text"] for e in page.find("li")]
    [folded] = [i for i in items if "trained on data past the window start" in i]
    for warning in cutoffs:
        model, cutoff = re.match(r"(\S+): knowledge cutoff (\S+)", warning).groups()  # type: ignore[union-attr]
        assert f"{model} ({cutoff})" in folded
    assert folded.startswith(f"{len(cutoffs)} models")
    assert len(items) == len(result["warnings"]) - len(cutoffs) + 1
    assert grouped_warnings(["budget refused twice"]) == ["budget refused twice"]


def test_ai_spend_is_shown_exactly_as_the_cli_formats_money(report: tuple[dict[str, Any], Page]) -> None:
    result, page = report
    [spend] = [row[1:] for row in page.tables["strategies"] if row[0] == "AI spend"]
    assert spend == [format_usd(s["ai_spend_nanos"]) for s in result["strategies"]]
    assert spend[0] != "$0.00" and spend[1:] == ["$0.00"] * 3
