"""`lyra plan`: the day's calls and dollars per function from cadences, symbols, tokens and prices."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest
import typer
from typer.testing import CliRunner

from lyra.catalog.models import load_catalog
from lyra.cli.live import register
from lyra.config import example_config_text, parse_settings
from lyra.errors import ConfigError
from lyra.ledger import Ledger, LedgerRow
from lyra.ops.plan import build_plan


def _plan(text: str | None = None, ledger: Ledger | None = None):  # type: ignore[no-untyped-def]
    return build_plan(parse_settings(text or example_config_text(), "test"), load_catalog(), ledger)


def test_example_plan_matches_a_hand_computation() -> None:
    plan = _plan()
    lines = {line.function: line for line in plan.lines}
    # 24 h sessions, 2 symbols; nano-dollars per call = tokens x USD per 1M tokens.
    market = 24 * 60 // 5 * 2  # every 5m
    assert lines["market_analysis"].calls == market == 576
    assert lines["market_analysis"].cost_nanos == market * (200 * 3 + 75 * 15) * 1000  # claude-sonnet-4.6: $3 / $15
    signals = 24 * 60 * 2  # every 1m
    assert lines["signal_generation"].calls == signals == 2880
    assert lines["signal_generation"].cost_nanos == signals * (250 * 2 + 65 * 6) * 1000  # grok-4.6: $2 / $6
    news = 24 * 6 * 2  # every 10m; deepseek-chat: $0.2574 / $1.0287, each part rounded to a nano-dollar
    assert lines["news_sentiment"].cost_nanos == news * (round(120 * 257.4) + round(40 * 1028.7))
    trades = round(signals * 0.2)  # [schedule] trade_share
    assert lines["risk_assessment"].calls == trades
    assert lines["risk_assessment"].cost_nanos == trades * (210 * 5 + 55 * 25) * 1000  # claude-opus-4.8: $5 / $25
    assert "code_generation" not in lines  # on demand, none planned
    assert plan.share(lines["signal_generation"]) == pytest.approx(signals / plan.total_calls)
    assert sum(plan.share(line) for line in plan.lines) == pytest.approx(1.0)
    assert plan.by("tier")["advanced"] == sum(
        line.cost_nanos for line in plan.lines if line.tier == "advanced"
    )
    assert sum(plan.by("key").values()) == plan.total_nanos
    assert not [w for w in plan.warnings if "$" in w]  # the example keeps every dollar cap


def test_a_cadence_that_breaks_a_cap_is_named_with_a_fix() -> None:
    plan = _plan(example_config_text().replace('every = "1m"', 'every = "1s"'))
    broken = {cap.cap for cap in plan.caps if cap.broken}
    assert {"daily", "tier advanced"} <= broken
    warning = next(w for w in plan.warnings if "tier advanced" in w)
    assert warning.startswith("signal_generation every 1s breaks tier advanced ($70.00/day): $")
    assert "every 5s fits" in warning
    fixed = _plan(example_config_text().replace('every = "1m"', 'every = "5s"'))
    assert not any(cap.cap == "tier advanced" and cap.broken for cap in fixed.caps)


def test_keys_fill_in_order_and_token_caps_are_checked() -> None:
    plan = _plan()
    signal = next(line for line in plan.lines if line.function == "signal_generation")
    calls = dict(signal.key_calls)
    assert calls["grok4"] == 500_000 // (250 + 65)  # grok4's token cap, then deepseek1 takes the rest
    assert calls["grok4"] + calls["deepseek1"] == signal.calls
    assert any("key deepseek1 tokens" in w and "every" in w for w in plan.warnings)


def test_tokens_come_from_the_ledger_when_there_is_history(tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'l.db'}")
    ledger.start()
    now = time.time()
    for i in range(4):
        ledger.write(
            LedgerRow(
                ts=now - 60,
                request_id=f"r{i}",
                kind="attempt",
                task="signal_generation",
                prompt_tokens=1000,
                completion_tokens=100 + 100 * (i % 2),
                cost_nanos=5,
            )
        )
    ledger.flush()
    plan = _plan(ledger=ledger)
    ledger.close()
    signal = next(line for line in plan.lines if line.function == "signal_generation")
    assert (signal.tokens.prompt, signal.tokens.completion, signal.tokens.source) == (1000, 150, "ledger")
    assert signal.cost_nanos == 2880 * (1000 * 2 + 150 * 6) * 1000


def test_bad_cadence_is_a_one_line_error() -> None:
    with pytest.raises(ConfigError) as info:
        parse_settings(example_config_text().replace('every = "5m"', 'every = "5 minutes"'), "x.toml")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("x.toml: tasks.market_analysis.every: '5 minutes' is not a cadence")


def test_plan_command_prints_json_and_strict_exits_1_on_warnings(tmp_path: Path) -> None:
    app = typer.Typer()
    register(app)
    path = tmp_path / "lyra.toml"
    path.write_text(example_config_text().replace('every = "1m"', 'every = "1s"'))
    result = CliRunner().invoke(app, ["plan", "--config", str(path), "--json", "--no-history", "--strict"])
    assert result.exit_code == 1, result.output
    data = orjson.loads(result.stdout)
    assert data["functions"][1]["function"] == "signal_generation"
    assert any("tier advanced" in w for w in data["warnings"])
    table = CliRunner().invoke(app, ["plan", "--no-history"])
    assert table.exit_code == 0
    assert "signal_generation" in table.output and "tier advanced" in table.output
