"""Money on the paths users really take: a hung-up stream, a cancelled call, simulated runs."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from lyra import Lyra, StateUnavailable
from lyra.ledger import Ledger
from lyra.simulator import Simulator, SimulatorOptions
from support import budget_config_text, engine_env

MSG = [{"role": "user", "content": "Explain the last four hours of BTC in detail."}]


def config(tmp_path: Path) -> Path:
    path = tmp_path / "lyra.toml"
    path.write_text(budget_config_text(daily=5.0))
    return path


async def test_a_stream_the_caller_hangs_up_on_is_booked_at_its_worst_case_with_its_generation_id(
    sim: Simulator, tmp_path: Path
) -> None:
    environ = engine_env(sim) | {"LYRA_LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.db'}"}
    async with Lyra.from_config(config(tmp_path), environ=environ) as lyra:
        stream = lyra.stream(model="openai/gpt-4o-mini", messages=MSG, max_tokens=400)
        pieces = aiter(stream)
        assert await anext(pieces)
        await pieces.aclose()  # type: ignore[attr-defined]  # the client hung up after the first text
        assert lyra.ledger is not None and lyra.budget is not None
        lyra.ledger.flush()
        [attempt] = lyra.ledger.rows(kind="attempt")
        spent = next(line.committed for line in await lyra.budget.snapshot() if line.name == "global")
    model = lyra.catalog.get("openai/gpt-4o-mini")
    assert attempt.error_kind == "cancelled" and attempt.cost_estimated
    assert attempt.generation_id is not None and attempt.generation_id.startswith("gen-")
    assert attempt.completion_tokens == 400
    assert attempt.cost_nanos >= model.cost_nanos(attempt.prompt_tokens, 400) > 0
    assert spent == attempt.cost_nanos  # the cap counts it too, until it is reconciled


async def test_a_cancelled_call_is_booked_not_released(tmp_path: Path) -> None:
    slow = SimulatorOptions(time_scale=1.0, seed=3)
    async with Simulator(options=slow) as sim:
        environ = engine_env(sim) | {"LYRA_LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.db'}"}
        async with Lyra.from_config(config(tmp_path), environ=environ) as lyra:
            task = asyncio.create_task(lyra.complete(model="anthropic/claude-opus-4.8", messages=MSG,
                                                     max_tokens=300))
            for _ in range(3000):  # wait (up to 30 s, on any machine) until the request is upstream
                if sim.stats.calls or task.done():
                    break
                await asyncio.sleep(0.01)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert lyra.ledger is not None
            lyra.ledger.flush()
            [attempt] = lyra.ledger.rows(kind="attempt")
    assert attempt.error_kind == "cancelled" and attempt.cost_nanos > 0


async def test_simulated_spend_never_counts_against_real_caps(sim: Simulator, tmp_path: Path) -> None:
    path = config(tmp_path)
    async with Lyra.from_config(path, environ={}) as simulated:  # no key: the built-in simulator
        assert simulated.config.simulated and simulated.ledger is not None
        await simulated.complete(tier="fast", messages=MSG)
        simulated_url = simulated.ledger.url_for_display
    async with Lyra.from_config(path, environ=engine_env(sim)) as real:
        assert real.ledger is not None and real.budget is not None
        assert real.ledger.url_for_display != simulated_url  # a ledger of its own
        caps = {line.name: line.committed for line in await real.budget.snapshot()}
        assert caps["global"] == 0 and real.ledger.rows() == []
    # Even in one shared ledger, the two kinds of rows never mix.
    shared = Ledger(f"sqlite:///{tmp_path / 'shared.db'}")
    sim_view = Ledger(f"sqlite:///{tmp_path / 'shared.db'}", simulated=True)
    try:
        from lyra.ledger import LedgerRow

        shared.write(LedgerRow(ts=1.0, request_id="real", kind="attempt", cost_nanos=5))
        sim_view.write(LedgerRow(ts=1.0, request_id="sim", kind="attempt", cost_nanos=7, simulated=True))
        shared.flush()
        sim_view.flush()
        assert shared.spend_between(0, 2).total_nanos == 5
        assert sim_view.spend_between(0, 2).total_nanos == 7
    finally:
        shared.close()
        sim_view.close()


async def test_a_state_failure_after_the_answer_keeps_the_row_and_says_retry_later(
    sim: Simulator, tmp_path: Path
) -> None:
    environ = engine_env(sim) | {"LYRA_LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.db'}"}
    async with Lyra.from_config(config(tmp_path), environ=environ) as lyra:
        assert lyra.state is not None and lyra.ledger is not None

        async def commit_fails(reservation_id: str, actual: object) -> None:
            raise StateUnavailable("the budget state cannot be reached (test)")

        lyra.state.commit = commit_fails  # type: ignore[method-assign]  # the state dies after upstream answered
        with pytest.raises(StateUnavailable) as info:
            await lyra.complete(model="openai/gpt-4o-mini", messages=MSG, max_tokens=50)
        lyra.ledger.flush()
        [attempt] = lyra.ledger.rows(kind="attempt")
    assert info.value.retry_after > 0  # the gateway answers 503 with Retry-After, never 500
    assert attempt.status == "ok" and attempt.cost_nanos > 0 and not attempt.cost_estimated
    assert sim.stats.total_cost_nanos == attempt.cost_nanos  # the billed call is in the ledger
