"""Data is printed literally and every table fits the terminal: COLUMNS=80 and COLUMNS=160.

Model ids such as `openai/gpt-oss-20b:free` are not emoji codes, `[clients.NAME]` in a help text is
not a style tag, and no id is cut mid-word: a table too wide leaves out its least useful columns.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from lyra import Lyra
from lyra.cli.commands import app
from lyra.simulator import Simulator
from lyra.terminal import DataConsole, FitTable
from support import budget_config_text, engine_env, fast_config_text

FREE = "openai/gpt-oss-20b:free"
RETIRED_FREE = "meta-llama/llama-3.3-70b-instruct:free"
LONG = "google/gemini-3.1-pro-preview"
WIDTHS = (80, 160)


def invoke(*args: str | Path, columns: int) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": str(columns)})


def assert_fits(result: Result, columns: int) -> list[str]:
    lines = result.stdout.splitlines()
    too_long = [line for line in lines if len(line) > columns]
    assert not too_long, "\n".join(too_long)
    assert "…" not in result.stdout  # nothing truncated
    assert "🆓" not in result.stdout  # `:free:` is not an emoji code
    return lines


def cells(lines: list[str]) -> set[str]:
    """Every space-separated word printed, so that an id cut in two is not found whole."""
    return {word for line in lines for word in line.split()}


@dataclass
class Recorded:
    config: Path
    models: list[str]


@pytest.fixture
async def recorded(sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Recorded:
    """A small engine run on the simulator that called a `:free` model and a long-named one."""
    ledger, state = tmp_path / "ledger.db", tmp_path / "state.db"
    for name, value in (engine_env(sim) | {"LYRA_LEDGER_URL": f"sqlite:///{ledger}"}).items():
        monkeypatch.setenv(name, value)
    config = tmp_path / "lyra.toml"
    config.write_text(budget_config_text(daily=5.0).replace(
        '[state]\nbackend = "sqlite"', f'[state]\nbackend = "sqlite"\npath = "{state}"'))
    msg = [{"role": "user", "content": "BTC 1h: RSI 64. Signal?"}]
    async with Lyra.from_config(config) as lyra:
        done = [await lyra.complete(model=model, messages=msg, max_tokens=50, cache="bypass")
                for model in (FREE, LONG, "openai/gpt-4o")]
    return Recorded(config, [c.model for c in done])


@pytest.mark.parametrize("columns", WIDTHS)
def test_models_catalogue_fits_and_shows_every_id_whole(columns: int) -> None:
    result = invoke("models", columns=columns)
    assert result.exit_code == 0, result.output
    words = cells(assert_fits(result, columns))
    assert {FREE, RETIRED_FREE, "anthropic/claude-3-opus"} <= words
    headers = next(line for line in result.stdout.splitlines() if line.lstrip().startswith("id "))
    assert ("successor" in headers) is (columns == 160)  # the full width shows the columns left out at 80
    assert "status" in headers and "tier" in headers


@pytest.mark.parametrize("columns", WIDTHS)
def test_models_check_prints_free_ids_literally(tmp_path: Path, columns: int) -> None:
    path = tmp_path / "lyra.toml"
    path.write_text(fast_config_text(**{f'low_budget_model = "{FREE}"': f'low_budget_model = "{RETIRED_FREE}"'}))
    result = invoke("models", "--check", "--config", path, columns=columns)
    assert result.exit_code == 1, result.output
    assert_fits(result, columns)
    assert f"retired {RETIRED_FREE}: candidates {FREE}" in " ".join(result.stdout.split())


def test_token_help_shows_bracketed_names_literally() -> None:
    result = invoke("token", "new", "--help", columns=80)
    assert result.exit_code == 0, result.output
    assert_fits(result, 80)
    text = " ".join(result.stdout.split())
    assert "the [clients.NAME] lines" in text and "Client name, as in [clients.NAME]" in text


@pytest.mark.parametrize("columns", WIDTHS)
def test_usage_by_model_keeps_ids_whole(recorded: Recorded, columns: int) -> None:
    result = invoke("usage", "-c", recorded.config, "--by", "model", columns=columns)
    assert result.exit_code == 0, result.output
    words = cells(assert_fits(result, columns))
    assert {FREE, LONG, "openai/gpt-4o"} <= words
    assert set(recorded.models) <= words
    header = next(line for line in result.stdout.splitlines() if "requests" in line)
    assert "cost" in header and "tokens" in header
    assert ("p95 ms" in header) is (columns == 160)  # left out at 80, shown when there is room


@pytest.mark.parametrize("columns", WIDTHS)
def test_budget_fits(recorded: Recorded, columns: int) -> None:
    result = invoke("budget", "-c", recorded.config, columns=columns)
    assert result.exit_code == 0, result.output
    lines = assert_fits(result, columns)
    assert any(line.split()[:1] == ["global"] for line in lines)


@pytest.mark.parametrize("columns", WIDTHS)
def test_report_fits_and_keeps_ids_whole(recorded: Recorded, columns: int) -> None:
    result = invoke("report", "-c", recorded.config, columns=columns)
    assert result.exit_code == 0, result.output
    words = cells(assert_fits(result, columns))
    assert {FREE, LONG} <= words
    models = result.stdout[result.stdout.index("Models"):result.stdout.index("Keys")]
    assert ("$/request" in models) is (columns == 160)  # left out at 80, shown when there is room
    assert "p95" in models and "cost" in models


@pytest.mark.parametrize("columns", [40, 80, 120])
def test_fitted_table_prints_markup_and_emoji_codes_literally(columns: int) -> None:
    table = FitTable("clients")
    table.column("client")
    table.column("note")
    table.column("spent", justify="right", whole=True)
    table.column("detail", drop=1)
    table.row("[bold]alice[/bold]", "wants :free: and :smile: models", "$1,234.50", "a rather long detail text")
    console = DataConsole(width=columns)
    with console.capture() as captured:
        console.print(table)
    out = captured.get()
    assert all(len(line) <= columns for line in out.splitlines())
    words = cells(out.splitlines())
    assert {"[bold]alice[/bold]", ":free:", ":smile:", "$1,234.50"} <= words
    assert ("detail" in out) is (columns >= 80)



@pytest.mark.parametrize(("args", "ids"), [
    (["demo", "--calls", "1", "--time-scale", "0"], ["anthropic/claude-sonnet-4.6", "deepseek/deepseek-chat"]),
    (["plan"], ["google/gemini-2.5-flash-lite", "anthropic/claude-opus-4.8"]),
])
def test_demo_and_plan_fit_80_columns(args: list[str], ids: list[str]) -> None:
    result = invoke(*args, columns=80)
    assert result.exit_code == 0, result.output
    assert set(ids) <= cells(assert_fits(result, 80))
