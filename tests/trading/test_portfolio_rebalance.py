"""The rebalancing decision over the simulator: routing by notional, audit chain, CLI, replay from a cassette."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import orjson
import pandas as pd
import typer
from typer.testing import CliRunner

from lyra import Lyra
from lyra.simulator import Simulator
from lyra.trading.backtest import Window
from lyra.trading.cassette import Cassette
from lyra.trading.data import load_sample
from lyra.trading.portfolio import align
from lyra.trading.portfolio_backtest import PortfolioOptions, run_portfolio_backtest
from lyra.trading.rebalance import Limits, PortfolioView, Rebalancer, rebalance_schema

WINDOW = Window(start="2017-10-01", every=10)


def aligned():  # GOOGL daily beside EURUSD hourly resampled to daily
    return align([load_sample("GOOGL"), load_sample("EURUSD")])


def view_at(equity: Decimal) -> PortfolioView:
    data = aligned()
    t = data.times[-40]
    return PortfolioView(time=t, known=data.known(t), current={"GOOGL": 0.0, "EURUSD": 0.0}, equity=equity,
                         every=5)


async def test_a_small_rebalance_is_decided_on_the_premium_tier_alone(engine: Lyra, sim: Simulator) -> None:
    rebalancer = Rebalancer(engine, limits=Limits(max_turnover=2.0))
    decision = await rebalancer.decide(view_at(Decimal(1_000)))  # any move trades under $10,000
    assert decision.route == "premium" and decision.approved is None
    assert [s.stage for s in decision.stages] == ["portfolio_rebalancing"]
    assert decision.stages[0].tier == "premium"
    assert decision.turnover_usd < Decimal(10_000)


async def test_a_rebalance_from_the_premium_notional_up_goes_to_the_full_panel(engine: Lyra) -> None:
    rebalancer = Rebalancer(engine, limits=Limits(max_turnover=2.0))
    decision = await rebalancer.decide(view_at(Decimal(10_000_000)))
    if decision.turnover == 0:  # the model asked for nothing: nothing to route
        raise AssertionError(f"the simulated model should propose a move: {decision.to_dict()}")
    assert decision.route == "panel"
    review = decision.stages[1]
    assert review.stage == "rebalance_review" and review.tier == "panel:trade"
    assert decision.panel is not None and decision.panel.panel == "trade"  # the full panel, no cheap step
    if not decision.approved:
        assert decision.turnover_usd <= Decimal(10_000) + Decimal("0.01")
        assert any("cut to the $10,000" in r for r in decision.reasons)


async def test_every_rebalance_is_in_the_audit_chain(engine: Lyra) -> None:
    decision = await Rebalancer(engine).decide(view_at(Decimal(100_000)))
    assert engine.ledger is not None and decision.audit_seq is not None
    record = engine.ledger.audit.get(str(decision.audit_seq))
    assert record is not None and record.payload["kind"] == "portfolio_rebalance"
    assert record.payload["source"] == "live"
    assert record.symbol == "PORTFOLIO:GOOGL+EURUSD"
    assert record.payload["weights"] == decision.to_dict()["weights"]


async def test_prompts_name_no_symbol_and_no_date_when_anonymised(engine: Lyra) -> None:
    seen: list[str] = []

    async def spy(request, call):  # type: ignore[no-untyped-def]
        seen.append(json.dumps([m["content"] for m in request.messages]))
        return await call(request)

    engine.set_interceptor(spy)
    try:
        await Rebalancer(engine).decide(view_at(Decimal(100_000)))
    finally:
        engine.set_interceptor(None)
    assert seen and not any(word in text for text in seen for word in ("GOOGL", "EURUSD", "2017-"))
    assert "asset_1" in seen[0]


def test_the_schema_names_every_asset() -> None:
    schema = rebalance_schema(["asset_1", "asset_2"])["json_schema"]["schema"]
    assert schema["properties"]["weights"]["required"] == ["asset_1", "asset_2"]


async def test_the_backtest_replays_byte_for_byte_with_zero_upstream_calls(
        engine: Lyra, sim: Simulator, tmp_path: Path) -> None:
    path = tmp_path / "p.cassette.json"
    options = PortfolioOptions(window=WINDOW)
    recorder = Cassette(path, "record")
    recorded = await run_portfolio_backtest(engine, aligned(), options, cassette=recorder)
    recorder.save()
    calls = sim.stats.calls
    assert calls > 0 and recorder.recorded > 0
    replayed = await run_portfolio_backtest(engine, aligned(), options, cassette=Cassette(path, "replay"))
    assert sim.stats.calls == calls  # not one upstream call
    def same(r: dict) -> bytes:
        outcome = [{k: v for k, v in row.items() if k not in ("ai_spend_nanos", "return_on_ai_spend")}
                   for row in r["strategies"]]
        return orjson.dumps([r["rebalances"], r["fills"], outcome, r["curves"]], option=orjson.OPT_SORT_KEYS)

    assert same(replayed) == same(recorded)
    names = [s["name"] for s in recorded["strategies"]]
    assert names == ["model", "equal_weight", "inverse_volatility", "buy_and_hold_GOOGL", "buy_and_hold_EURUSD"]
    assert recorded["resampled"] == {"EURUSD": "1h"}
    assert engine.ledger is not None  # both runs' rebalances are in the audit chain, and it holds
    audited = [r for r in engine.ledger.audit.recent(1000) if r.payload.get("kind") == "portfolio_rebalance"]
    assert len(audited) == 2 * len(recorded["rebalances"])
    assert {r.payload["source"] for r in audited} == {"backtest"}
    assert engine.ledger.audit.verify().ok
    first = pd.Timestamp(recorded["window"]["start"])
    assert all(pd.Timestamp(f["time"]) > first for f in recorded["fills"])  # next-bar fills only


def test_lyra_backtest_portfolio_json_end_to_end(cli: typer.Typer, tmp_path: Path) -> None:
    cassette = tmp_path / "cli.json"
    args = ["backtest", "--portfolio", "GOOGL,EURUSD", "--from", "2017-11-01", "--every", "5",
            "--symbol-fees", "EURUSD=0.2", "--timeframes", "1w", "--json"]
    result = CliRunner().invoke(cli, [*args, "--record", str(cassette)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["symbols"] == ["GOOGL", "EURUSD"] and report["interval"] == "1d"
    assert report["costs"]["symbol_fee_bps"] == {"EURUSD": "0.2"} and report["timeframes"] == ["1d", "1w"]
    assert report["upstream_calls"] > 0 and report["window"]["rebalances"] == len(report["decisions"])
    model = report["strategies"][0]
    assert model["ai_spend_nanos"] > 0 and Decimal(model["fees_usd"]) >= 0
    eurusd = [f for f in report["fills"] if f["symbol"] == "EURUSD"]
    for fill in eurusd:  # 0.2 bps of the notional, to the nano-dollar
        assert Decimal(fill["fee_usd"]) == (Decimal(fill["notional_usd"]) * Decimal("0.00002")).quantize(
            Decimal("0.000000001"))
    again = CliRunner().invoke(cli, [*args, "--replay", str(cassette)])
    assert again.exit_code == 0, again.output
    replayed = json.loads(again.stdout)
    assert replayed["upstream_calls"] == 0 and replayed["rebalances"] == report["rebalances"]
    assert replayed["fills"] == report["fills"]


def test_a_bad_portfolio_is_one_line(cli: typer.Typer) -> None:
    result = CliRunner().invoke(cli, ["backtest", "--portfolio", "GOOGL"])
    assert result.exit_code != 0 and "at least two" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(cli, ["backtest", "--portfolio", "GOOGL,EURUSD", "--symbol-fees", "X"])
    assert result.exit_code != 0 and "--symbol-fees" in result.output


async def test_a_rebalance_at_t_does_not_change_when_the_bars_after_t_change(engine: Lyra) -> None:
    """The look-ahead probe for portfolios: every symbol's future scrambled, higher timeframes included."""
    from lyra.trading.data import Bars

    data = aligned()
    t = data.times[-60]
    scrambled = {}
    for symbol, bars in data.bars.items():
        frame = bars.frame.copy()
        future = frame.index > t
        frame.loc[future, ["open", "high", "low", "close"]] = frame.loc[future, ["open", "high", "low",
                                                                                  "close"]].to_numpy()[::-1]
        scrambled[symbol] = Bars(frame=frame, symbol=symbol, interval=bars.interval)
    rebalancer = Rebalancer(engine, timeframes=("1w",), audit=False)
    current = {"GOOGL": 0.1, "EURUSD": 0.0}
    first = await rebalancer.decide(PortfolioView(time=t, known=data.bars, current=current,
                                                  equity=Decimal(100_000), every=5))
    second = await rebalancer.decide(PortfolioView(time=t, known=scrambled, current=current,
                                                   equity=Decimal(100_000), every=5))
    assert first.inputs_hash == second.inputs_hash
    assert first.canonical() == second.canonical()


async def test_a_window_end_cuts_every_symbol_and_a_replay_miss_names_the_request(
        engine: Lyra, tmp_path: Path) -> None:
    import pytest

    from lyra.trading.evaluate import ReplayMismatch

    path = tmp_path / "short.json"
    short = PortfolioOptions(window=Window(start="2017-10-01", end="2017-11-15", every=10))
    recorder = Cassette(path, "record")
    report = await run_portfolio_backtest(engine, aligned(), short, cassette=recorder)
    recorder.save()
    assert report["window"]["end"] == "2017-11-15T00:00:00+00:00"
    assert all(pd.Timestamp(f["time"]) <= pd.Timestamp("2017-11-15", tz="UTC") for f in report["fills"])
    other = PortfolioOptions(window=Window(start="2017-06-01", end="2017-07-15", every=10))
    with pytest.raises(ReplayMismatch, match=r"no answer for request [0-9a-f]{32}"):
        await run_portfolio_backtest(engine, aligned(), other, cassette=Cassette(path, "replay"))
