"""The two HTML reports in Debian's chromium: what a person sees, checked against the run's own data.

`lyra backtest --report` and `lyra report --html` each write one offline file; opened from a
file:// URL with every network request refused, the page must show the numbers of the same run's
`--json`, ask nothing of any network, and is then kept as docs/backtest-report.png and docs/report.png.
Chromium comes from the dashboard test's fixture (apt, never a browser download); without it, or
without the playwright package, these skip, unless LYRA_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from test_service_dashboard import CHROMIUM_ARGS, _missing, chromium  # noqa: F401  (chromium: a fixture)
from typer.testing import CliRunner

from lyra.cli.commands import app
from lyra.money import format_usd

DOCS = Path(__file__).resolve().parents[2] / "docs"
MAX_BYTES = 800_000  # each screenshot kept small enough for the repo
WINDOW = ["--from", "2018-03-01", "--every", "10"]


@asynccontextmanager
async def offline_page(chromium_path: Path, profile: Path) -> AsyncIterator[tuple[Any, list[str]]]:
    """A chromium page whose every request other than file:// is refused and noted, with page errors."""
    try:
        from playwright.async_api import Route, async_playwright
    except ImportError:
        _missing("the playwright package is not installed (pip install -e '.[dev]')")
    noted: list[str] = []

    async def refuse(route: Route) -> None:
        noted.append(f"request to {route.request.url}")
        await route.abort()

    async with async_playwright() as pw:
        context = await pw.chromium.launch_persistent_context(
            str(profile), executable_path=str(chromium_path), headless=True, args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900})
        try:
            await context.route("http*://**/*", refuse)
            page = await context.new_page()
            page.on("console", lambda m: noted.append(f"console: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: noted.append(f"page error: {e}"))
            page.on("request", lambda r: None if r.url.startswith("file://") else noted.append(r.url))
            yield page, noted
        finally:
            await context.close()


async def visible_cells(page: Any, selector: str) -> list[dict[str, Any]]:
    """Each matching cell as shown: its text, its data-* attributes, and whether it has a visible box."""
    found: list[dict[str, Any]] = await page.evaluate(
        "(sel) => Array.from(document.querySelectorAll(sel)).map(e => { const b = e.getBoundingClientRect();"
        " return {text: (e.innerText ?? e.textContent ?? '').trim(), data: Object.assign({}, e.dataset),"
        " visible: b.width > 0 && b.height > 0 && getComputedStyle(e).visibility !== 'hidden'}; })",
        selector)
    return found


async def table_rows(page: Any, table: str) -> list[list[str]]:
    rows: list[list[str]] = await page.evaluate(
        "(id) => Array.from(document.querySelectorAll('#' + id + ' tr'))"
        ".map(tr => Array.from(tr.cells).map(td => td.innerText.trim()))", table)
    return rows


async def lyra_cli(*args: str) -> str:
    """The `lyra` command's stdout; in a worker thread, as it runs its own event loop."""
    run = await asyncio.to_thread(CliRunner().invoke, app, list(args))
    assert run.exit_code == 0, (args, run.output, run.exception)
    return run.stdout


def monthly_returns(result: dict[str, Any]) -> dict[tuple[int, int], float]:
    """Each month's return of the pipeline's equity, recomputed from the JSON curve."""
    times, values = zip(*result["curves"]["pipeline"], strict=True)
    equity = pd.Series(values, index=pd.to_datetime(list(times)), dtype=float)
    month_end = equity.groupby([equity.index.year, equity.index.month]).last()
    previous = month_end.shift(1).fillna(equity.iloc[0])
    return {(int(y), int(m)): float(v) for (y, m), v in (month_end / previous - 1).items()}


async def test_the_backtest_report_in_chromium_shows_the_runs_numbers(
    tmp_path: Path, chromium: Path  # noqa: F811
) -> None:
    page_path = tmp_path / "out.html"
    result = json.loads(await lyra_cli("backtest", *WINDOW, "--json", "--report", str(page_path)))
    async with offline_page(chromium, tmp_path / "chromium-profile") as (page, noted):
        await page.goto(page_path.as_uri())
        await page.wait_for_load_state("load")
        # One marker per fill on the price chart, each drawn with a box of its own.
        markers = await visible_cells(page, "#chart-price .trade")
        assert len(markers) == len(result["fills"]) == result["strategies"][0]["trades"] > 0
        assert all(m["visible"] for m in markers)
        assert [(m["data"]["time"], float(m["data"]["price"])) for m in markers] == [
            (f["time"], f["price"]) for f in result["fills"]]
        # The monthly table: every month of the pipeline's equity, shown as its return.
        expected = monthly_returns(result)
        months = {(int(c["data"]["year"]), int(c["data"]["month"])): c
                  for c in await visible_cells(page, "#monthly-returns td[data-strategy='pipeline'][data-month]")}
        assert len(expected) >= 6 and set(months) == set(expected)
        for month, value in expected.items():
            assert months[month]["visible"] and months[month]["text"] == f"{value:.2%}", month
        # The AI spend row, as the CLI formats money; only the pipeline spent any.
        [spend] = [row[1:] for row in await table_rows(page, "strategies") if row and row[0] == "AI spend"]
        assert spend == [format_usd(s["ai_spend_nanos"]) for s in result["strategies"]]
        assert spend[0] != "$0.00" and spend[1:] == ["$0.00"] * 3
        for chart in ("chart-price", "chart-equity", "chart-drawdown", "chart-spend"):
            assert await page.locator(f"#{chart}").is_visible(), chart
        shot = DOCS / "backtest-report.png"
        await page.screenshot(path=str(shot), full_page=True, scale="css")
    assert noted == []  # offline: no request left the page, and no script failed
    assert 0 < shot.stat().st_size < MAX_BYTES


async def test_the_spend_report_in_chromium_shows_the_ledgers_totals(
    tmp_path: Path, chromium: Path  # noqa: F811
) -> None:
    # Some traffic on the simulator first: the demo's calls, then a pipeline run keeping a paper account.
    await lyra_cli("demo", "--calls", "3", "--time-scale", "0")
    await lyra_cli("run", "--data", "GOOGL", "--bars", "5", "--time-scale", "0", "--account", "live:GOOGL")
    report = json.loads(await lyra_cli("report", "--json"))
    page_path = tmp_path / "report.html"
    await lyra_cli("report", "--html", str(page_path))
    totals = report["totals"]
    assert totals["requests"] > 0 and totals["cost_nanos"] > 0 and len(report["decisions"]) == 5
    async with offline_page(chromium, tmp_path / "chromium-profile") as (page, noted):
        await page.goto(page_path.as_uri())
        await page.wait_for_selector("body[data-drawn]", timeout=15_000)
        spend = totals["cost_usd"]
        assert await page.text_content("#kpi-requests") == str(totals["requests"])
        assert await page.text_content("#kpi-spend") == (f"${spend:.4f}" if spend >= 0.01 else f"${spend:.6f}")
        assert await page.text_content("#kpi-signals") == str(report["signals"]["signals"])
        requests = await page.evaluate(
            "() => { const c = Chart.getChart('chart-requests'); return [c.data.labels, c.data.datasets[0].data]; }")
        assert requests == [[m["model"] for m in report["models"]], [m["requests"] for m in report["models"]]]
        assert sum(requests[1]) == totals["requests"]
        days = await page.evaluate(
            "() => { const c = Chart.getChart('chart-days'); return [c.data.labels, c.data.datasets[0].data]; }")
        assert days[0] == [d["period"] for d in report["days"]]
        assert days[1] == pytest.approx([d["cost_usd"] for d in report["days"]], rel=1e-9)
        assert sum(d["cost_nanos"] for d in report["days"]) == totals["cost_nanos"]
        models = [r for r in await table_rows(page, "table-models") if r and r[0] in requests[0]]
        assert [r[0] for r in models] == [m["model"] for m in report["models"]]
        assert await page.locator("#table-decisions tbody tr").count() == len(report["decisions"])
        [account] = report["paper_accounts"]["accounts"]
        shown = [r for r in await table_rows(page, "table-accounts") if r and r[0] == account["name"]]
        assert len(shown) == 1 and await page.locator("#table-accounts").is_visible()
        assert account["return_on_ai_spend_unit"] in (await page.text_content("#accounts-roas") or "")
        for chart in ("chart-requests", "chart-days", "chart-tiers"):
            assert await page.locator(f"#{chart}").is_visible(), chart
        shot = DOCS / "report.png"
        await page.screenshot(path=str(shot), full_page=True, scale="css")
    assert noted == []  # offline: no request left the page, and no script failed
    assert 0 < shot.stat().st_size < MAX_BYTES
