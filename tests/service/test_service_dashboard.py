"""The dashboard: its page and assets over HTTP, and in Debian's chromium driven by Playwright.

The browser test installs chromium with apt when /usr/bin/chromium is missing (never a browser
download); without it, or without the playwright package, it skips, unless LYRA_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from gateway_support import MESSAGES, OPS_TOKEN
from quant_support import QUANT_TOKEN, quant_gateway
from test_service_secrets import secret_fragments

from ledger_fill import TIERS, fill
from lyra import analytics
from lyra.ledger import Ledger
from lyra.simulator import Simulator

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "dashboard.png"
QUANT = {"Authorization": f"Bearer {QUANT_TOKEN}"}
OPS = {"Authorization": f"Bearer {OPS_TOKEN}"}
APT_TIMEOUT_S = 600


def _missing(reason: str) -> None:
    if os.environ.get("LYRA_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (LYRA_REQUIRE_SERVICES=1, so this fails instead of skipping)", pytrace=False)
    pytest.skip(reason)


def _apt_install_chromium() -> str:
    """Install Debian's chromium; returns what went wrong, or "" once it is there."""
    if shutil.which("apt-get") is None:
        return "apt-get is not available"
    env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "install", "-y", "-q", "chromium"],
                    ["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "chromium"]):
        try:
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=APT_TIMEOUT_S,
                                  check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"{' '.join(command)}: {exc}"
        if command[1] == "install" and done.returncode == 0 and CHROMIUM.exists():
            return ""
    return f"apt-get install chromium failed: {done.stderr.strip()[-300:]}"


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's chromium, installed with apt when missing."""
    if not CHROMIUM.exists():
        problem = _apt_install_chromium()
        if problem:
            _missing(f"no chromium at {CHROMIUM}: {problem}")
    return CHROMIUM


async def traffic(session: aiohttp.ClientSession, base: str) -> None:
    """Chats, a consensus of the trade panel and one pipeline decision, all as the quant client."""
    chat = {"model": "tier:fast", "messages": MESSAGES, "max_tokens": 40}
    for _ in range(3):
        async with session.post(f"{base}/chat/completions", json=chat, headers=QUANT) as r:
            assert r.status == 200, await r.text()
    async with session.post(f"{base}/consensus", headers=QUANT,
                            json={"messages": MESSAGES, "panel": "trade", "notional": 15000}) as r:
        assert r.status == 200, await r.text()
    async with session.post(f"{base}/decide", json={"sample": "GOOGL"}, headers=QUANT) as r:
        assert r.status == 200, await r.text()


async def get_json(session: aiohttp.ClientSession, url: str) -> Any:
    """As the desk's operator, whose dashboard shows every cap (a client's shows only its own)."""
    async with session.get(url, headers=OPS) as r:
        assert r.status == 200, await r.text()
        return orjson.loads(await r.read())


async def test_the_page_and_its_assets_are_served_without_a_token_or_any_data(
    sim: Simulator, tmp_path: Path
) -> None:
    async with quant_gateway(sim, tmp_path) as base, aiohttp.ClientSession() as session:
        root = base.removesuffix("/v1")
        async with session.get(f"{root}/dashboard") as r:
            page = await r.text()
            assert r.status == 200 and "text/html" in r.headers["Content-Type"]
            assert "script-src 'self'" in r.headers["Content-Security-Policy"]
        assert "/static/chart.umd.min.js" in page and "https://" not in page
        for asset in ("chart.umd.min.js", "chart.js.LICENSE.md", "lyra-charts.js", "dashboard.js", "lyra.css",
                      "report-body.html"):
            async with session.get(f"{root}/static/{asset}") as r:
                assert r.status == 200, asset
        async with session.get(f"{root}/static/../app.py") as r:
            assert r.status == 404


async def test_the_dashboard_in_chromium_shows_the_recorded_numbers(
    sim: Simulator, tmp_path: Path, chromium: Path
) -> None:
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        _missing("the playwright package is not installed (pip install -e '.[dev]')")
    async with quant_gateway(sim, tmp_path) as base, aiohttp.ClientSession() as session:
        root = base.removesuffix("/v1")
        await traffic(session, base)
        report = await get_json(session, f"{base}/report?since=1d")
        budget = await get_json(session, f"{base}/budget")
        usage = await get_json(session, f"{base}/usage?since=1d&by=model")
        # The report agrees with the ledger's own summary and with the budget's global cap.
        assert report["totals"]["requests"] == sum(line["requests"] for line in usage["data"])
        global_spent = next(c["spent"] for c in budget["caps"] if c["name"] == "global")
        assert report["totals"]["cost_usd"] == pytest.approx(global_spent, abs=1e-6)
        async with async_playwright() as pw:
            context = await pw.chromium.launch_persistent_context(
                str(tmp_path / "chromium-profile"), executable_path=str(chromium), headless=True,
                args=CHROMIUM_ARGS, viewport={"width": 1280, "height": 900})
            try:
                page = await context.new_page()
                problems: list[str] = []
                page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda e: problems.append(str(e)))
                await page.goto(f"{root}/dashboard#token={OPS_TOKEN}")
                await page.wait_for_selector("body[data-drawn]", timeout=15_000)
                assert "token=" not in page.url  # taken out of the address bar at once
                assert "the whole desk (operator)" in (await page.text_content("#status") or "")
                await check_numbers(page, report, budget)
                await check_live_refresh(page, session, base, report["totals"]["requests"])
                SCREENSHOT.parent.mkdir(exist_ok=True)
                await page.screenshot(path=str(SCREENSHOT), full_page=True, scale="css")
                html = await page.content()
            finally:
                await context.close()
        assert problems == []
        for fragment in [*secret_fragments(), QUANT_TOKEN, QUANT_TOKEN[12:24], OPS_TOKEN, OPS_TOKEN[12:24]]:
            assert fragment not in html and fragment not in orjson.dumps(report).decode()
    assert SCREENSHOT.stat().st_size < 800_000  # the whole desk view, kept small enough for the repo


async def check_numbers(page: Any, report: dict[str, Any], budget: dict[str, Any]) -> None:
    totals = report["totals"]
    assert await page.text_content("#kpi-requests") == str(totals["requests"])
    spend = totals["cost_usd"]
    assert await page.text_content("#kpi-spend") == (f"${spend:.4f}" if spend >= 0.01 else f"${spend:.6f}")
    assert await page.text_content("#kpi-signals") == str(report["signals"]["signals"])
    requests = await page.evaluate(
        "() => { const c = Chart.getChart('chart-requests'); return [c.data.labels, c.data.datasets[0].data]; }")
    assert requests == [[m["model"] for m in report["models"]], [m["requests"] for m in report["models"]]]
    assert sum(requests[1]) == totals["requests"] >= 4
    tiers = await page.evaluate(
        "() => { const c = Chart.getChart('chart-tiers'); return [c.data.labels, c.data.datasets[0].data]; }")
    caps = [c for c in budget["caps"] if c["name"].startswith("tier:")]
    assert tiers[0] == [f"{c['name'].removeprefix('tier:')} (${c['limit']:g} cap)" for c in caps]
    assert tiers[1] == pytest.approx([100 * c["spent"] / c["limit"] for c in caps], rel=1e-6)
    assert sum(tiers[1]) > 0
    rows = await page.locator("#table-decisions tbody tr").count()
    assert rows == len(report["decisions"]) >= 1
    assert await page.locator("#table-decisions tbody tr").first.text_content() is not None
    accounts = report["paper_accounts"]["accounts"]  # the pipeline decision kept the quant client's account
    assert await page.locator("#table-accounts tbody tr").count() == len(accounts) >= 1
    first = await page.locator("#table-accounts tbody tr").first.text_content() or ""
    assert accounts[0]["name"] in first
    assert report["paper_accounts"]["return_on_ai_spend_unit"] in (await page.text_content("#accounts-roas") or "")


async def check_live_refresh(page: Any, session: aiohttp.ClientSession, base: str, before: int) -> None:
    """One more request shows up on the page by itself within a few polls."""
    chat = {"model": "tier:fast", "messages": MESSAGES, "max_tokens": 40}
    async with session.post(f"{base}/chat/completions", json=chat, headers=QUANT) as r:
        assert r.status == 200
    await page.wait_for_selector(f"#kpi-requests:text-is('{before + 1}')", timeout=15_000)
    await asyncio.sleep(0.5)  # let the charts finish this redraw before the screenshot


async def test_an_html_report_draws_its_charts_offline_in_chromium(tmp_path: Path, chromium: Path) -> None:
    try:
        from playwright.async_api import Route, async_playwright
    except ImportError:
        _missing("the playwright package is not installed (pip install -e '.[dev]')")
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    try:
        fill(ledger)
        report = analytics.build_report(ledger, analytics.Window(0, 4e9, "all"), tier_of=TIERS.__getitem__)
    finally:
        ledger.close()
    page_path = tmp_path / "report.html"
    page_path.write_text(analytics.render_html(report))
    requested: list[str] = []

    async def refuse_network(route: Route) -> None:
        requested.append(route.request.url)
        await route.abort()

    async with async_playwright() as pw:
        context = await pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=str(chromium), headless=True, args=CHROMIUM_ARGS)
        try:
            await context.route("http*://**/*", refuse_network)
            page = await context.new_page()
            await page.goto(page_path.as_uri())
            await page.wait_for_selector("body[data-drawn]", timeout=15_000)
            drawn = await page.evaluate(
                "() => { const c = Chart.getChart('chart-days'); return [c.data.labels, c.data.datasets[0].data]; }")
            assert await page.text_content("#kpi-requests") == str(report.requests)
        finally:
            await context.close()
    assert drawn == [[d.period for d in report.days], [d.cost_nanos / 1e9 for d in report.days]]
    assert requested == []
