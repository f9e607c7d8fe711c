"""POST /v1/consensus and POST /v1/decide over raw HTTP: answers, auth and errors naming the field."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from gateway_support import DESK_TOKEN, MESSAGES
from quant_support import QUANT_TOKEN, quant_gateway

from lyra.simulator import Simulator
from lyra.trading import load_sample

QUANT = {"Authorization": f"Bearer {QUANT_TOKEN}"}
DESK = {"Authorization": f"Bearer {DESK_TOKEN}"}


@pytest.fixture
async def http(sim: Simulator, tmp_path: Path) -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
    async with quant_gateway(sim, tmp_path) as base, aiohttp.ClientSession() as session:
        yield session, base


async def post(http: tuple[aiohttp.ClientSession, str], path: str, body: bytes | dict[str, Any],
               headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    session, base = http
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    async with session.post(base + path, data=data, headers=QUANT if headers is None else headers) as r:
        return r.status, orjson.loads(await r.read())


def sample_bars(n: int = 80) -> list[dict[str, Any]]:
    frame = load_sample("GOOGL").frame.tail(n)
    return [{"time": t.isoformat(), "open": r.open, "high": r.high, "low": r.low, "close": r.close,
             "volume": r.volume} for t, r in zip(frame.index, frame.itertuples(), strict=True)]


async def test_consensus_returns_the_panels_decision_with_every_vote(http: tuple[aiohttp.ClientSession, str]) -> None:
    status, body = await post(http, "/consensus", {"messages": MESSAGES, "panel": "trade", "notional": 15000})
    assert status == 200, body
    assert body["panel"] == "trade" and body["action"] in ("BUY", "SELL", "HOLD")
    assert body["notional"] == 15000 and 0 <= body["agreement"] <= 1
    assert {v["model"] for v in body["votes"]} and all("status" in v for v in body["votes"])


async def test_consensus_is_charged_to_the_clients_budget(http: tuple[aiohttp.ClientSession, str]) -> None:
    status, body = await post(http, "/consensus", {"messages": MESSAGES, "panel": "quick", "cascade": False})
    assert status == 200, body
    session, base = http
    async with session.get(f"{base}/budget", headers=QUANT) as r:
        budget = await r.json()
    assert budget["client"]["name"] == "client:quant" and budget["client"]["spent"] > 0


@pytest.mark.parametrize(("body", "param", "words"), [
    ({"panel": "trade"}, "messages", "required"),
    ({"messages": [], "panel": "trade"}, "messages", "at least 1"),
    ({"messages": MESSAGES, "panel": "astrology"}, "panel", "unknown panel"),
    ({"messages": MESSAGES, "notional": "big"}, "notional", "number"),
    ({"messages": MESSAGES, "notional": -5}, "notional", "greater than"),
    ({"messages": MESSAGES, "voters": 3}, "voters", "not permitted"),
    ({"messages": [{"role": "trader", "content": "hi"}]}, "messages[0].role", "'user'"),
])
async def test_a_bad_consensus_field_is_a_400_naming_it(http: tuple[aiohttp.ClientSession, str],
                                                        body: dict[str, Any], param: str, words: str) -> None:
    status, payload = await post(http, "/consensus", body)
    assert status == 400, payload
    assert payload["error"]["param"] == param and words in payload["error"]["message"], payload


async def test_consensus_needs_a_token_and_the_panels_tiers(http: tuple[aiohttp.ClientSession, str]) -> None:
    status, payload = await post(http, "/consensus", {"messages": MESSAGES}, headers={})
    assert status == 401 and payload["error"]["code"] == "invalid_api_key"
    status, payload = await post(http, "/consensus", {"messages": MESSAGES, "panel": "trade"}, headers=DESK)
    assert status == 403 and "premium" in payload["error"]["message"]


async def test_a_body_that_is_not_json_is_a_400(http: tuple[aiohttp.ClientSession, str]) -> None:
    for path in ("/consensus", "/decide"):
        status, payload = await post(http, path, b"{panel: trade")
        assert status == 400 and payload["error"]["code"] == "invalid_json"


async def test_decide_on_a_sample_runs_the_pipeline(http: tuple[aiohttp.ClientSession, str]) -> None:
    status, body = await post(http, "/decide", {"sample": "GOOGL", "proposed_notional": 5000,
                                                "news": ["Alphabet beats estimates"]})
    assert status == 200, body
    assert body["symbol"] == "GOOGL" and body["action"] in ("BUY", "SELL", "HOLD")
    assert [s["stage"] for s in body["stages"]][:3] == ["market_data", "technical_analysis", "signal_generation"]
    assert body["audit_seq"] >= 1


async def test_decide_is_charged_to_the_clients_budget(http: tuple[aiohttp.ClientSession, str]) -> None:
    status, body = await post(http, "/decide", {"sample": "GOOGL", "proposed_notional": 5000})
    assert status == 200, body
    session, base = http
    async with session.get(f"{base}/budget", headers=QUANT) as r:
        budget = await r.json()
    assert round(budget["client"]["spent"] * 1_000_000_000) == body["cost_nanos"] > 0  # every stage, in USD


async def test_decide_on_inline_bars(http: tuple[aiohttp.ClientSession, str]) -> None:
    status, body = await post(http, "/decide", {"symbol": "GOOGL", "bars": sample_bars()})
    assert status == 200, body
    assert body["symbol"] == "GOOGL" and body["price"] == pytest.approx(sample_bars()[-1]["close"])


async def test_a_bad_bar_is_a_400_naming_its_row_and_column(http: tuple[aiohttp.ClientSession, str]) -> None:
    bars = sample_bars(20)
    bars[7]["high"] = bars[7]["low"] / 2
    status, payload = await post(http, "/decide", {"symbol": "GOOGL", "bars": bars})
    assert status == 400, payload
    assert payload["error"]["param"] == "bars[7].high" and "below low" in payload["error"]["message"]
    bars = sample_bars(20)
    del bars[3]["close"]
    status, payload = await post(http, "/decide", {"symbol": "GOOGL", "bars": bars})
    assert status == 400 and payload["error"]["param"] == "bars[3].close", payload


@pytest.mark.parametrize(("body", "param", "words"), [
    ({}, None, "exactly one"),
    ({"sample": "GOOGL", "bars": [{}, {}], "symbol": "X"}, None, "exactly one"),
    ({"bars": [{}, {}]}, None, "symbol"),
    ({"sample": "TSLA"}, "sample", "unknown sample"),
    ({"sample": "GOOGL", "proposed_notional": 0}, "proposed_notional", "greater than"),
    ({"sample": "GOOGL", "news": "headline"}, "news", "array"),
    ({"sample": "GOOGL", "news": ["ok", "x" * 5000]}, "news[1]", "at most 4000"),
])
async def test_a_bad_decide_field_is_a_400(http: tuple[aiohttp.ClientSession, str], body: dict[str, Any],
                                           param: str | None, words: str) -> None:
    status, payload = await post(http, "/decide", body)
    assert status == 400, payload
    assert words in payload["error"]["message"], payload
    if param is not None:
        assert payload["error"]["param"] == param


async def test_decide_needs_every_tier_of_the_pipeline(http: tuple[aiohttp.ClientSession, str]) -> None:
    status, payload = await post(http, "/decide", {"sample": "GOOGL"}, headers=DESK)
    assert status == 403 and payload["error"]["code"] == "tier_not_allowed"
