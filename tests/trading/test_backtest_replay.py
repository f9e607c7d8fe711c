"""Record and replay: a replayed backtest reproduces every decision with no upstream call."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from lyra import Lyra
from lyra.simulator import Simulator
from lyra.trading.backtest import Window
from lyra.trading.cassette import Cassette
from lyra.trading.data import Bars
from lyra.trading.evaluate import BacktestOptions, ReplayMismatch, run_backtest
from support import ACTIVE_SIGNALS, decided_trades

OPTIONS = BacktestOptions(window=Window(start="2017-06-01", every=5))

ENGINE_EDITS = ACTIVE_SIGNALS


def decisions_json(report: dict) -> bytes:
    return orjson.dumps(report["decisions"], option=orjson.OPT_SORT_KEYS)


def outcome(strategy: dict) -> dict:
    return {k: v for k, v in strategy.items() if k not in ("ai_spend_nanos", "return_on_ai_spend")}


async def test_replay_reproduces_every_decision_with_zero_upstream_calls(
        engine: Lyra, sim: Simulator, bars: Bars, tmp_path: Path) -> None:
    path = tmp_path / "run.cassette.json"
    recorder = Cassette(path, "record")
    recorded = await run_backtest(engine, bars, OPTIONS, cassette=recorder)
    recorder.save()
    calls = sim.stats.calls
    assert calls > 0 and recorder.recorded > 0
    assert any(d["action"] != "HOLD" for d in recorded["decisions"])

    player = Cassette(path, "replay")
    replayed = await run_backtest(engine, bars, OPTIONS, cassette=player)
    assert sim.stats.calls == calls  # not one upstream call
    assert player.replayed > 0
    assert decided_trades(replayed) == decided_trades(recorded)
    assert [outcome(s) for s in replayed["strategies"]] == [outcome(s) for s in recorded["strategies"]]


async def test_the_cassette_records_models_prices_and_time_range(engine: Lyra, bars: Bars, tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    cassette = Cassette(path, "record")
    report = await run_backtest(engine, bars, OPTIONS, cassette=cassette)
    cassette.save()
    data = orjson.loads(path.read_bytes())
    assert data["format"] == "lyra-cassette/1"
    assert data["time_range"] == [report["window"]["start"], report["window"]["end"]]
    served = {s["model"] for d in report["decisions"] for s in d["stages"] if s["status"] == "ok" and s["model"]}
    single = {m for m in served if ", " not in m}
    assert single <= set(data["models"])
    for row in data["models"].values():
        assert row["answers"] > 0 and row["cost_nanos"] >= 0 and "usd_per_million_tokens" in row


async def test_a_replay_miss_names_the_request(engine: Lyra, bars: Bars, tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    cassette = Cassette(path, "record")
    await run_backtest(engine, bars, OPTIONS, cassette=cassette)
    cassette.save()
    other = BacktestOptions(window=Window(start="2016-01-04", end="2016-03-01", every=5))
    with pytest.raises(ReplayMismatch, match=r"no answer for request [0-9a-f]{32} \(task="):
        await run_backtest(engine, bars, other, cassette=Cassette(path, "replay"))


def test_replaying_a_missing_cassette_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="does not exist; record one first"):
        Cassette(tmp_path / "none.json", "replay")
