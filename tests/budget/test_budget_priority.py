"""The reserved slice over loopback: when only the reserve is left, signals are refused and risk checks
and emergency calls (a request's own, or a task configured "emergency") are still admitted."""

from __future__ import annotations

from pathlib import Path

import pytest

from lyra import BudgetExceeded, Lyra
from lyra.simulator import Simulator
from support import budget_config_text, engine_env

# Half the day for premium, half for advanced (signals and news); 60% of the day is the reserve, so
# ordinary work stops at 40% of the day, below the advanced tier's own 50% share.
SHARES = {"premium": 0.5, "advanced": 0.5, "specialized": 0.0, "fast": 0.0}
EMERGENCY_TASK = '\n[tasks.emergency_exit]\ntier = "premium"\nmax_tokens = 300\npriority = "emergency"\n'
DAILY_NANOS = 50_000_000  # $0.05


def engine(sim: Simulator, tmp_path: Path) -> Lyra:
    path = tmp_path / "lyra.toml"
    path.write_text(budget_config_text(daily=0.05, reserve=0.6, shares=SHARES) + EMERGENCY_TASK)
    environ = engine_env(sim) | {"LYRA_LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.db'}"}
    return Lyra.from_config(path, environ=environ)


async def test_only_the_reserve_left_refuses_signals_and_admits_risk_and_emergency_calls(
    sim: Simulator, tmp_path: Path
) -> None:
    msg = [{"role": "user", "content": "Signal or risk for BTC? " + "bar " * 60}]
    async with engine(sim, tmp_path) as lyra:
        assert lyra.budget is not None
        assert "emergency_exit" not in lyra.settings.budget.privileged_tasks  # its priority makes it so
        served = 0
        with pytest.raises(BudgetExceeded) as refused:
            for _ in range(500):
                await lyra.complete(task="signal_generation", messages=msg, max_tokens=300, cache="bypass")
                served += 1
        assert served > 0 and refused.value.cap == "global"
        with pytest.raises(BudgetExceeded, match="budget cap global"):
            await lyra.complete(task="news_sentiment", messages=msg, max_tokens=300, cache="bypass")
        spent_before = sim.stats.total_cost_nanos
        calls_before = sim.stats.calls

        risk = await lyra.complete(task="risk_assessment", messages=msg, max_tokens=300, cache="bypass")
        exit_call = await lyra.complete(task="emergency_exit", messages=msg, cache="bypass")
        urgent = await lyra.complete(task="signal_generation", messages=msg, max_tokens=300, cache="bypass",
                                     priority="emergency")
        assert risk.task == "risk_assessment" and exit_call.task == "emergency_exit"
        assert min(risk.cost_nanos, exit_call.cost_nanos, urgent.cost_nanos) > 0
        assert sim.stats.calls == calls_before + 3
        # The three were paid out of the reserve: past the ordinary 40% of the day, never past the day.
        lines = {line.name: line for line in await lyra.budget.snapshot()}
        spent = lines["global"].committed
        assert spent == sim.stats.total_cost_nanos > spent_before
        assert spent > DAILY_NANOS * 4 // 10 and spent <= DAILY_NANOS
        # The reserve does not widen for ordinary work after emergencies spent from it.
        with pytest.raises(BudgetExceeded, match="budget cap global"):
            await lyra.complete(task="signal_generation", messages=msg, max_tokens=300, cache="bypass")
