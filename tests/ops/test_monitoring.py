"""Monitoring on the fast tier: alerts computed in code, the model's comment recorded, `lyra doctor`."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import typer
from typer.testing import CliRunner

from lyra import Lyra
from lyra.cli.live import register
from lyra.errors import LyraError
from lyra.ops.monitoring import HealthMonitor, Thresholds, alerts_for, run_doctor
from lyra.simulator import Fault, Simulator
from support import TOKENS, engine_env

QUIET = {"attempts": 100, "attempt_errors": 1, "error_rate": 0.01, "burn_rate": 0.5, "open_breakers": []}


def test_alerts_are_computed_in_code() -> None:
    limits = Thresholds(error_rate=0.10, burn_rate=1.5, min_attempts=10)
    assert alerts_for(QUIET, limits) == []
    failing = QUIET | {"attempt_errors": 30, "error_rate": 0.3}
    assert alerts_for(failing, limits) == ["error rate 30% above 10% (30 of 100 attempts)"]
    few = QUIET | {"attempts": 3, "attempt_errors": 2, "error_rate": 0.67}
    assert alerts_for(few, limits) == []  # too few attempts to mean anything
    burning = QUIET | {"burn_rate": 2.0, "open_breakers": ["x-ai/grok-4.6"]}
    assert alerts_for(burning, limits) == [
        "spend burn 2.00x the daily pace, above 1.5x",
        "circuit open for x-ai/grok-4.6",
    ]


async def test_health_task_alerts_and_records_the_fast_models_comment(
    lyra: Lyra, sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    monitor = HealthMonitor(lyra, thresholds=Thresholds(min_attempts=2))
    sim.add_fault(Fault(kind="server_error", model="deepseek/deepseek-chat", count=3))
    with pytest.raises(LyraError):  # three attempts fail, and the breaker opens
        await lyra.complete(model="deepseek/deepseek-chat", messages=[{"role": "user", "content": "hi"}])
    await lyra.complete(task="market_analysis", messages=[{"role": "user", "content": "trend?"}])
    with caplog.at_level(logging.WARNING, logger="lyra.ops.monitoring"):
        report = await monitor.run_once(window_sim_s=900)
    assert report.metrics["attempt_errors"] == 3
    assert report.metrics["error_rate_by_model"]["deepseek/deepseek-chat"] == 1.0
    assert any(a.startswith("error rate") for a in report.alerts)
    assert "circuit open for deepseek/deepseek-chat" in report.alerts
    assert any("health: error rate" in r.getMessage() for r in caplog.records if r.name == "lyra.ops.monitoring")
    assert report.comment and not report.comment_error
    assert lyra.ledger is not None
    lyra.ledger.flush()
    fast = [r for r in lyra.ledger.rows(kind="request") if r.tier == "fast"]
    assert len(fast) == 1  # the health comment is an ordinary, costed call on the fast tier
    assert monitor.reports[-1] is report
    quiet = await monitor.run_once(window_sim_s=900)  # the next window starts after the last
    assert quiet.metrics["attempt_errors"] == 0
    assert not [a for a in quiet.alerts if a.startswith("error rate")]


async def test_doctor_prints_findings_first_then_the_summary(
    sim: Simulator, config_path: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in engine_env(sim).items():
        monkeypatch.setenv(name, value)
    path = config_path()
    async with Lyra.from_config(path) as engine:
        sim.add_fault(Fault(kind="server_error", model="openai/gpt-4o", count=6))
        for _ in range(2):
            with pytest.raises(LyraError):
                await engine.complete(model="openai/gpt-4o", messages=[{"role": "user", "content": "x"}])
    log_file = tmp_path / "lyra.log"
    log_file.write_text("2026-01-01 INFO fine\n2026-01-01 WARNING lyra.budget: day budget below $20\n")
    text = await run_doctor(config=path, hours=1, log_file=log_file, ask=True)
    lines = text.splitlines()
    assert lines[0] == "findings (computed):"
    assert "requests: 2, failed: 2 (100.0%)" in lines[1]
    assert any("openai/gpt-4o 2" in line for line in lines)
    assert any("log warnings and errors: 1" in line for line in lines)
    assert "summary (fast model):" in lines


def test_doctor_command_without_history() -> None:
    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, ["doctor", "--no-ask"])
    assert result.exit_code == 0, result.output
    assert "requests: 0, failed: 0" in result.output


async def test_doctor_masks_secrets_in_log_lines_before_a_model_or_the_terminal_sees_them(
    sim: Simulator, config_path: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in engine_env(sim).items():
        monkeypatch.setenv(name, value)
    bare_key = "Zr8Qw2Lm5Tx9Vb4Nc7Hd"  # a key pasted without its sk-or- prefix
    monkeypatch.setenv("LYRA_KEY_MICROSOFT", bare_key)
    secrets = [TOKENS["premium"], bare_key, "PgPw-Hy62Vb09Rt4e", "RedisPw-Zq81Xk55Lm3w",
               "lyra-desk-" + "Qx7" * 14, "eyJhbGciOiJIUzI1NiJ9.payload.sig"]
    log_file = tmp_path / "lyra.log"
    log_file.write_text(
        f"2026-01-01 ERROR upstream refused key {TOKENS['premium']}\n"
        f"2026-01-01 ERROR lyra.keys: key {bare_key} failed\n"
        "2026-01-01 WARNING ledger postgresql://lyra:PgPw-Hy62Vb09Rt4e@db:5432/lyra unreachable\n"
        "2026-01-01 WARNING state redis://:RedisPw-Zq81Xk55Lm3w@cache:6379/0 reset\n"
        f"2026-01-01 ERROR client token {secrets[4]} refused\n"
        f"2026-01-01 ERROR header Authorization: Bearer {secrets[5]}\n")
    prompts: list[str] = []
    original = Lyra.complete

    async def recording(self: Lyra, **request: Any) -> Any:
        prompts.append(orjson.dumps(request.get("messages")).decode())
        return await original(self, **request)

    monkeypatch.setattr(Lyra, "complete", recording)
    text = await run_doctor(config=config_path(), hours=1, log_file=log_file, ask=True)
    assert len(prompts) == 1 and "ERROR" in prompts[0] and "postgresql://lyra:***@db" in prompts[0]
    for secret in secrets:
        assert secret not in prompts[0] and secret not in text
        assert secret[4:14] not in prompts[0] and secret[4:14] not in text
