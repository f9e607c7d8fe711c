"""Failed stages are counted and shown, and a run with too many of them fails, after its report."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from lyra import Lyra
from lyra.trading.backtest import Window
from lyra.trading.data import Bars
from lyra.trading.evaluate import BacktestOptions, failure_summary, run_backtest
from support import budget_config_text

# A day's budget far below one call's worst case: every stage that asks a model is refused.
ENGINE_EDITS = {"daily_usd = 200\n": "daily_usd = 0.000001\n", "low_budget_usd = 20": "low_budget_usd = 0"}
WINDOW = ["--from", "2018-06-01", "--every", "10"]


def stage(name: str, status: str, kind: str = "", cap: str | None = None) -> dict[str, Any]:
    return {"stage": name, "status": status, "error": f"{kind}: refused" if kind else "", "error_kind": kind,
            "cap": cap}


def decision(*stages: dict[str, Any]) -> dict[str, Any]:
    return {"stages": list(stages)}


def test_failed_stages_are_counted_per_stage_kind_and_cap_and_skipped_is_not_failure() -> None:
    records = [
        decision(stage("market_data", "error", "BudgetExceeded", "global"), stage("risk_assessment", "skipped")),
        decision(stage("market_data", "ok"), stage("signal_generation", "error", "NoModelAvailable"),
                 stage("technical_analysis", "error", "BudgetExceeded", "tier:advanced")),
        decision(stage("market_data", "ok"), stage("final_decision", "skipped")),
        decision(stage("market_data", "ok")),
    ]
    summary = failure_summary(records, allowed_share=0.5)
    assert summary["decisions"] == 4 and summary["failed_decisions"] == 2 and summary["failed_stages"] == 3
    assert summary["failed_share"] == 0.5 and not summary["exceeded"] and summary["message"] is None
    assert summary["by_stage"] == {"market_data": 1, "signal_generation": 1, "technical_analysis": 1}
    assert summary["by_kind"] == {"BudgetExceeded": 2, "NoModelAvailable": 1}
    assert summary["by_cap"] == {"global": 1, "tier:advanced": 1}

    strict = failure_summary(records, allowed_share=0.49)
    assert strict["exceeded"]
    message = strict["message"]
    assert "\n" not in message and message.startswith("2 of 4 decisions (50.0%) had a failed stage")
    assert "BudgetExceeded 2" in message and "budget cap global 1, tier:advanced 1" in message
    assert failure_summary([], allowed_share=0.0)["exceeded"] is False


async def test_budget_refusals_are_failed_stages_on_every_decision(engine: Lyra, bars: Bars) -> None:
    report = await run_backtest(engine, bars, BacktestOptions(window=Window(start="2018-06-01", every=10)))
    records = report["decisions"]
    failed = [[s for s in d["stages"] if s["status"] == "error"] for d in records]
    assert all(failed) and all(d["action"] == "HOLD" for d in records)
    assert [d["failed_stages"] for d in records] == [len(f) for f in failed]
    summary = report["failures"]
    assert summary["failed_decisions"] == summary["decisions"] == len(records)
    assert summary["failed_stages"] == sum(len(f) for f in failed)
    assert summary["by_stage"] == dict(Counter(s["stage"] for f in failed for s in f))
    assert set(summary["by_kind"]) == {"BudgetExceeded"}
    caps = {s["cap"] for f in failed for s in f}
    assert None not in caps and set(summary["by_cap"]) == caps
    assert summary["exceeded"] and any(f"budget cap {cap}" in summary["message"] for cap in caps)
    assert {"market_data", "technical_analysis", "signal_generation"} <= set(summary["by_stage"])
    assert any(w.startswith(f"{len(records)} of {len(records)} decisions had a stage refused by a budget cap")
               for w in report["warnings"])
    [pipeline] = [s for s in report["strategies"] if s["name"] == "pipeline"]
    assert pipeline["failed_decisions"] == len(records) and pipeline["failed_share"] == 1.0
    assert all(s["failed_decisions"] is None for s in report["strategies"] if s["name"] != "pipeline")



@pytest.fixture
def starved(tmp_path: Path) -> Path:
    path = tmp_path / "starved.toml"
    path.write_text(budget_config_text(daily=0.000001))
    return path


def error_lines(stderr: str) -> list[str]:
    """Lines on stderr other than the notes on which config and upstream are used."""
    return [line for line in stderr.splitlines()
            if line.strip() and not line.startswith(("config: ", "lyra: no OpenRouter key"))]


def test_a_starved_backtest_writes_its_report_and_exits_non_zero_with_one_line(
        cli: typer.Typer, starved: Path, tmp_path: Path) -> None:
    page = tmp_path / "out.html"
    result = CliRunner().invoke(cli, ["backtest", "--config", str(starved), *WINDOW, "--json",
                                      "--report", str(page)])
    assert result.exit_code == 1
    [line] = error_lines(result.stderr)
    assert line.startswith("error: ") and "had a failed stage" in line and "BudgetExceeded" in line
    report = json.loads(result.stdout)
    assert report["failures"]["exceeded"]
    assert any(f"budget cap {cap}" in line for cap in report["failures"]["by_cap"])
    html = page.read_text()
    assert "Failed stages" in html and "This run failed" in html and "BudgetExceeded" in html

    table = CliRunner().invoke(cli, ["backtest", "--config", str(starved), *WINDOW])
    assert table.exit_code == 1 and "decisions with a failed stage" in table.stdout
    assert "failed stages:" in table.stdout and len(error_lines(table.stderr)) == 1


def test_the_allowed_share_is_an_option(cli: typer.Typer, starved: Path) -> None:
    result = CliRunner().invoke(cli, ["backtest", "--config", str(starved), *WINDOW, "--json",
                                      "--max-failed-share", "1"])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["failures"]["failed_share"] == 1.0 and not report["failures"]["exceeded"]
    assert error_lines(result.stderr) == []


def test_the_allowed_share_is_a_setting(cli: typer.Typer, tmp_path: Path) -> None:
    path = tmp_path / "lenient.toml"
    path.write_text(budget_config_text(daily=0.000001, **{"max_failed_share = 0.10": "max_failed_share = 1"}))
    result = CliRunner().invoke(cli, ["backtest", "--config", str(path), *WINDOW, "--json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["failures"]["allowed_share"] == 1.0


def test_lyra_run_counts_failed_stages_and_exits_non_zero(cli: typer.Typer, starved: Path) -> None:
    result = CliRunner().invoke(cli, ["run", "--config", str(starved), "--bars", "3", "--time-scale", "0",
                                      "--json"])
    assert result.exit_code == 1
    [line] = error_lines(result.stderr)
    assert line.startswith("error: 3 of 3 decisions (100.0%) had a failed stage") and "budget cap" in line
    report = json.loads(result.stdout)
    assert [d["failed_stages"] for d in report["decisions"]] == [
        sum(s["status"] == "error" for s in d["stages"]) for d in report["decisions"]]
    assert report["failures"]["failed_decisions"] == 3

    table = CliRunner().invoke(cli, ["run", "--config", str(starved), "--bars", "2", "--time-scale", "0"])
    assert table.exit_code == 1 and "failed stages" in table.stdout and "BudgetExceeded" in table.stdout


def test_lyra_run_without_failures_exits_zero(cli: typer.Typer) -> None:
    result = CliRunner().invoke(cli, ["run", "--bars", "2", "--time-scale", "0", "--json"])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["failures"]["failed_decisions"] == 0 and not report["failures"]["exceeded"]
