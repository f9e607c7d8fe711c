"""The paper account: the halt from the day's start on intraday bars, stops between decisions, exact P&L."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lyra.config import RiskSettings, Settings, load_config
from lyra.ledger import Ledger
from lyra.trading.account import AccountError, BarPrices, Costs, PaperAccount, bar_prices
from lyra.trading.backtest import Decider, Step, walk
from lyra.trading.data import Bars, load_bars
from lyra.trading.paper import PaperBook, results
from lyra.trading.risk import AccountState, FinalAction, RiskRules

FREE = Costs(fee_bps=0, slippage_bps=0)
WIDE_STOP = RiskSettings(emergency_stop_loss=0.5, max_position_share=1.0)


def hourly(closes: list[float], *, start: str = "2024-03-04 00:00") -> Bars:
    """Hourly bars that open at the previous close and trade only between open and close."""
    opens = [closes[0], *closes[:-1]]
    times = pd.date_range(start, periods=len(closes), freq="h", tz="UTC")
    frame = pd.DataFrame({"open": opens, "high": [max(o, c) for o, c in zip(opens, closes, strict=True)],
                          "low": [min(o, c) for o, c in zip(opens, closes, strict=True)], "close": closes,
                          "volume": 1.0}, index=times)
    return load_bars(frame.rename_axis("time"), symbol="TEST", interval="1h")


def ruled(actions: dict[int, FinalAction], bars: Bars, risk: RiskSettings, notional: float) -> Decider:
    """A strategy whose wishes go through the risk rules with the walk's own account."""
    index = {t: i for i, t in enumerate(bars.frame.index)}
    rules = RiskRules(risk)

    async def decide(known: Bars, t: pd.Timestamp, account: AccountState) -> Step:
        wanted = actions.get(index[t], "HOLD")
        verdict = rules.rule(signal=wanted, proposed_notional_usd=notional, price=float(known.frame["close"].iloc[-1]),
                             atr=None, account=account)
        return Step(time=t, action=verdict.action, notional_usd=verdict.notional_usd,
                    record={"reasons": list(verdict.reasons)})

    return decide


def falling_day(bottom: float) -> Bars:
    """A quiet day at 100, then, the next UTC day, a slide by 0.5 an hour down to `bottom`, then flat."""
    quiet = [100.0] * 24
    slide = [100.0 - 0.5 * k for k in range(1, 11)]
    slide[-1] = bottom
    return hourly(quiet + slide + [bottom] * 6)


@pytest.mark.parametrize(("bottom", "halted"), [(95.0, True), (95.01, False)])
async def test_the_halt_fires_at_five_percent_within_a_day_on_hourly_bars(bottom: float, halted: bool) -> None:
    bars = falling_day(bottom)
    # Fully invested at 100 the day before, so equity falls exactly as the price does.
    decider = ruled({0: "BUY", 36: "CLOSE", 37: "SELL"}, bars, WIDE_STOP, notional=10_000)
    times = list(bars.frame.index[:39])
    run = await walk("s", decider, bars, times, equity=10_000, costs=FREE, risk=WIDE_STOP)
    entry = next(s for s in run.steps if s.time == bars.frame.index[37])
    if halted:
        assert entry.action == "HOLD"
        assert any("halt" in r for r in entry.record["reasons"])
        [event] = [e for e in run.events if e.kind == "drawdown_halt"]
        assert event.time == bars.frame.index[33]  # the bar whose low reached 95.00
    else:
        assert entry.action == "SELL"
        assert not [e for e in run.events if e.kind == "drawdown_halt"]


async def test_the_day_starts_at_the_day_change_not_at_the_previous_bar() -> None:
    bars = falling_day(93.0)  # a 7 % fall inside one day, never more than 0.5 % from one bar to the next
    account = PaperAccount(equity=10_000, costs=FREE, risk=WIDE_STOP)
    account.bar(bar_prices(bars.frame, 0))
    account.order("BUY", 10_000)
    for i in range(1, 34):
        account.bar(bar_prices(bars.frame, i))
    assert account.day_start_equity == pytest.approx(10_000)
    assert account.day_drawdown == pytest.approx(0.07)
    assert account.halted


async def test_a_session_start_moves_the_day_change() -> None:
    account = PaperAccount(equity=1_000, costs=FREE, risk=WIDE_STOP, day_start_s=13 * 3600 + 30 * 60)
    t = pd.Timestamp("2024-03-04 13:00", tz="UTC")
    assert account.session_day(t) != account.session_day(t + pd.Timedelta(hours=1))
    assert account.session_day(t) == account.session_day(t - pd.Timedelta(hours=12))


def daily(opens: list[float], highs: list[float], lows: list[float], closes: list[float]) -> Bars:
    times = pd.date_range("2024-01-01", periods=len(opens), freq="D", tz="UTC")
    frame = pd.DataFrame({"open": opens, "high": highs, "low": lows, "close": closes, "volume": 1.0}, index=times)
    return load_bars(frame.rename_axis("time"), symbol="TEST", interval="1d")


async def test_a_stop_between_decision_bars_closes_the_position_on_the_bar_it_is_crossed() -> None:
    # Entry at 100; the stop (3 %) is 97. Bar 4's low reaches 96.5; decisions are only at bars 0 and 8.
    opens = [100, 100, 99.5, 99, 98.5, 97, 97, 97, 97, 97]
    lows = [99.5, 99.5, 99, 98.5, 96.5, 96, 96, 96, 96, 96]
    closes = [100, 99.5, 99, 98.5, 97.5, 97, 97, 97, 97, 97]
    highs = [max(o, c) + 0.1 for o, c in zip(opens, closes, strict=True)]
    bars = daily(opens, highs, lows, closes)
    risk = RiskSettings(emergency_stop_loss=0.03, max_position_share=1.0)
    costs = Costs(fee_bps=10, slippage_bps=20)
    decider = ruled({0: "BUY"}, bars, risk, notional=5_000)
    run = await walk("s", decider, bars, [bars.frame.index[0], bars.frame.index[8]], equity=10_000, costs=costs,
                     risk=risk)
    entry, stop = run.fills
    assert entry.time == bars.frame.index[1] and entry.price == pytest.approx(100 * 1.002)
    assert stop.reason == "emergency stop" and stop.time == bars.frame.index[4]
    assert stop.price == pytest.approx(entry.price * 0.97 * (1 - 0.002))  # at the stop, less slippage
    assert run.units[bars.frame.index[4]] == 0 and run.units[bars.frame.index[3]] > 0
    assert [e.kind for e in run.events] == ["emergency_stop"]


def test_a_gap_through_the_stop_fills_at_the_open() -> None:
    account = PaperAccount(equity=10_000, costs=FREE, risk=RiskSettings(emergency_stop_loss=0.03))
    t = pd.Timestamp("2024-01-01", tz="UTC")
    account.bar(BarPrices(t, 100, 100, 100, 100))
    account.order("SELL", 1_000)  # short 10 at 100: the stop is 103
    account.bar(BarPrices(t + pd.Timedelta(days=1), 100, 101, 99, 100))
    account.bar(BarPrices(t + pd.Timedelta(days=2), 110, 112, 109, 111))
    assert account.units == 0 and account.fills[-1].price == 110 and account.fills[-1].reason == "emergency stop"
    assert account.realised_pnl == pytest.approx(-100)


@settings(max_examples=60, deadline=None)
@given(moves=st.lists(st.floats(-0.04, 0.04), min_size=5, max_size=40),
       actions=st.lists(st.sampled_from(["BUY", "SELL", "CLOSE", "HOLD"]), min_size=5, max_size=40),
       stop=st.sampled_from([0.02, 0.05, 0.5]))
def test_realised_and_unrealised_pnl_add_up_to_the_change_in_equity(moves: list[float], actions: list[str],
                                                                    stop: float) -> None:
    account = PaperAccount(equity=50_000, costs=Costs(fee_bps=3, slippage_bps=5),
                           risk=RiskSettings(emergency_stop_loss=stop, daily_drawdown_halt=0.05))
    price, t = 100.0, pd.Timestamp("2024-01-01", tz="UTC")
    for step, (move, action) in enumerate(zip(moves, actions, strict=False)):
        close = price * (1 + move)
        account.bar(BarPrices(t + pd.Timedelta(hours=6 * step), price, max(price, close) * 1.01,
                              min(price, close) * 0.99, close))
        account.order(action, 20_000)  # type: ignore[arg-type]
        price = close
        assert account.realised_pnl + account.unrealised_pnl == pytest.approx(account.equity - 50_000, abs=1e-6)
        assert account.tally.won <= account.tally.closed
        assert 0 <= account.day_drawdown <= 1


def example_settings(**risk: float) -> Settings:
    settings = load_config(environ={}).settings
    return settings.model_copy(update={"risk": settings.risk.model_copy(update=risk)})


def test_an_account_resumes_from_the_ledger_as_it_stood(tmp_path: Path) -> None:
    bars = falling_day(95.0)
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    book_settings = example_settings(emergency_stop_loss=0.5)
    ledger = Ledger(url)
    ledger.start()
    book = PaperBook(book_settings, ledger.accounts)
    account = book.open("live:TEST")
    for i in range(20):
        account.bar(bar_prices(bars.frame, i))
    account.order("BUY", 5_000)
    account.bar(bar_prices(bars.frame, 20))
    account.record_decision(1_234)
    book.save("live:TEST", account)
    ledger.close()

    again = Ledger(url)
    again.start()
    resumed = PaperBook(book_settings, again.accounts).open("live:TEST")
    assert resumed.to_dict() == account.to_dict()
    assert resumed.bar(bar_prices(bars.frame, 20)) == [] and len(resumed.fills) == 1  # a bar is seen once
    for i in range(21, len(bars.frame)):
        resumed.bar(bar_prices(bars.frame, i))
        account.bar(bar_prices(bars.frame, i))
    assert resumed.to_dict() == account.to_dict()
    shown = results(resumed)
    assert shown["decisions"] == 1 and shown["ai_spend_nanos"] == 1_234
    assert shown["return_on_ai_spend_unit"] == "USD of P&L per USD of AI spend"
    assert shown["buy_and_hold_return"] == pytest.approx(95 / 100 - 1)
    again.close()


def test_a_damaged_stored_account_is_refused_naming_the_field(tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger.start()
    state = PaperAccount(equity=1_000).to_dict() | {"cash": "lots"}
    ledger.accounts.save("live:X", state)
    with pytest.raises(AccountError, match="`cash`"):
        PaperBook(example_settings(), ledger.accounts).open("live:X")
    ledger.close()
