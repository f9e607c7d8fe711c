"""Compliance: each desk rule blocks and names itself; the review can only block and fails closed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import orjson
import pandas as pd
import pytest

from lyra import Lyra
from lyra.config.desk import ComplianceSettings
from lyra.errors import ConfigError
from lyra.simulator import Fault, Simulator
from lyra.trading.backtest import Window
from lyra.trading.compliance import RULES, ComplianceRules, Order
from lyra.trading.data import Bars
from lyra.trading.evaluate import BacktestOptions, run_backtest
from lyra.trading.pipeline import TradeDecision, TradingAIOrchestrator
from support import ACTIVE_SIGNALS, decided_trades, engine_env, fast_config_text

T0 = pd.Timestamp("2024-03-04 15:00", tz="UTC")
SPECIALIZED = ("openai/gpt-5.3-codex", "qwen/qwen3-coder", "microsoft/phi-4", "meta-llama/llama-3.3-70b-instruct")


def order(action: str = "BUY", *, units: float = 0.0, notional: float = 5_000, when: pd.Timestamp = T0,
          symbol: str = "GOOGL") -> Order:
    return Order(symbol=symbol, time=when, action=action, notional_usd=notional,  # type: ignore[arg-type]
                 position_units=units, price=100.0)


def rules(**fields: object) -> ComplianceRules:
    return ComplianceRules(ComplianceSettings.model_validate({"enabled": True, **fields}, strict=False))


@pytest.mark.parametrize(("fields", "the_order", "rule", "says"), [
    ({"kill_switch": True}, order(), "kill_switch", "compliance.kill_switch = true"),
    ({"restricted_symbols": ["googl"]}, order(), "restricted_symbols", "GOOGL is restricted"),
    ({"trading_hours_utc": {"GOOGL": "14:30-21:00"}}, order(when=T0.replace(hour=22)), "trading_hours",
     "22:00 UTC is outside GOOGL's hours 14:30-21:00"),
    ({"trading_hours_utc": {"*": "22:00-06:00"}}, order(), "trading_hours", "outside GOOGL's hours"),
    ({"max_trades_per_day": 0}, order(), "max_trades_per_day", "0 of 0 today"),
    ({"max_order_notional_usd": 4_000}, order(), "max_order_notional", "order $5,000.00 over the $4,000.00"),
    # A reversal trades out of the old position and into the new one: $3,000 + $3,000.
    ({"max_order_notional_usd": 5_000}, order("SELL", units=30, notional=3_000), "max_order_notional",
     "order $6,000.00"),
    ({"max_position_notional_usd": 4_999.99}, order(), "max_position_notional", "position $5,000.00 over"),
])
def test_each_rule_blocks_and_names_itself(fields: dict, the_order: Order, rule: str, says: str) -> None:
    check = rules(**fields).check(the_order)
    assert check.blocked_by == rule
    assert check.reason.startswith(f"blocked by compliance rule {rule} (") and says in check.reason
    assert check.checked == RULES[:RULES.index(rule) + 1]  # checked in the fixed order, first failure wins


def test_rules_pass_an_order_within_them_and_never_block_an_exit() -> None:
    desk = rules(max_order_notional_usd=5_000, max_position_notional_usd=5_000,
                 trading_hours_utc={"GOOGL": "14:30-21:00"}, max_trades_per_day=1)
    assert desk.check(order()).passed
    killed = rules(kill_switch=True, restricted_symbols=["GOOGL"])
    assert killed.check(order("CLOSE", units=50)).passed
    assert killed.check(order("HOLD", units=50)).passed
    assert killed.check(order("BUY", units=50)).passed  # already long: the BUY trades nothing


def test_trades_per_day_count_the_orders_let_through_and_reset_each_day() -> None:
    desk = rules(max_trades_per_day=2)
    for hour in (15, 16):
        first = order("BUY" if hour == 15 else "SELL", when=T0.replace(hour=hour), units=0)
        assert desk.check(first).passed
        desk.book.record(first)
    third = desk.check(order(when=T0.replace(hour=17)))
    assert third.blocked_by == "max_trades_per_day" and "(2 of 2 today)" in third.reason
    assert desk.check(order(when=T0 + pd.Timedelta(days=1))).passed


def test_no_reversal_within_the_minimum_holding_time() -> None:
    desk = rules(min_holding_s=3_600)
    opened = order("BUY")
    desk.book.record(opened)
    early = desk.check(order("SELL", units=50, when=T0 + pd.Timedelta(minutes=59)))
    assert early.blocked_by == "min_holding_time"
    assert "held 3,540 s of the 3,600 s minimum" in early.reason
    assert desk.check(order("SELL", units=50, when=T0 + pd.Timedelta(minutes=60))).passed
    assert desk.check(order("CLOSE", units=50, when=T0 + pd.Timedelta(minutes=1))).passed


def test_the_kill_switch_file_is_read_on_every_order(tmp_path: Path) -> None:
    switch = tmp_path / "KILL"
    desk = rules(kill_switch_file=str(switch))
    assert desk.check(order()).passed
    switch.touch()  # flipped by the desk, no restart
    blocked = desk.check(order())
    assert blocked.blocked_by == "kill_switch"
    assert blocked.reason == f"blocked by compliance rule kill_switch (file {switch} exists)"
    switch.unlink()
    assert desk.check(order()).passed


def test_bad_compliance_config_is_one_line_naming_the_field(tmp_path: Path) -> None:
    from lyra.config import load_config

    for section, field in (('trading_hours_utc = { GOOGL = "25:00-26:00" }', "trading_hours_utc"),
                           ('review = true\nreview_key = "nokey"', "compliance.review_key"),
                           ('review = true\nreview_tier = "gold"', "compliance.review_tier"),
                           ("max_trades_per_day = -1", "max_trades_per_day")):
        path = tmp_path / "lyra.toml"
        path.write_text(fast_config_text() + f"\n[compliance]\nenabled = true\n{section}\n")
        with pytest.raises(ConfigError) as caught:
            load_config(path)
        assert field in str(caught.value) and "\n" not in str(caught.value)


# --- through the pipeline, over the simulator ---------------------------------------------------

def desk_config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "lyra.toml"
    text = fast_config_text(**ACTIVE_SIGNALS) + f"\n[compliance]\nenabled = true\n{body}\n"
    path.write_text(text)
    return path


@pytest.fixture
def desk_engine(sim: Simulator, tmp_path: Path) -> Callable[[str], AsyncIterator[Lyra]]:
    def make(body: str) -> AsyncIterator[Lyra]:
        async def opened() -> AsyncIterator[Lyra]:
            env = engine_env(sim) | {"LYRA_LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.db'}"}
            async with Lyra.from_config(desk_config(tmp_path, body), environ=env) as lyra:
                yield lyra
        return opened()
    return make


async def first_order(orchestrator: TradingAIOrchestrator, bars: Bars, notional: float = 5_000
                      ) -> TradeDecision:
    """The first decision whose risk rules let a BUY or SELL through (the compliance gate saw an order)."""
    for t in bars.frame.index[-150:]:
        decision = await orchestrator.decide("GOOGL", bars, proposed_notional=notional, at=t)
        checked = (decision.compliance or {}).get("rules_checked")
        if checked:
            return decision
    raise AssertionError("no bar produced an order")


def audit_payload(lyra: Lyra, decision: TradeDecision) -> dict:
    assert lyra.ledger is not None and decision.audit_seq is not None
    record = lyra.ledger.audit.get(str(decision.audit_seq))
    assert record is not None and lyra.ledger.audit.verify().ok
    return record.payload


async def test_every_orchestrator_on_an_engine_shares_the_desk_book(desk_engine) -> None:
    async for lyra in desk_engine("max_trades_per_day = 1"):
        first, second = TradingAIOrchestrator(lyra), TradingAIOrchestrator(lyra, client="other")
        assert first.compliance is not None and first.compliance is second.compliance
        taken = order()
        first.compliance.rules.book.record(taken)
        assert second.compliance.rules.check(order("SELL", units=50)).blocked_by == "max_trades_per_day"


async def test_a_rule_block_is_a_hold_named_in_the_decision_and_the_audit(desk_engine, bars: Bars) -> None:
    async for lyra in desk_engine('restricted_symbols = ["GOOGL"]\nreview = true'):
        decision = await first_order(TradingAIOrchestrator(lyra), bars)
        assert decision.action == "HOLD" and decision.notional_usd == 0
        assert decision.compliance is not None
        assert decision.compliance["blocked_by"] == "rule:restricted_symbols"
        assert any(r.startswith("blocked by compliance rule restricted_symbols") for r in decision.risk.reasons)
        review = next(s for s in decision.stages if s.stage == "compliance_review")
        assert review.status == "skipped"  # a rule that fails is never sent to a model
        assert audit_payload(lyra, decision)["compliance"]["blocked_by"] == "rule:restricted_symbols"


async def test_the_review_approves_without_changing_the_order(desk_engine, bars: Bars, sim: Simulator) -> None:
    async for lyra in desk_engine("max_order_notional_usd = 1_000_000\nreview = true"):
        decision = await first_order(TradingAIOrchestrator(lyra), bars)
        review = next(s for s in decision.stages if s.stage == "compliance_review")
        assert review.status == "ok" and review.tier == "premium"
        assert decision.compliance is not None and decision.compliance["verdict"] == "pass"
        assert decision.compliance["review"]["verdict"] == "approve"
        assert decision.action in ("BUY", "SELL") and decision.notional_usd == decision.risk.notional_usd > 0
        assert review.cost_nanos > 0 and decision.cost_nanos == sum(s.cost_nanos for s in decision.stages)


async def test_the_review_blocks_with_its_reason(desk_engine, bars: Bars) -> None:
    # The simulated reviewer sends an order within 10 % of a limit to a person; the rule itself allows it.
    async for lyra in desk_engine("max_order_notional_usd = 5_000\nreview = true"):
        decision = await first_order(TradingAIOrchestrator(lyra), bars, notional=4_800)
        assert decision.compliance is not None, decision
        if decision.compliance["blocked_by"] == "rule:max_order_notional":
            pytest.fail("the risk rules sized the order above the compliance limit")
        assert decision.action == "HOLD"
        assert decision.compliance["blocked_by"] == "review"
        assert decision.compliance["reason"].startswith("blocked by compliance review (order $4,800")
        assert audit_payload(lyra, decision)["compliance"]["review"]["verdict"] == "block"


@pytest.mark.parametrize("kind", ["server_error", "malformed"])
async def test_a_review_not_obtained_blocks_the_order(desk_engine, bars: Bars, sim: Simulator, kind: str) -> None:
    async for lyra in desk_engine('review = true\nreview_tier = "specialized"'):
        for model in SPECIALIZED:
            sim.add_fault(Fault(kind=kind, model=model))
        decision = await first_order(TradingAIOrchestrator(lyra), bars)
        assert decision.action == "HOLD"
        assert decision.compliance is not None and decision.compliance["blocked_by"] == "review"
        assert decision.compliance["reason"].startswith("compliance review not obtained: ")
        assert audit_payload(lyra, decision)["compliance"]["verdict"] == "blocked"


async def test_the_rules_apply_in_a_backtest_end_to_end(desk_engine, bars: Bars, sim: Simulator) -> None:
    options = BacktestOptions(window=Window(start="2017-01-01", every=1))
    async for lyra in desk_engine("max_trades_per_day = 0"):
        report = await run_backtest(lyra, bars, options)
        blocked = [d for d in report["decisions"] if (d.get("compliance") or {}).get("verdict") == "blocked"]
        assert blocked, "no order reached the gate"
        assert {d["compliance"]["blocked_by"] for d in blocked} == {"rule:max_trades_per_day"}
        assert all(d["action"] in ("HOLD", "CLOSE") for d in report["decisions"])
        pipeline = next(s for s in report["strategies"] if s["name"] == "pipeline")
        assert pipeline["trades"] == sum(1 for e in report["events"] if e["kind"] == "emergency_stop")


async def test_trading_hours_hold_in_a_backtest_of_hourly_bars(desk_engine) -> None:
    from lyra.trading.data import load_sample

    eurusd = load_sample("EURUSD")
    options = BacktestOptions(window=Window(start="2017-03-01", end="2017-03-10", every=1))
    async for lyra in desk_engine('trading_hours_utc = { EURUSD = "08:00-16:00" }'):
        report = await run_backtest(lyra, eurusd, options)
        gated = [d for d in report["decisions"] if (d.get("compliance") or {}).get("rules_checked")]
        let_through = [d for d in gated if d["compliance"]["verdict"] == "pass"]
        blocked = [d for d in gated if d["compliance"]["verdict"] == "blocked"]
        assert let_through and blocked
        assert all("08" <= d["time"][11:13] < "16" for d in let_through)
        assert all(not "08" <= d["time"][11:13] < "16" and d["action"] == "HOLD" for d in blocked)
        assert {d["compliance"]["blocked_by"] for d in blocked} == {"rule:trading_hours"}
        assert orjson.dumps(report["decisions"])  # the record is JSON all the way down


async def test_a_backtest_with_the_review_replays_byte_for_byte_from_a_cassette(
        desk_engine, bars: Bars, sim: Simulator, tmp_path: Path) -> None:
    from lyra.trading.cassette import Cassette

    options = BacktestOptions(window=Window(start="2017-06-01", every=5))
    path = tmp_path / "desk.cassette.json"
    async for lyra in desk_engine("max_order_notional_usd = 5_000\nreview = true"):
        recorder = Cassette(path, "record")
        recorded = await run_backtest(lyra, bars, options, cassette=recorder)
        recorder.save()
        reviewed = [d for d in recorded["decisions"]
                    if any(s["stage"] == "compliance_review" and s["status"] == "ok" for s in d["stages"])]
        assert reviewed, "no order reached the review"
        calls = sim.stats.calls
        replayed = await run_backtest(lyra, bars, options, cassette=Cassette(path, "replay"))
        assert sim.stats.calls == calls  # not one upstream call
        for one in (recorded, replayed):
            for d in one["decisions"]:
                for s in d["stages"]:
                    s.pop("latency_s", None)
        assert [d["compliance"] for d in replayed["decisions"]] == [d["compliance"] for d in recorded["decisions"]]
        # Byte for byte: every decision's trade and its compliance review (panel members still running
        # when a panel settled may differ in cost, see support.decided_trades; the decisions may not).
        assert decided_trades(replayed) == decided_trades(recorded)

        def reviews(report: dict) -> bytes:
            return orjson.dumps([[d["compliance"], [s for s in d["stages"] if s["stage"] == "compliance_review"]]
                                 for d in report["decisions"]], option=orjson.OPT_SORT_KEYS)

        assert reviews(replayed) == reviews(recorded)
