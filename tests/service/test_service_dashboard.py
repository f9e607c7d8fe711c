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
from gateway_support import MESSAGES, OPS_TOKEN, TIGHT_TOKEN
from quant_support import QUANT_TOKEN, quant_gateway
from test_service_secrets import secret_fragments

from ledger_fill import TIERS, fill
from lyra import analytics
from lyra.ledger import Ledger
from lyra.simulator import Fault, Simulator

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "dashboard.png"
QUANT = {"Authorization": f"Bearer {QUANT_TOKEN}"}
OPS = {"Authorization": f"Bearer {OPS_TOKEN}"}
APT_TIMEOUT_S = 600
REFUSED_MODEL = "google/gemini-2.5-flash-lite"  # one the quant client's chats are served by too
FAILING = "openai/gpt-4o-mini"  # its upstream fails every call, so its circuit opens


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
    # The tight client's cap refuses its request before any upstream call: a refusal, no model's failure.
    async with session.post(f"{base}/chat/completions", headers={"Authorization": f"Bearer {TIGHT_TOKEN}"},
                            json=chat | {"model": REFUSED_MODEL}) as r:
        assert r.status == 402, await r.text()


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
        sim.add_fault(Fault(kind="server_error", status=500, model=FAILING))  # a model's own failures
        chat = {"model": FAILING, "messages": MESSAGES, "max_tokens": 40}
        async with session.post(f"{base}/chat/completions", json=chat, headers=QUANT) as r:
            assert r.status == 503, await r.text()
        sim.clear_faults()
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
                elsewhere: list[str] = []  # offline: the page asks nothing of any other origin
                page.on("request", lambda r: None if r.url.startswith(root + "/") else elsewhere.append(r.url))
                await page.goto(f"{root}/dashboard#token={OPS_TOKEN}")
                await page.wait_for_selector("body[data-drawn]", timeout=15_000)
                assert "token=" not in page.url  # taken out of the address bar at once
                assert "the whole desk (operator)" in (await page.text_content("#status") or "")
                await check_numbers(page, report, budget)
                await check_desk_view(page, report)
                await check_audit_link(page, report)
                await check_live_refresh(page, session, base, report["totals"]["requests"])
                SCREENSHOT.parent.mkdir(exist_ok=True)
                await page.screenshot(path=str(SCREENSHOT), full_page=True, scale="css")
                html = await page.content()
                await check_a_client_sees_only_itself(context, root)
            finally:
                await context.close()
        assert problems == [] and elsewhere == []
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


async def cells(page: Any, table: str) -> list[list[str]]:
    """The text of each body cell of a table, row by row, as the page shows it."""
    rows: list[list[str]] = await page.evaluate(
        "(id) => Array.from(document.querySelectorAll('#' + id + ' tbody tr'))"
        ".map(tr => Array.from(tr.cells).map(td => td.innerText.trim()))", table)
    return rows


def _pct(share: float) -> str:
    return f"{100 * share:.1f}%"


async def check_desk_view(page: Any, report: dict[str, Any]) -> None:
    """The desk view's numbers, each against the page's own JSON (/v1/report)."""
    totals = report["totals"]
    # A budget refusal is a failed request, but no model's failure: apart in the totals, the table, the advice.
    assert totals["refused"] == 1 and totals["model_failures"] == totals["errors"] - 1
    assert await page.text_content("#kpi-refused") == "1"
    assert await page.text_content("#kpi-failures") == str(totals["model_failures"])
    refused = next(m for m in report["models"] if m["model"] == REFUSED_MODEL)
    assert refused["refused"] == 1 and refused["model_failures"] == 0 and refused["error_rate"] == 0
    row = next(r for r in await cells(page, "table-models") if r[0] == REFUSED_MODEL)
    assert (row[2], row[3], row[4], row[5]) == (str(refused["requests"]), "0", "1", "100.0%")
    assert all(a["model"] != REFUSED_MODEL for a in report["advice"])
    assert await page.text_content("#kpi-cache") == _pct(totals["cache_hit_rate"])
    # Token caps in tokens, against the token limit; dollar caps in dollars.
    token_caps = [c for c in report["budget"] if c["name"].startswith("key_tokens:")]
    used = [c for c in token_caps if c["spent"] > 0]
    assert used and all(c["unit"] == "tokens" for c in token_caps)
    keys = await page.evaluate(
        "() => { const c = Chart.getChart('chart-keys'); return [c.data.labels, c.data.datasets[0].data]; }")
    for cap in token_caps:
        name = cap["name"].removeprefix("key_tokens:")
        at = keys[0].index(f"{name} ({cap['limit']:,} token cap)")
        assert keys[1][at] == pytest.approx(100 * cap["spent"] / cap["limit"], rel=1e-9)
    shown = {r[0]: r for r in await cells(page, "table-keys")}
    for key in report["keys"]:
        if key["cap_tokens"] is not None:
            assert shown[key["key"]][6] == (f"{key['today_tokens']:,} tokens of {key['cap_tokens']:,} tokens "
                                            f"({_pct(key['token_utilisation'])})")
    # Every client for the operator, each against its daily cap.
    clients = await cells(page, "table-clients")
    assert [r[0] for r in clients] == [c["client"] for c in report["clients"]]
    assert {"quant", "tight", "desk", "ops", "slow"} <= {r[0] for r in clients}
    for line, c in zip(clients, report["clients"], strict=True):
        assert (line[1], line[2], line[3]) == (str(c["requests"]), str(c["model_failures"]), str(c["refused"]))
        assert line[5].endswith(f"({_pct(c['utilisation'])})")
    assert next(r for r in clients if r[0] == "tight")[3] == "1"
    # Paper account positions and the decision rows: bar time, price, notional, one line per vote.
    accounts = report["paper_accounts"]["accounts"]
    assert [r[0] for r in await cells(page, "table-positions")] == [a["name"] for a in accounts]
    decision, first = report["decisions"][0], (await cells(page, "table-decisions"))[0]
    assert first[0] == f"#{decision['seq']}" and first[1] == decision["bar_time"][:16].replace("T", " ")
    assert first[4] == f"{decision['price']:.2f}" and first[5] == f"${decision['notional_usd']:,.2f}"
    votes = page.locator("#table-decisions tbody tr").first.locator("ul.votes li")
    assert await votes.count() == len(decision["votes"]) >= 2
    assert await page.text_content("#kpi-alerts") == str(len(report["alerts"]))
    hours = await page.evaluate("() => { const c = Chart.getChart('chart-hours'); "
                                "return [c.data.datasets[0].data, c.data.datasets[1].data]; }")
    assert hours[0] == pytest.approx([h["cost_usd"] for h in report["hours"]], rel=1e-9)
    assert hours[1] == [h["requests"] for h in report["hours"]] and sum(hours[1]) == totals["requests"]
    assert any("refused by budget caps" in a for a in report["alerts"])
    # The page polls on its own: a circuit may cool from open to half-open between its read and ours.
    def steady(alerts: list[str]) -> list[str]:
        return [a.replace("circuit half-open", "circuit open") for a in alerts]

    assert steady(await page.locator("#alerts li").all_text_contents()) == steady(report["alerts"])
    # The failing model: its own failures, no refusal, and its circuit open (or, on a slow machine, cooling).
    failing = next(m for m in report["models"] if m["model"] == FAILING)
    assert failing["model_failures"] >= 1 and failing["refused"] == 0
    assert report["breakers"][FAILING] in ("open", "half-open")
    assert f"circuit {report['breakers'][FAILING]} for {FAILING}" in report["alerts"]
    assert f"{FAILING}: " in (await page.text_content("#breakers") or "")


async def check_audit_link(page: Any, report: dict[str, Any]) -> None:
    """A decision's audit link shows its record, read from /v1/audit with the page's token."""
    decision = report["decisions"][0]
    await page.locator("#table-decisions tbody tr").first.locator("a").click()
    await page.wait_for_selector("#audit:not([hidden])", timeout=15_000)
    record = orjson.loads(await page.text_content("#audit-record") or "{}")
    assert (record["seq"], record["decision_id"]) == (decision["seq"], decision["decision_id"])
    assert record["hash"] == decision["audit_hash"] and record["decision"]["price"] == decision["price"]


async def check_a_client_sees_only_itself(context: Any, root: str) -> None:
    page = await context.new_page()
    try:
        await page.goto(f"{root}/dashboard#token={QUANT_TOKEN}")
        await page.wait_for_selector("body[data-drawn]", timeout=15_000)
        assert "client quant's own usage" in (await page.text_content("#status") or "")
        assert [r[0] for r in await cells(page, "table-clients")] == ["quant"]
        assert await cells(page, "table-keys") == []
    finally:
        await page.close()


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
