"""GET /v1/report and `lyra report`: the numbers match the ledger, and no secret reaches them."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import typer
from gateway_support import DESK_TOKEN, MESSAGES
from quant_support import QUANT_TOKEN, quant_gateway
from test_service_secrets import secret_fragments
from typer.testing import CliRunner

from lyra.cli import report as cli_report
from lyra.simulator import Simulator
from support import engine_env

QUANT = {"Authorization": f"Bearer {QUANT_TOKEN}"}
QUANT_FRAGMENTS = [QUANT_TOKEN, QUANT_TOKEN[12:24]]


async def traffic(session: aiohttp.ClientSession, base: str) -> None:
    """Three chats and one consensus of the quick panel."""
    chat = {"model": "tier:fast", "messages": MESSAGES, "max_tokens": 40}
    for _ in range(3):
        async with session.post(f"{base}/chat/completions", json=chat, headers=QUANT) as r:
            assert r.status == 200, await r.text()
    async with session.post(f"{base}/consensus", json={"messages": MESSAGES, "panel": "quick", "cascade": False},
                            headers=QUANT) as r:
        assert r.status == 200, await r.text()


async def get_json(session: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> tuple[int, Any]:
    async with session.get(url, headers=headers) as r:
        return r.status, orjson.loads(await r.read())


async def test_the_report_endpoint_matches_usage_and_budget(sim: Simulator, tmp_path: Path) -> None:
    async with quant_gateway(sim, tmp_path) as base, aiohttp.ClientSession() as session:
        await traffic(session, base)
        status, report = await get_json(session, f"{base}/report?since=1d", QUANT)
        assert status == 200, report
        _, usage = await get_json(session, f"{base}/usage?since=1d&by=model", QUANT)
        _, budget = await get_json(session, f"{base}/budget", QUANT)
    assert report["object"] == "report" and report["window"]["label"] == "last 1d"
    assert report["totals"]["requests"] == sum(line["requests"] for line in usage["data"]) >= 4
    assert report["totals"]["cost_nanos"] == sum(line["cost_nanos"] for line in usage["data"])
    assert {m["model"]: m["requests"] for m in report["models"]} == {
        line["group"]: line["requests"] for line in usage["data"]}
    # A client's report holds its own cap only; it alone made the traffic, so its cap saw it all.
    assert [c["name"] for c in report["budget"]] == [c["name"] for c in budget["caps"]] == ["client:quant"]
    assert report["budget"][0]["spent"] == pytest.approx(budget["caps"][0]["spent"])
    assert report["client"] == "quant" and report["keys"] == [] and report["advice"] == []
    assert all(m["tier"] == "fast" for m in report["models"] if m["model"].startswith("google/gemini-2.5-flash"))


async def test_report_needs_a_token_and_a_valid_window(sim: Simulator, tmp_path: Path) -> None:
    async with quant_gateway(sim, tmp_path) as base, aiohttp.ClientSession() as session:
        status, body = await get_json(session, f"{base}/report", {})
        assert status == 401
        status, body = await get_json(session, f"{base}/report?since=fortnight", QUANT)
        assert status == 400 and body["error"]["param"] == "since"
        status, body = await get_json(session, f"{base}/report?day=2025-13-01", QUANT)
        assert status == 400 and body["error"]["param"] == "day"
        status, body = await get_json(session, f"{base}/report?day=2025-01-01&since=1d", QUANT)
        assert status == 400
        status, body = await get_json(session, f"{base}/report?day=2025-01-01",
                                      {"Authorization": f"Bearer {DESK_TOKEN}"})
        assert status == 200 and body["totals"]["requests"] == 0 and body["window"]["label"] == "2025-01-01"


def command_line() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """A group, as `lyra` is."""

    cli_report.register(app)
    return app


async def test_lyra_report_prints_tables_json_and_a_self_contained_html_file(
    sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with quant_gateway(sim, tmp_path) as base, aiohttp.ClientSession() as session:
        await traffic(session, base)
        _, served = await get_json(session, f"{base}/report?since=1d", QUANT)
    for name, value in engine_env(sim).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("LYRA_LEDGER_URL", f"sqlite:///{tmp_path / 'ledger.db'}")
    config = str(tmp_path / "lyra.toml")
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(command_line(), ["report", "--config", config, *args])

    result = await asyncio.to_thread(run, "--since", "1d", "--json")
    assert result.exit_code == 0, result.output
    payload = orjson.loads(result.stdout)
    assert payload["totals"] == served["totals"] and payload["models"] == served["models"]
    result = await asyncio.to_thread(run, "--since", "7d")
    assert result.exit_code == 0 and "Routing advice" in result.stdout and "Models" in result.stdout
    page_path = tmp_path / "report.html"
    result = await asyncio.to_thread(run, "--html", str(page_path))
    assert result.exit_code == 0, result.output
    page = page_path.read_text()
    assert "Chart.js v4" in page and "<script src=" not in page and str(served["totals"]["requests"]) in page
    result = await asyncio.to_thread(run, "--since", "1d", "--day", "2025-01-01")
    assert result.exit_code == 2 and "either" in result.output
    result = await asyncio.to_thread(run, "--day", "yesterday")
    assert result.exit_code == 2 and "day" in result.output
    for text in (result.stdout, page, orjson.dumps(payload).decode()):
        for fragment in [*secret_fragments(), *QUANT_FRAGMENTS]:
            assert fragment not in text
