"""Commands that call no model never start the simulator; the ones that check against it say so."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lyra import Lyra
from lyra.cli.commands import app
from lyra.errors import BudgetExceeded
from lyra.ops.monitoring import run_doctor
from lyra.simulator import Simulator
from support import budget_config_text, engine_env

runner = CliRunner()
SIMULATOR_LINE = "no OpenRouter key set"


def forbid_simulator(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """From now on a simulator start is noted (and refused): a read-only command must start none."""
    started: list[str] = []

    async def refused(self: Simulator) -> None:
        started.append("simulator started")
        raise AssertionError("a read-only command started the simulator")

    monkeypatch.setattr(Simulator, "start", refused)
    return started


def test_report_budget_and_html_read_the_stores_without_the_simulator(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made = runner.invoke(app, ["demo", "--calls", "1", "--time-scale", "0"])  # simulator money recorded
    assert made.exit_code == 0, made.output
    started = forbid_simulator(monkeypatch)
    page = tmp_path / "report.html"
    for args in (["budget"], ["budget", "--json"], ["report"], ["report", "--json"],
                 ["report", "--html", str(page)]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, (args, result.output, result.exception)
        assert SIMULATOR_LINE not in result.output, args
    assert started == []
    assert page.read_text().startswith("<!doctype html>")
    spent = runner.invoke(app, ["budget", "--json"]).stdout
    assert '"money": "simulated"' in spent and re.search(r'"spent": [1-9]', spent)  # the demo's spend


def test_doctor_without_asking_starts_no_simulator(monkeypatch: pytest.MonkeyPatch) -> None:
    started = forbid_simulator(monkeypatch)
    result = runner.invoke(app, ["doctor", "--no-ask"])
    assert result.exit_code == 0, result.output
    assert started == [] and SIMULATOR_LINE not in result.output


def test_models_check_without_a_key_says_it_checks_the_simulators_catalogue() -> None:
    result = runner.invoke(app, ["models", "--check"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if "simulator" in line]
    assert lines == ["no OpenRouter key set: checking against the built-in simulator's catalogue, "
                     "not OpenRouter's live /models"]


async def test_models_check_with_a_key_does_not_mention_the_simulator(
        sim: Simulator, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in engine_env(sim).items():
        monkeypatch.setenv(name, value)
    # The command runs its own event loop: a worker thread keeps this one serving the simulator.
    result = await asyncio.to_thread(runner.invoke, app, ["models", "--check"])
    assert result.exit_code == 0, result.output
    assert "simulator" not in result.stdout and "every configured model id is live" in result.stdout


def test_demo_marks_cached_rows_and_explains_only_the_marks_it_shows() -> None:
    result = runner.invoke(app, ["demo", "--calls", "2", "--time-scale", "0"])
    assert result.exit_code == 0, result.output
    # Columns are at least two spaces apart; a value holds at most one (the latency's "4 ms").
    rows = [re.split(r"\s{2,}", line.strip()) for line in result.stdout.splitlines() if " ms " in line]
    assert len(rows) == 10
    cached = [row for row in rows if row[-1] == "cached"]
    assert cached, result.stdout  # a task with a cache TTL asked twice: the second answer is cached
    assert all(row[5] == "$0.00" for row in cached)
    assert all(row[-1].isdigit() for row in rows if row not in cached)
    legend = result.stdout.strip().splitlines()[-1]
    assert "cached = answered from the response cache" in legend
    starred = any(row[5].endswith("*") for row in rows)
    assert ("* = estimated" in legend) == starred


async def test_doctor_names_the_cap_and_does_not_call_a_failure_share_fine(
        sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in engine_env(sim).items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "lyra.toml"
    path.write_text(budget_config_text(daily=0.000001))
    refused_by: set[str] = set()
    async with Lyra.from_config(path) as engine:
        for _ in range(12):
            with pytest.raises(BudgetExceeded) as caught:
                await engine.complete(tier="fast", messages=[{"role": "user", "content": "x"}])
            refused_by.add(caught.value.cap)
        assert engine.ledger is not None
        engine.ledger.flush()
    assert refused_by == {"global"}  # a $0.000001 day: the desk's own cap is the one that refuses
    for ask in (False, True):
        text = await run_doctor(config=path, hours=1, log_file=None, ask=ask)
        assert "BudgetExceeded 12" in text
        assert "BudgetExceeded by cap: global 12" in text  # the ledger row names the cap that refused
        assert "under caps" not in text and "do not say which" not in text
        assert re.search(r"those caps now, tightest first: global \$[0-9.]+ left of \$0\.000001$",
                         text, re.M), text
        assert "verdict: needs action, 100.0% of requests failed, above the 10% threshold" in text
        assert "nothing that needs action" not in text
