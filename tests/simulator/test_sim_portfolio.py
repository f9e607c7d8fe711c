"""The simulator's answers to rebalancing and multi-timeframe prompts: deterministic, from the features sent."""

from __future__ import annotations

import orjson

from lyra.catalog.models import load_catalog
from lyra.simulator.decision import find_market_view
from lyra.simulator.responder import respond
from lyra.trading.prompts import signal
from lyra.trading.rebalance import Limits, rebalance_messages, rebalance_schema

BULL = {"ret_1": 0.01, "ret_5": 0.04, "ret_20": 0.1, "sma_ratio": 0.03, "rsi": 58.0, "bb_pos": 0.7}
BEAR = {"ret_1": -0.01, "ret_5": -0.04, "ret_20": -0.1, "sma_ratio": -0.03, "rsi": 42.0, "bb_pos": 0.3}


def model():  # type: ignore[no-untyped-def]
    return load_catalog().find("anthropic/claude-opus-4.8")


def test_target_weights_follow_each_assets_features_and_repeat_exactly() -> None:
    messages = rebalance_messages({"asset_1": BULL, "asset_2": BEAR}, {"asset_1": 0.0, "asset_2": 0.0}, Limits(),
                                  5)
    payload = {"messages": messages, "response_format": rebalance_schema(["asset_1", "asset_2"])}
    first = respond(model(), payload, seed=1)
    assert first == respond(model(), payload, seed=1)
    answer = orjson.loads(first)
    assert set(answer["weights"]) == {"asset_1", "asset_2"} and answer["reason"]
    assert answer["weights"]["asset_1"] > 0 > answer["weights"]["asset_2"]
    assert all(-1 <= w <= 1 for w in answer["weights"].values())


def test_higher_timeframes_move_the_view_towards_them() -> None:
    base = find_market_view(signal(BULL))
    mixed = find_market_view(signal({**BULL, "timeframes": {"1d": BEAR}}))
    assert base is not None and mixed is not None
    assert mixed.features["ret_5"] == (BULL["ret_5"] + BEAR["ret_5"]) / 2 == 0.0
    assert base.features["ret_5"] == BULL["ret_5"]
