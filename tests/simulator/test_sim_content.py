"""What models answer: schema-shaped JSON, trading decisions from features, determinism."""

from __future__ import annotations

import re
from typing import Any

import aiohttp
import orjson
import pytest
from sim_helpers import BULLISH, Chat, fetch, trading_prompt

from lyra.catalog.models import load_catalog
from lyra.simulator import Simulator, SimulatorOptions

DECISION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "action": {"type": "string", "enum": ["BUY", "SELL", "HOLD"]},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "rationale": {"type": "string", "maxLength": 280},
        "stop_loss": {"type": ["number", "null"]},
    },
    "required": ["action", "confidence", "rationale", "stop_loss"],
    "additionalProperties": False,
}
BEARISH = {"rsi": 78.0, "macd_hist": -0.9, "ret_5": -0.03, "sma_ratio": -0.015, "price": 100.0}
ACTIVE = [m.id for m in load_catalog() if not m.retired]


def _schema_format(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "out", "strict": True, "schema": schema}}


def _content(answer: Any) -> str:
    return str(answer.json()["choices"][0]["message"]["content"])


def _decision_in(text: str) -> dict[str, Any]:
    """The JSON object in a plain-text answer, as a lenient client would find it."""
    fenced = re.search(r"```json\s*(\{.*?\})\s*```", text, re.S)
    found: dict[str, Any] = orjson.loads(fenced.group(1) if fenced else text[text.index("{") :])
    return found


async def test_json_schema_output_validates(chat: Chat) -> None:
    answer = await chat(
        model="openai/gpt-4o",
        messages=trading_prompt(BULLISH),
        response_format=_schema_format(DECISION_SCHEMA),
    )
    value = orjson.loads(_content(answer))
    assert set(value) == {"action", "confidence", "rationale", "stop_loss"}
    assert value["action"] == "BUY"
    assert 0 <= value["confidence"] <= 1
    assert len(value["rationale"]) <= 280
    assert value["stop_loss"] is None or isinstance(value["stop_loss"], float)


async def test_pydantic_style_schema_with_refs_and_other_enum_spelling(chat: Chat) -> None:
    schema = {
        "$defs": {"Side": {"enum": ["long", "short", "flat"], "title": "Side", "type": "string"}},
        "properties": {
            "signal": {"$ref": "#/$defs/Side"},
            "conviction": {"type": "integer", "minimum": 0, "maximum": 100},
            "notes": {"anyOf": [{"type": "string", "maxLength": 40}, {"type": "null"}]},
        },
        "required": ["signal", "conviction", "notes"],
        "type": "object",
    }
    answer = await chat(
        model="anthropic/claude-opus-4.8",
        messages=trading_prompt(BULLISH),
        response_format=_schema_format(schema),
    )
    value = orjson.loads(_content(answer))
    assert value["signal"] == "long"
    assert isinstance(value["conviction"], int) and 50 <= value["conviction"] <= 100
    assert value["notes"] is None or len(value["notes"]) <= 40


async def test_non_trading_schema_is_filled_with_valid_values(chat: Chat) -> None:
    schema = {
        "type": "object",
        "properties": {
            "sentiment": {"type": "string", "enum": ["positive", "negative", "neutral"]},
            "score": {"type": "number", "minimum": -1, "maximum": 1},
            "count": {"type": "integer", "minimum": 3, "maximum": 5},
            "flag": {"type": "boolean"},
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 10}, "minItems": 1},
            "summary": {"type": "string", "maxLength": 60},
            "source": {"type": "string", "nullable": True},
            "nested": {
                "type": "object",
                "properties": {"level": {"type": "string", "enum": ["low", "high"]}},
                "required": ["level"],
            },
        },
        "required": ["sentiment", "score", "count", "flag", "tags", "summary", "nested"],
    }
    messages = [{"role": "user", "content": "Rate the sentiment of: ETF inflows hit a record."}]
    answer = await chat(messages=messages, response_format=_schema_format(schema))
    value = orjson.loads(_content(answer))
    assert set(schema["required"]) <= set(value)
    assert value["sentiment"] in ("positive", "negative", "neutral")
    assert -1 <= value["score"] <= 1
    assert isinstance(value["count"], int) and 3 <= value["count"] <= 5
    assert isinstance(value["flag"], bool)
    assert value["tags"] and all(isinstance(t, str) and len(t) <= 10 for t in value["tags"])
    assert isinstance(value["summary"], str) and len(value["summary"]) <= 60
    assert value["nested"]["level"] in ("low", "high")


async def test_json_object_format_gives_a_json_object(chat: Chat) -> None:
    plain = await chat(response_format={"type": "json_object"})
    assert isinstance(orjson.loads(_content(plain)), dict)
    trading = await chat(messages=trading_prompt(BULLISH), response_format={"type": "json_object"})
    decision = orjson.loads(_content(trading))
    assert decision["action"] in ("BUY", "SELL", "HOLD")
    assert decision["horizon"] == "4h"


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
async def test_bullish_features_make_premium_models_buy(seed: int) -> None:
    options = SimulatorOptions(time_scale=0, seed=seed)
    async with Simulator(options=options) as sim, aiohttp.ClientSession() as session:
        for model in ("anthropic/claude-opus-4.8", "openai/gpt-4o", "google/gemini-2.5-pro"):
            body = {"model": model, "messages": trading_prompt(BULLISH)}
            answer = await fetch(session, "POST", f"{sim.base_url}/chat/completions", body=body)
            decision = _decision_in(_content(answer))
            assert decision["action"] == "BUY"
            assert 0.5 < decision["confidence"] <= 1
            assert decision["stop_loss"] < 100 < decision["take_profit"]
            assert "RSI" in decision["rationale"] or "MACD" in decision["rationale"]
            assert len(decision["rationale"]) <= 280


async def test_bearish_features_make_premium_models_sell(chat: Chat) -> None:
    decision = _decision_in(_content(await chat(messages=trading_prompt(BEARISH))))
    assert decision["action"] == "SELL"
    assert decision["stop_loss"] > 100 > decision["take_profit"]


async def _answers(seed: int, models: list[str], messages: list[Any]) -> list[str]:
    options = SimulatorOptions(time_scale=0, seed=seed)
    async with Simulator(options=options) as sim, aiohttp.ClientSession() as session:
        url = f"{sim.base_url}/chat/completions"
        return [
            _content(await fetch(session, "POST", url, body={"model": m, "messages": messages}))
            for m in models
        ]


async def test_same_seed_and_request_give_the_same_content() -> None:
    messages = trading_prompt({"rsi": 52.0, "ret_5": 0.001, "macd_hist": 0.02})
    first = await _answers(7, ACTIVE, messages)
    again = await _answers(7, ACTIVE, messages)
    other_seed = await _answers(8, ACTIVE, messages)
    assert first == again
    assert first != other_seed


async def test_models_can_disagree_on_weak_signals() -> None:
    messages = trading_prompt({"rsi": 52.0, "ret_5": 0.001, "macd_hist": 0.02})
    actions = {_decision_in(text)["action"] for text in await _answers(7, ACTIVE, messages)}
    assert len(actions) >= 2


async def test_plain_text_decisions_come_bare_fenced_or_after_a_sentence() -> None:
    texts = []
    for features in (BULLISH, BEARISH, {"rsi": 45.0, "bb_pos": 0.2}):
        texts += await _answers(7, ACTIVE, trading_prompt(features))
    assert any(t.startswith("{") for t in texts)
    assert any("```json" in t for t in texts)
    assert any(not t.startswith(("{", "```")) for t in texts)
    for text in texts:
        assert _decision_in(text)["action"] in ("BUY", "SELL", "HOLD")


async def test_features_at_the_top_level_of_the_block_also_count(chat: Chat) -> None:
    block = orjson.dumps({"rsi": 20.0, "bb_pos": 0.02, "ret_5": -0.001}).decode()
    messages = [{"role": "user", "content": f"Signal?\n```json\n{block}\n```"}]
    assert _decision_in(_content(await chat(messages=messages)))["action"] == "BUY"


async def test_non_trading_prompts_get_a_sentence_naming_the_model(chat: Chat) -> None:
    text = _content(await chat(model="x-ai/grok-4.6", messages=[{"role": "user", "content": "Hi"}]))
    assert "x-ai/grok-4.6" in text
    assert text.endswith(".")


async def test_risk_verdict_judges_the_proposed_trade_against_the_models_view() -> None:
    """A risk-verdict schema gets a verdict and a cap near the proposed size, not a random number."""
    from lyra.trading.prompts import RISK_SCHEMA

    bullish = '```json\n{"rsi": 35, "macd_hist": 0.8, "ret_5": 0.02, "sma_ratio": 0.01}\n```'
    async with Simulator(options=SimulatorOptions(time_scale=0.0)) as sim, aiohttp.ClientSession() as http:
        answers = {}
        for side in ("BUY", "SELL"):
            body = {"model": "anthropic/claude-opus-4.8", "response_format": RISK_SCHEMA, "messages": [
                {"role": "user", "content": f"Assess the risk of this trade: {side} $15,000.\n{bullish}"}]}
            async with http.post(f"{sim.base_url}/chat/completions", json=body,
                                 headers={"Authorization": "Bearer sk-or-v1-test"}) as response:
                payload = await response.json()
            answers[side] = orjson.loads(payload["choices"][0]["message"]["content"])
    assert answers["BUY"]["verdict"] == "approve" and answers["BUY"]["max_notional_usd"] == 15_000
    assert answers["SELL"]["verdict"] == "reject" and answers["SELL"]["max_notional_usd"] == 0
