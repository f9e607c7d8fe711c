"""Anonymised prompts carry no number that reveals the price level: a scaled series asks the same."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import orjson
import pandas as pd
import pytest

from lyra import Lyra
from lyra.trading.backtest import Window
from lyra.trading.data import Bars
from lyra.trading.evaluate import BacktestOptions, anonymise, run_backtest
from lyra.trading.pipeline import account_block, raw_features_at
from lyra.trading.risk import AccountState, Position
from lyra.types import Completion, CompletionRequest
from support import ACTIVE_SIGNALS

ENGINE_EDITS = ACTIVE_SIGNALS
SCALE = 7.3


def scaled(bars: Bars, factor: float) -> Bars:
    frame = bars.frame.copy()
    frame[["open", "high", "low", "close"]] *= factor
    return Bars(frame=frame, symbol=bars.symbol, interval=bars.interval)


def test_rebased_features_of_a_scaled_series_are_identical(bars: Bars) -> None:
    other = scaled(bars, SCALE)
    for t in bars.frame.index[-300::7]:
        assert anonymise(raw_features_at(bars, t)) == anonymise(raw_features_at(other, t))


def test_the_account_block_shows_the_position_as_a_share_of_equity_not_units() -> None:
    account = AccountState(equity_at_day_start=100_000, equity=99_000.4,
                           position=Position(units=-40.0, entry_price=120.0))
    block = account_block(account, 125.0)
    assert block == {"equity": 99_000, "drawdown": 0.01, "position_share_of_equity": round(-5_000 / 99_000.4, 4)}
    assert "position_units" not in block


async def asked(engine: Lyra, bars: Bars, options: BacktestOptions) -> list[tuple[Any, ...]]:
    """Every request the pipeline made: who was asked (model, task, tier) and the exact messages."""
    requests: list[tuple[Any, ...]] = []

    async def spy(request: CompletionRequest, call: Callable[..., Any]) -> Completion:
        requests.append((request.model or "", request.task or "", request.tier or "",
                         orjson.dumps(list(request.messages), option=orjson.OPT_SORT_KEYS)))
        result: Completion = await call(request)
        return result

    engine.set_interceptor(spy)
    try:
        await run_backtest(engine, bars, options)
    finally:
        engine.set_interceptor(None)
    return sorted(requests)


@pytest.mark.parametrize("factor", [SCALE, 0.01])
async def test_a_scaled_series_sends_byte_identical_prompts_to_every_model(engine: Lyra, bars: Bars,
                                                                           factor: float) -> None:
    options = BacktestOptions(window=Window(start="2017-01-03", end="2017-12-29", every=6))
    original = await asked(engine, bars, options)
    assert original == await asked(engine, scaled(bars, factor), options)
    risk = [m.decode() for _, task, _, m in original if task == "risk_assessment"]
    assert risk, "the window should propose trades, so that the risk prompt is sent"
    assert not any("position_units" in p for p in risk)
    shares = [float(x) for p in risk for x in re.findall(r'position_share_of_equity\\":(-?[0-9.e-]+)', p)]
    assert shares and any(s != 0 for s in shares)  # positions were held, and shown as shares
    closes = {f"{float(c):.6g}" for c in bars.frame["close"].loc["2016-10-01":"2017-12-31"]}
    numbers = {n for _, _, _, m in original for n in re.findall(r"\d+\.\d+", m.decode())}
    assert not (numbers & closes - {"100"})


def test_rounding_happens_after_rebasing() -> None:
    # 1234.5678 rounded first to 1234.57 would rebase to 99.6... digits that depend on the level
    features = {"close": 1234.5678, "sma_fast": 1230.123456, "rsi": 55.123456789}
    rebased = anonymise(features)
    assert rebased == {"close": 100.0, "sma_fast": float(f"{1230.123456 * 100 / 1234.5678:.6g}"), "rsi": 55.1235}
    assert anonymise({k: v * SCALE if k != "rsi" else v for k, v in features.items()}) == rebased
    assert pd.notna(rebased["sma_fast"])
