"""Record then replay one backtest with `lyra backtest`: the counters agree, and a replay starts no simulator."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from lyra import Lyra
from lyra.errors import LyraError
from lyra.simulator import Simulator

WINDOW = ["--from", "2018-03-01", "--every", "10"]


def counters_of(out: str, mode: str) -> str:
    """The cassette line's counters, after `(mode): ` and without the words that say where from."""
    [line] = [line for line in out.splitlines() if line.startswith("cassette ")]
    counters = line.partition(f"({mode}): ")[2]
    return re.sub(r" \((recorded now|served from the cassette, no model called)\)", "", counters)


def test_record_and_replay_count_the_same_requests(cli: typer.Typer, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    cassette = tmp_path / "c.json"
    runner = CliRunner()
    recorded = runner.invoke(cli, ["backtest", *WINDOW, "--record", str(cassette)])
    assert recorded.exit_code == 0, recorded.output
    upstream = re.search(r"^upstream calls: (\d+) \(HTTP requests the simulator answered", recorded.stdout, re.M)
    assert upstream is not None and int(upstream[1]) > 0

    started: list[str] = []

    async def refused(self: Simulator) -> None:
        started.append("simulator")
        raise AssertionError("a replay started the simulator")

    monkeypatch.setattr(Simulator, "start", refused)
    replayed = runner.invoke(cli, ["backtest", *WINDOW, "--replay", str(cassette), "--json"])
    assert replayed.exit_code == 0, replayed.output
    assert started == [] and "no OpenRouter key set" not in replayed.output
    result = json.loads(replayed.stdout)
    counts = result["cassette"]["counts"]
    assert result["upstream_calls"] == 0 and result["cassette"]["replayed"] == counts["requests"] > 0
    assert counts["requests"] == counts["model"] + counts["cache"] + counts["failed"] + counts["abandoned"]
    assert counts["model"] > 0 and counts["distinct"] <= counts["requests"]

    table = runner.invoke(cli, ["backtest", *WINDOW, "--replay", str(cassette)])
    assert table.exit_code == 0, table.output
    assert counters_of(table.stdout, "replay") == counters_of(recorded.stdout, "record")
    assert counters_of(table.stdout, "replay") == (
        f"{counts['requests']} requests = {counts['model']} answered by a model + {counts['cache']} from the "
        f"response cache + {counts['failed']} failed + {counts['abandoned']} abandoned (a panel settled "
        f"first); {counts['distinct']} distinct")
    assert "upstream calls: 0 (" in table.stdout


async def test_an_offline_engine_refuses_a_request_no_cassette_answers(
        config_path: Callable[..., Path], monkeypatch: pytest.MonkeyPatch) -> None:
    async def refused(self: Simulator) -> None:
        raise AssertionError("an offline engine started the simulator")

    monkeypatch.setattr(Simulator, "start", refused)
    engine = Lyra.from_config(config_path())
    await engine.start_offline()
    try:
        assert engine.simulator is None and engine.budget is not None
        with pytest.raises(LyraError, match=r"started offline \(a replay\) and calls no model"):
            await engine.complete(tier="fast", messages=[{"role": "user", "content": "x"}])
    finally:
        await engine.aclose()
