"""`lyra backtest --experiment` and `lyra experiment`: a run, its replay, the table, the one-line errors."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import typer
from typer.testing import CliRunner

from lyra.cli.backtest import register as register_backtest
from lyra.cli.experiment import register as register_experiment
from lyra.config.loading import parse_settings
from lyra.errors import ConfigError
from support import fast_config_text

WINDOW = ["--from", "2017-08-01", "--to", "2017-10-31", "--every", "3"]


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer()
    register_backtest(app)
    register_experiment(app)
    return app


def test_an_offline_run_is_shown_by_lyra_experiment_and_replays_with_no_call(app: typer.Typer, tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch
                                                                            ) -> None:
    monkeypatch.setenv("LYRA_LEDGER_URL", f"sqlite:///{tmp_path / 'ledger.db'}")
    config = tmp_path / "lyra.toml"
    config.write_text(fast_config_text())
    cassette = tmp_path / "exp.json"
    runner = CliRunner()
    base = ["backtest", "--config", str(config), "--experiment", "signal_prompts", *WINDOW, "--json"]
    recorded = runner.invoke(app, [*base, "--record", str(cassette)])
    assert recorded.exit_code == 0, recorded.output
    first = orjson.loads(recorded.stdout)
    assert first["upstream_calls"] > 0 and len(first["trials"]) == first["window"]["decisions"]

    replayed = runner.invoke(app, [*base, "--replay", str(cassette)])
    assert replayed.exit_code == 0, replayed.output
    again = orjson.loads(replayed.stdout)
    assert again["upstream_calls"] == 0
    keep = ("trials", "timeline", "verdict", "arms", "decisions", "ai_spend_nanos", "fills")
    assert orjson.dumps({k: again[k] for k in keep}) == orjson.dumps({k: first[k] for k in keep})
    # The printed JSON (keys sorted, as in the audit trail) is the same byte for byte but for the run's
    # own lines: the cassette's mode and the upstream calls.
    assert _without_run_lines(replayed.stdout) == _without_run_lines(recorded.stdout)

    shown = runner.invoke(app, ["experiment", "signal_prompts", "--config", str(config), "--json"])
    assert shown.exit_code == 0, shown.output
    (report,) = orjson.loads(shown.stdout)["experiments"]
    assert [a["episodes"] for a in report["arms"]] == [a["episodes"] for a in first["arms"]]  # replay: once
    assert report["verdict"] == first["verdict"]
    table = runner.invoke(app, ["experiment", "--config", str(config)])
    assert table.exit_code == 0 and "risk_first" in table.stdout and "verdict:" in table.stdout


def _without_run_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if '"mode": "re' not in line and '"upstream_calls"' not in line]


def test_an_unknown_experiment_is_one_line(app: typer.Typer, tmp_path: Path) -> None:
    config = tmp_path / "lyra.toml"
    config.write_text(fast_config_text())
    done = CliRunner().invoke(app, ["experiment", "nope", "--config", str(config)])
    assert done.exit_code == 2
    assert "error: experiments.nope: no such experiment in the configuration (signal_prompts)" in done.output
    done = CliRunner().invoke(app, ["backtest", "--config", str(config), "--experiment", "nope", *WINDOW])
    assert done.exit_code == 2 and "experiments.nope: no such experiment" in done.output


@pytest.mark.parametrize(("arm", "message"), [
    ('{ name = "a", template = "no features here" }', "a template must show the features"),
    ('{ name = "a", template = "{features} {price}" }', "unknown placeholder {price}"),
    ('{ name = "a", prompt = "shouty" }', "unknown prompt variant 'shouty'"),
    ('{ name = "builtin" }', "'builtin' is used twice"),
])
def test_a_bad_arm_is_refused_in_one_line_naming_the_field(arm: str, message: str) -> None:
    text = fast_config_text(**{'{ name = "risk_first", prompt = "risk_first" },': arm + ","})
    with pytest.raises(ConfigError, match="experiments") as caught:
        parse_settings(text, "lyra.toml")
    assert message in str(caught.value) and "\n" not in str(caught.value)
