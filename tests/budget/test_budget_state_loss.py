"""A lost budget state is detected before the next admission and rebuilt from the ledger; a state
that cannot be reached refuses (fails closed) instead of admitting calls it cannot count."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from lyra import Lyra, StateUnavailable
from lyra.simulator import Simulator
from lyra.state import SqliteBackend
from support import budget_config_text, engine_env

MSG = [{"role": "user", "content": "BTC 1h: RSI 64. Signal?"}]


def sqlite_engine(sim: Simulator, tmp_path: Path, state: Path) -> Lyra:
    config = tmp_path / "lyra.toml"
    config.write_text(budget_config_text(daily=1.0).replace(
        '[state]\nbackend = "sqlite"', f'[state]\nbackend = "sqlite"\npath = "{state}"'))
    environ = engine_env(sim) | {"LYRA_LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.db'}"}
    return Lyra.from_config(config, environ=environ)


def wipe(state: Path) -> None:
    """What a lost state looks like to the engine: every cap, hold and the epoch marker gone."""
    with sqlite3.connect(state) as db:
        for table in ("caps", "reservations", "expired", "meta"):
            db.execute(f"DELETE FROM {table}")


async def global_spent(lyra: Lyra) -> int:
    assert lyra.budget is not None
    return next(line.committed for line in await lyra.budget.snapshot() if line.name == "global")


async def test_a_wiped_state_is_rebuilt_from_the_ledger_before_the_next_admission(
    sim: Simulator, tmp_path: Path
) -> None:
    state = tmp_path / "state.db"
    async with sqlite_engine(sim, tmp_path, state) as lyra:
        spent = [await lyra.complete(tier="fast", messages=MSG, cache="bypass") for _ in range(3)]
        before = await global_spent(lyra)
        assert before == sum(c.cost_nanos for c in spent) > 0
        wipe(state)
        assert await global_spent(lyra) == 0  # the state itself forgot the day
        after = await lyra.complete(tier="fast", messages=MSG, cache="bypass")
        # The admission noticed the missing epoch and rebuilt the day from the ledger first.
        assert await global_spent(lyra) == before + after.cost_nanos
        assert await SqliteBackend(state).epoch() is not None


async def test_a_second_process_joins_the_epoch_instead_of_rebuilding_twice(
    sim: Simulator, tmp_path: Path
) -> None:
    state = tmp_path / "state.db"
    async with sqlite_engine(sim, tmp_path, state) as first:
        await first.complete(tier="fast", messages=MSG, cache="bypass")
        async with sqlite_engine(sim, tmp_path, state) as second:
            assert await global_spent(second) == await global_spent(first) > 0  # not counted twice
            assert first.state is not None and second.state is not None
            assert first.state.expected_epoch == second.state.expected_epoch


async def test_an_unreachable_redis_refuses_with_one_line_and_calls_nothing_upstream(
    sim: Simulator, tmp_path: Path
) -> None:
    config = tmp_path / "lyra.toml"
    config.write_text(budget_config_text(daily=1.0).replace('[state]\nbackend = "sqlite"',
                                                            '[state]\nbackend = "redis"'))
    environ = engine_env(sim) | {"LYRA_LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.db'}",
                                 "LYRA_REDIS_URL": "redis://127.0.0.1:1/0"}  # nothing listens there
    with pytest.raises(StateUnavailable, match="cannot be reached") as info:
        async with Lyra.from_config(config, environ=environ):
            pass
    assert "\n" not in str(info.value)
    assert sim.stats.calls == 0
