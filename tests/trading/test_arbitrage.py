"""Arbitrage: exact net spreads, only candidates above the threshold reach the model, report, replay."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from lyra import Lyra
from lyra.simulator import Fault, Simulator
from lyra.trading.arbitrage import Costs, align, best_spread, derive_venue, round_trip
from lyra.trading.arbitrage_run import ArbitrageOptions, replay_record, run_arbitrage
from lyra.trading.cassette import Cassette, CassetteMiss
from lyra.trading.data import Bars, load_bars, load_sample

D = Decimal
ADVANCED = ("anthropic/claude-sonnet-4.6", "x-ai/grok-4.6", "deepseek/deepseek-chat", "openai/gpt-4-turbo")
# Venue B's closes against venue A's flat 100; B has no bar at 06:00 (its quote then is 05:00's).
B_CLOSES = {0: "100", 1: "100.2", 2: "100.03", 3: "100.07", 4: "100", 5: "99.8", 7: "100", 8: "100", 9: "100.5"}


def costs(**fields: Decimal) -> Costs:
    base = {"quantity": D(1000), "fee_bps_a": D(1), "fee_bps_b": D(1), "slippage_bps": D(0),
            "transfer_usd": D(0), "transfer_bps": D(0), "threshold_bps": D(5)}
    return Costs(**(base | fields))


def test_the_net_spread_is_exact_on_known_numbers() -> None:
    c = costs(fee_bps_a=D(10), fee_bps_b=D(20), slippage_bps=D(5), transfer_usd=D(3), transfer_bps=D(1))
    s = round_trip("A", D("100.00"), D("100.50"), c)
    assert (s.bought_usd, s.gross_usd) == (D(100_000), D(500))
    assert s.fees_usd == D(301)  # 10 bps of 100,000 bought on A + 20 bps of 100,500 sold on B
    assert s.slippage_usd == D("100.25")  # 5 bps of both sides' 200,500
    assert s.transfer_usd == D(13)  # $3 + 1 bps of 100,000
    assert s.net_usd == D("85.75") and s.bps(s.net_usd) == D("8.5750")
    assert s.passes(D("8.575")) and not s.passes(D("8.5751"))  # compared exactly, at the boundary
    flipped = best_spread(D("100.50"), D("100.00"), c)
    assert flipped is not None and flipped.buy_venue == "B" and flipped.fees_usd == D("100") * 2 + D("100.5") * 1
    assert best_spread(D(100), D(100), c) is None


def test_a_loss_making_spread_never_passes_a_zero_threshold() -> None:
    s = round_trip("A", D(100), D("100.01"), costs(threshold_bps=D(0)))
    assert s.net_usd < 0 and not s.passes(D(0))


def test_an_arbitrage_table_routed_nowhere_is_one_line(tmp_path: Path) -> None:
    from lyra.config import load_config
    from lyra.errors import ConfigError
    from support import fast_config_text

    path = tmp_path / "lyra.toml"
    text = fast_config_text()
    path.write_text(text.replace('tier = "advanced"\n# key = "grok4"', 'tier = "golden"'))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert "arbitrage.tier: unknown tier 'golden'" in str(caught.value) and "\n" not in str(caught.value)


@pytest.fixture
def venues(write_csv) -> tuple[Bars, Bars]:
    rows_a = "".join(f"2024-01-01T{h:02d}:00:00Z,100,100,100,100,1000000000\n" for h in range(10))
    rows_b = "".join(f"2024-01-01T{h:02d}:00:00Z,{p},{p},{p},{p},1000000000\n" for h, p in B_CLOSES.items())
    head = "time,open,high,low,close,volume\n"
    a = load_bars(write_csv(head + rows_a, "venue_a.csv"), symbol="XYZ")
    b = load_bars(write_csv(head + rows_b, "venue_b.csv"), symbol="XYZ", max_gap=None)
    return a, b


def test_alignment_takes_venue_bs_last_quote_and_its_age(venues: tuple[Bars, Bars]) -> None:
    points = align(*venues)
    assert len(points) == 10
    assert points[6].price_b == D("99.8") and points[6].age_b_s == 3600
    assert points[7].since_previous_b_s == 7200 and points[1].age_b_s == 0


async def test_only_candidates_above_the_threshold_reach_the_model(engine: Lyra, sim: Simulator,
                                                                   venues: tuple[Bars, Bars]) -> None:
    before = sim.stats.calls
    report = await run_arbitrage(engine, *venues, ArbitrageOptions(costs=costs()))
    assert sim.stats.calls - before == report["passed_filter"] == 4  # 01:00, 05:00, 06:00, 09:00
    assert (report["candidates"], report["accepted"], report["rejected"]) == (6, 3, 1)
    by_time = {e["time"][11:16]: e for e in report["evaluations"]}
    assert by_time["06:00"]["verdict"] == "reject" and "stale" in by_time["06:00"]["reason"]
    assert D(by_time["01:00"]["net_usd"]) == D("179.98")  # 200 gross - 10 - 10.02 fees
    earned = {k: D(v) for k, v in report["earned_usd"].items()}
    assert earned == {"passed_filter_at_quote": D("1019.97"), "accepted_at_quote": D("839.95"),
                      "passed_filter_next_bar": D("170.017"), "accepted_next_bar": D("190.017")}
    # One bar later: 01:00's round meets 02:00's 100.03 (9.997), 05:00's meets 06:00's stale 99.8 (180.02),
    # 06:00's meets 07:00's equal quotes (-20 of fees); 09:00 has no later bar.
    assert report["ai_spend_nanos"] > 0
    # Every candidate and verdict is in the chain: one record per evaluation and one for the run.
    assert engine.ledger is not None
    assert report["audit"]["records"] == 5 and engine.ledger.audit.verify().ok
    run = engine.ledger.audit.get(str(report["audit"]["last_seq"]))
    assert run is not None and run.payload["kind"] == "arbitrage_run"
    assert [row[4] for row in run.payload["candidate_rows"]] == ["accept", "filtered", "filtered", "accept",
                                                                 "reject", "accept"]
    first = engine.ledger.audit.get(str(report["audit"]["first_seq"]))
    assert first is not None and first.action == "ACCEPT" and first.payload["kind"] == "arbitrage_candidate"


async def test_an_evaluation_not_obtained_is_a_reject(engine: Lyra, sim: Simulator,
                                                      venues: tuple[Bars, Bars]) -> None:
    for model in ADVANCED:
        sim.add_fault(Fault(kind="server_error", model=model))
    report = await run_arbitrage(engine, *venues, ArbitrageOptions(costs=costs()))
    assert report["accepted"] == 0 and report["rejected"] == 4
    assert all(e["reason"].startswith("evaluation not obtained: ") for e in report["evaluations"])
    assert D(report["earned_usd"]["accepted_at_quote"]) == 0


async def test_a_replay_is_byte_for_byte_with_zero_upstream_calls(engine: Lyra, sim: Simulator,
                                                                  tmp_path: Path) -> None:
    a = load_sample("EURUSD")
    b = load_bars(_derived(a, tmp_path), symbol="EURUSD")
    options = ArbitrageOptions(costs=costs(quantity=D(100_000)), start="2017-03-01", end="2017-03-07")
    path = tmp_path / "arb.cassette.json"
    recorder = Cassette(path, "record")
    recorded = await run_arbitrage(engine, a, b, options, cassette=recorder)
    recorder.save()
    calls = sim.stats.calls
    assert recorded["passed_filter"] > 0 and recorder.recorded == recorded["passed_filter"]
    assert 0 < recorded["accepted"] < recorded["passed_filter"]  # the stale quotes are rejected
    player = Cassette(path, "replay")
    replayed = await run_arbitrage(engine, a, b, options, cassette=player)
    assert sim.stats.calls == calls  # not one upstream call
    assert replay_record(replayed) == replay_record(recorded)
    assert orjson.loads(replay_record(replayed))["passed_filter"] == recorded["passed_filter"]
    wider = ArbitrageOptions(costs=options.costs, start="2017-03-01", end="2017-03-14")
    with pytest.raises(CassetteMiss):  # a request never recorded is an error, never a call
        await run_arbitrage(engine, a, b, wider, cassette=Cassette(path, "replay"))


def _derived(a: Bars, tmp_path: Path) -> Path:
    out = tmp_path / "venue_b.csv"
    derive_venue(a, lag_bars=1, offset_bps=D(0), drop_every=7).to_csv(out, date_format="%Y-%m-%dT%H:%M:%SZ")
    return out


def test_the_derived_venue_is_the_series_late_offset_and_gappy(tmp_path: Path) -> None:
    a = load_sample("EURUSD")
    b = load_bars(_derived(a, tmp_path), symbol="EURUSD")
    assert len(b) == (len(a) - 1) - (len(a) - 1) // 7
    assert float(b.frame["close"].iloc[0]) == float(a.frame["close"].iloc[0])  # bar 1 quotes bar 0
    assert b.frame.index[0] == a.frame.index[1]
    moved = derive_venue(a, lag_bars=0, offset_bps=D(10))
    assert D(moved["close"].iloc[0]) == (D("1.05227") * D("1.001")).quantize(D("0.000001"))
