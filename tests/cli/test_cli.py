"""The command line: one-line errors, models --check, demo and consensus on the simulator."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from lyra.cli.commands import app
from support import fast_config_text

runner = CliRunner()


def test_bad_config_is_one_line_without_traceback(tmp_path: Path) -> None:
    path = tmp_path / "lyra.toml"
    path.write_text(fast_config_text().replace("daily_usd = 50", "dialy_usd = 50", 1))
    result = runner.invoke(app, ["models", "--check", "--config", str(path)])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip() and not line.startswith("config: ")]
    assert len(lines) == 1 and "keys.premium.dialy_usd: unknown field" in lines[0]
    assert "Traceback" not in result.output


def test_models_lists_the_catalogue_with_retired_ids() -> None:
    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0
    assert "anthropic/claude-3-opus" in result.output and "retired" in result.output


def test_models_check_passes_for_the_example(tmp_path: Path) -> None:
    result = runner.invoke(app, ["models", "--check"])
    assert result.exit_code == 0, result.output
    assert "every configured model id is live" in result.output


def test_models_check_names_retired_ids_and_candidates(tmp_path: Path) -> None:
    path = tmp_path / "lyra.toml"
    path.write_text(fast_config_text().replace(
        'models = ["anthropic/claude-opus-4.8", "openai/gpt-4o", "google/gemini-2.5-pro"]',
        'models = ["anthropic/claude-3-opus", "openai/gpt-4o", "google/gemini-2.5-pro"]', 1))
    result = runner.invoke(app, ["models", "--check", "--config", str(path)])
    assert result.exit_code == 1
    assert "retired anthropic/claude-3-opus: candidates anthropic/claude-opus-4.8" in result.output


def test_demo_routes_each_task() -> None:
    result = runner.invoke(app, ["demo", "--calls", "1", "--time-scale", "0"])
    assert result.exit_code == 0, result.output
    for task in ("market_analysis", "signal_generation", "risk_assessment", "news_sentiment", "code_generation"):
        assert task in result.output
    assert "5 calls" in result.output


def test_consensus_json_shows_every_vote() -> None:
    result = runner.invoke(app, ["consensus", "--json", "--notional", "15000",
                                 'BTC 4h ```json\n{"rsi": 35, "macd_hist": 0.8}\n```'])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout[result.stdout.index("{"):])
    assert payload["panel"] == "trade" and len(payload["votes"]) == 5
