"""Tools, n, logprobs, reasoning, service tiers and a models fallback list through `Lyra` itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from lyra import BudgetExceeded, Lyra
from lyra.catalog.estimate import measure_prompt, reasoning_bound, worst_case
from lyra.openrouter.wire import ChatRequest
from lyra.routing.cache import cache_key
from lyra.simulator import Fault, Simulator
from lyra.simulator import schema as js
from lyra.types import CompletionRequest
from support import budget_config_text, engine_env

MINI = "openai/gpt-4o-mini"
HAIKU = "anthropic/claude-3-haiku"
ASK = [{"role": "user", "content": "What is BTC trading at?"}]
QUOTE = {"type": "function", "function": {
    "name": "get_quote", "description": "The last price of a symbol",
    "parameters": {"type": "object", "properties": {
        "symbol": {"type": "string", "enum": ["BTC/USDT", "ETH/USDT"]},
        "depth": {"type": "integer", "minimum": 1, "maximum": 5}},
        "required": ["symbol", "depth"], "additionalProperties": False}}}
NEWS = {"type": "function", "function": {"name": "get_news", "parameters": {
    "type": "object", "properties": {"topic": {"type": "string"}}, "required": ["topic"]}}}
FAST_ONLY = {"premium": 0.0, "advanced": 0.0, "specialized": 0.0, "fast": 1.0}


def _conforms(call: dict[str, Any], tool: dict[str, Any]) -> bool:
    schema = tool["function"]["parameters"]
    return bool(js.conforms(orjson.loads(call["function"]["arguments"]), schema, schema))


async def test_a_tool_call_reaches_the_completion_and_its_result_goes_back(lyra: Lyra, sim: Simulator) -> None:
    called = await lyra.complete(model=MINI, messages=ASK, tools=[QUOTE], max_tokens=100)
    assert called.finish_reason == "tool_calls"
    assert called.text == ""
    [call] = called.tool_calls
    assert call["function"]["name"] == "get_quote" and _conforms(call, QUOTE)
    assert called.choices[0].tool_calls == called.tool_calls
    assert not called.cost_estimated and called.cost_nanos > 0
    history = [*ASK, {"role": "assistant", "content": None, "tool_calls": called.tool_calls},
               {"role": "tool", "tool_call_id": call["id"], "content": '{"price": 97000.5}'}]
    answered = await lyra.complete(model=MINI, messages=history, tools=[QUOTE], max_tokens=100)
    assert answered.finish_reason == "stop" and answered.text and not answered.tool_calls
    assert sim.stats.calls == 2


async def test_tool_choice_none_and_parallel_calls(lyra: Lyra) -> None:
    text = await lyra.complete(model=MINI, messages=ASK, tools=[QUOTE, NEWS], tool_choice="none")
    assert text.text and not text.tool_calls and text.finish_reason == "stop"
    both = await lyra.complete(model=MINI, messages=ASK, tools=[QUOTE, NEWS])
    assert [c["function"]["name"] for c in both.tool_calls] == ["get_quote", "get_news"]
    one = await lyra.complete(model=MINI, messages=ASK, tools=[QUOTE, NEWS], parallel_tool_calls=False,
                              tool_choice={"type": "function", "function": {"name": "get_news"}})
    assert [c["function"]["name"] for c in one.tool_calls] == ["get_news"]


async def test_a_streamed_tool_call_is_put_back_together(lyra: Lyra) -> None:
    whole = await lyra.complete(model=MINI, messages=ASK, tools=[QUOTE, NEWS], cache="bypass")
    stream = lyra.stream(model=MINI, messages=ASK, tools=[QUOTE, NEWS])
    fragments = [d async for d in stream.deltas() if d.tool_calls]
    assert len(fragments) > 2  # an opening fragment per call, then pieces of its arguments
    done = stream.completion
    assert done.finish_reason == "tool_calls"
    assert done.tool_calls == whole.tool_calls
    assert all(_conforms(c, QUOTE if c["function"]["name"] == "get_quote" else NEWS) for c in done.tool_calls)
    texts = [t async for t in lyra.stream(model=MINI, messages=ASK, tools=[QUOTE])]
    assert texts == []  # text iteration: a tool call has no text


async def test_n_choices_are_returned_and_billed_as_upstream_billed_them(lyra: Lyra, sim: Simulator) -> None:
    three = await lyra.complete(model=MINI, messages=ASK, n=3, max_tokens=60)
    assert [c.index for c in three.choices] == [0, 1, 2]
    assert three.text == three.choices[0].text and all(c.text for c in three.choices)
    assert three.cost_nanos == sim.stats.total_cost_nanos  # usage.cost covers every choice
    assert three.completion_tokens == sum(-(-len(c.text) // 4) for c in three.choices)
    stream = lyra.stream(model=MINI, messages=ASK, n=3, max_tokens=60)
    indexes = {d.index async for d in stream.deltas()}
    assert indexes == {0, 1, 2}
    assert [c.text for c in stream.completion.choices] == [c.text for c in three.choices]


async def test_n_multiplies_the_worst_case_so_a_budget_for_one_refuses_three(
        sim: Simulator, tmp_path: Path, lyra: Lyra) -> None:
    one = worst_case(lyra.catalog.get(MINI), measure_prompt(ASK), max_tokens=200).cost_nanos
    path = tmp_path / "budget.toml"
    path.write_text(budget_config_text(daily=float(2 * one) / 1e9, shares=FAST_ONLY))
    calls = sim.stats.calls
    async with Lyra.from_config(path, environ=engine_env(sim)) as tight:
        served = await tight.complete(model=MINI, messages=ASK, max_tokens=200)
        assert served.cost_nanos < one
        with pytest.raises(BudgetExceeded) as refused:
            await tight.complete(model=MINI, messages=ASK, max_tokens=200, n=3)
    assert refused.value.needed == 3 * one
    assert sim.stats.calls == calls + 1  # the refused request never went upstream


async def test_logprobs_are_passed_through(lyra: Lyra) -> None:
    c = await lyra.complete(model=MINI, messages=ASK, logprobs=True, top_logprobs=2, max_tokens=60)
    assert c.logprobs is not None
    assert "".join(e["token"] for e in c.logprobs) == c.text
    assert all(len(e["top_logprobs"]) == 2 and e["logprob"] <= 0 for e in c.logprobs)
    plain = await lyra.complete(model=MINI, messages=ASK, max_tokens=60)
    assert plain.logprobs is None


async def test_reasoning_tokens_are_billed_and_inside_the_worst_case(
        sim: Simulator, tmp_path: Path, lyra: Lyra, monkeypatch: pytest.MonkeyPatch) -> None:
    c = await lyra.complete(model=MINI, messages=ASK, max_tokens=100, reasoning={"max_tokens": 40})
    assert 0 < c.reasoning_tokens <= 40
    assert c.reasoning and c.reasoning_details and c.reasoning_details[0]["type"] == "reasoning.text"
    assert c.completion_tokens == -(-len(c.text) // 4) + c.reasoning_tokens
    info = lyra.catalog.get(MINI)
    assert c.cost_nanos == info.cost_nanos(c.prompt_tokens, c.completion_tokens)
    hidden = await lyra.complete(model=MINI, messages=ASK, max_tokens=100,
                                 reasoning={"max_tokens": 40, "exclude": True})
    assert hidden.reasoning is None and hidden.reasoning_tokens == c.reasoning_tokens
    # A budget with room for max_tokens but not for the reasoning budget beside it refuses.
    prompt = measure_prompt(ASK)
    plain = worst_case(info, prompt, max_tokens=100).cost_nanos
    thinking = worst_case(info, prompt, max_tokens=100, reasoning_max_tokens=5000).cost_nanos
    assert reasoning_bound({"effort": "high"}, 1000) == 800
    path = tmp_path / "budget.toml"
    path.write_text(budget_config_text(daily=float(plain + (thinking - plain) // 2) / 1e9, shares=FAST_ONLY))
    async with Lyra.from_config(path, environ=engine_env(sim)) as tight:
        with pytest.raises(BudgetExceeded) as refused:
            await tight.complete(model=MINI, messages=ASK, max_tokens=100, reasoning={"max_tokens": 5000})
        assert refused.value.needed == thinking
        served = await tight.complete(model=MINI, messages=ASK, max_tokens=100)
        assert served.text


async def test_the_served_service_tier_is_reported(lyra: Lyra) -> None:
    c = await lyra.complete(model=MINI, messages=ASK, service_tier="flex", session_id="desk-btc", user="u7")
    assert c.service_tier == "flex"
    streamed = lyra.stream(model=MINI, messages=ASK, service_tier="priority")
    async for _ in streamed:
        pass
    assert streamed.completion.service_tier == "priority"


async def test_a_models_list_falls_back_to_the_second_when_the_first_fails(lyra: Lyra, sim: Simulator) -> None:
    sim.add_fault(Fault(kind="server_error", model=MINI, status=503))
    c = await lyra.complete(model=MINI, models=[HAIKU], messages=ASK, max_tokens=50)
    assert c.model == HAIKU and c.requested_model == HAIKU
    assert [a.model for a in c.attempts if a.outcome == "error"] and c.attempts[-1].model == HAIKU
    assert {a.model for a in c.attempts} == {MINI, HAIKU}
    assert lyra.ledger is not None
    lyra.ledger.flush()
    [request] = [r for r in lyra.ledger.rows(kind="request") if r.served_model == HAIKU]
    assert request.cost_nanos == c.cost_nanos
    only_list = await lyra.complete(models=[HAIKU, MINI], messages=ASK, max_tokens=50)
    assert only_list.model == HAIKU


def test_the_wire_body_carries_every_new_field_and_the_cache_key_what_changes_the_answer() -> None:
    body = orjson.loads(ChatRequest(
        model=MINI, messages=ASK, tools=[QUOTE], tool_choice="required", parallel_tool_calls=False, n=2,
        logprobs=True, top_logprobs=3, reasoning={"effort": "low"}, service_tier="flex",
        session_id="s1", user="u1").encode())
    assert body["tools"] == [QUOTE] and body["tool_choice"] == "required"
    assert body["parallel_tool_calls"] is False and body["n"] == 2
    assert body["logprobs"] is True and body["top_logprobs"] == 3
    assert body["reasoning"] == {"effort": "low"} and body["service_tier"] == "flex"
    assert body["session_id"] == "s1" and body["user"] == "u1"
    assert "n" not in orjson.loads(ChatRequest(model=MINI, messages=ASK, n=1).encode())
    base = CompletionRequest(model=MINI, messages=ASK)
    changed = [CompletionRequest(model=MINI, messages=ASK, **{name: value}) for name, value in (  # type: ignore[arg-type]
        ("tools", [QUOTE]), ("tool_choice", "none"), ("parallel_tool_calls", False), ("n", 2),
        ("logprobs", True), ("top_logprobs", 1), ("reasoning", {"effort": "low"}), ("service_tier", "flex"),
        ("models", [HAIKU]))]
    keys = {cache_key(r) for r in changed}
    assert len(keys) == len(changed) and cache_key(base) not in keys
    same = CompletionRequest(model=MINI, messages=ASK, session_id="s", user="u")
    assert cache_key(same) == cache_key(base)


async def test_choices_survive_the_shared_cache_encoding(lyra: Lyra) -> None:
    from lyra.routing.cache import _completion_from_json, _completion_to_json

    c = await lyra.complete(model=MINI, messages=ASK, n=2, tools=[QUOTE, NEWS], max_tokens=60)
    back = _completion_from_json(_completion_to_json(c))
    assert back.choices == c.choices and back.tool_calls == c.tool_calls
    assert back.choices[1].tool_calls and back.choices[1].finish_reason == "tool_calls"


def test_tool_calls_are_trusted_over_a_stop_and_every_choice_is_parsed() -> None:
    from lyra.openrouter.wire import decode_chat_response, decode_chunk

    call = {"id": "call_1", "type": "function", "function": {"name": "get_quote", "arguments": '{"symbol":"BTC"}'}}
    body = orjson.dumps({  # the shape seen from DeepInfra's Llama 3.3: tool calls beside "stop"
        "id": "gen-1", "model": MINI, "provider": "DeepInfra", "service_tier": "standard",
        "choices": [
            {"index": 1, "finish_reason": "stop", "message": {"role": "assistant", "content": "second"},
             "logprobs": {"content": [{"token": "se", "logprob": -0.1, "bytes": [115, 101], "top_logprobs": []}]}},
            {"index": 0, "finish_reason": "stop", "logprobs": None,
             "message": {"role": "assistant", "content": None, "tool_calls": [call], "reasoning": "think",
                         "reasoning_details": [{"type": "reasoning.encrypted", "data": "opaque"}]}}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 7, "completion_tokens_details": {"reasoning_tokens": 3}}})
    result = decode_chat_response(200, {}, body)
    assert [c.index for c in result.choices] == [0, 1]
    first, second = result.choices
    assert first.finish_reason == "tool_calls" and first.tool_calls == [call] and first.text == ""
    assert first.reasoning == "think" and first.reasoning_details == [{"type": "reasoning.encrypted", "data": "opaque"}]
    assert second.finish_reason == "stop" and second.logprobs and second.logprobs[0]["token"] == "se"
    assert result.service_tier == "standard" and result.usage is not None and result.usage.reasoning_tokens == 3
    delta = decode_chunk(orjson.dumps({"id": "gen-1", "choices": [{"index": 2, "delta": {
        "tool_calls": [{"index": 0, "function": {"arguments": '{"sy'}}], "reasoning": "hm"}}]}).decode())
    assert delta is not None
    [piece] = delta.choices
    assert piece.index == 2 and piece.reasoning == "hm" and piece.tool_calls[0]["function"]["arguments"] == '{"sy'
