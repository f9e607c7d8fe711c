"""POST /v1/responses through the official `openai` SDK, against a real uvicorn gateway on loopback
in front of the simulator: the Responses API, stateless, answered through the chat route."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

import aiohttp
import openai
import orjson
import pytest
from gateway_support import DESK_TOKEN, SLOW_TOKEN, TIGHT_TOKEN, gateway_config_text, running
from multidict import CIMultiDict
from pydantic import BaseModel

from lyra import Lyra
from lyra.service import create_app
from lyra.simulator import Fault, Simulator, SimulatorOptions
from support import engine_env

QUESTION = "BTC 4h: RSI 71, MACD crossed up. Signal?"
INSTRUCTIONS = "You are a crypto desk's analyst. Answer in one sentence."
AUTH = {"Authorization": f"Bearer {DESK_TOKEN}", "Content-Type": "application/json"}
DECISION_SCHEMA = {
    "type": "object",
    "properties": {
        "action": {"type": "string", "enum": ["buy", "sell", "hold"]},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
    },
    "required": ["action", "confidence"],
    "additionalProperties": False,
}


class Decision(BaseModel):
    action: Literal["buy", "sell", "hold"]
    confidence: float


@pytest.fixture
async def http(gateway: str) -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
    async with aiohttp.ClientSession() as session:
        yield session, gateway


async def post(http: tuple[aiohttp.ClientSession, str], body: dict[str, Any],
               headers: dict[str, str] | None = None) -> tuple[int, CIMultiDict[str], bytes]:
    session, base = http
    async with session.post(f"{base}/responses", data=orjson.dumps(body), headers=AUTH | (headers or {})) as r:
        return r.status, r.headers.copy(), await r.read()


async def test_a_response_has_openais_shape_with_usage_and_the_served_model(
        desk: openai.AsyncOpenAI, sim: Simulator) -> None:
    reply = await desk.responses.create(model="tier:fast", input=QUESTION, max_output_tokens=64)
    assert reply.object == "response" and reply.id.startswith("resp_")
    assert reply.status == "completed" and reply.error is None and reply.incomplete_details is None
    assert "/" in reply.model  # the model that served it, not `tier:fast`
    [message] = reply.output
    assert message.type == "message" and message.role == "assistant" and message.status == "completed"
    assert message.id.startswith("msg_")
    [part] = message.content
    assert part.type == "output_text" and part.text and part.annotations == []
    assert reply.output_text == part.text
    assert reply.usage is not None
    assert reply.usage.input_tokens > 0 and reply.usage.output_tokens > 0
    assert reply.usage.total_tokens == reply.usage.input_tokens + reply.usage.output_tokens
    assert reply.usage.input_tokens_details.cached_tokens == 0
    assert reply.usage.output_tokens_details.reasoning_tokens == 0
    extra = reply.model_dump()
    assert extra["usage"]["cost"] > 0 and extra["provider"]  # OpenRouter's extras, as on chat answers
    assert reply.max_output_tokens == 64 and reply.store is False and reply.previous_response_id is None
    assert sim.stats.calls == 1


async def test_instructions_and_a_multi_turn_input_reach_the_model_as_the_chat_messages_they_mean(
        desk: openai.AsyncOpenAI) -> None:
    turns: Any = [
        {"role": "user", "content": "ETH 1d: funding flipped negative."},
        {"type": "message", "role": "assistant", "id": "msg_earlier", "status": "completed",
         "content": [{"type": "output_text", "text": "Noted: shorts are paying longs.", "annotations": []}]},
        {"role": "user", "content": [{"type": "input_text", "text": QUESTION}]},
    ]
    reply = await desk.responses.create(model="openai/gpt-4o-mini", instructions=INSTRUCTIONS, input=turns,
                                        max_output_tokens=64)
    # The same conversation as chat messages, asked fresh: the simulator answers a prompt deterministically,
    # so the same text and the same prompt size show the model was sent exactly these messages.
    chat = await desk.chat.completions.create(
        model="openai/gpt-4o-mini", max_tokens=64, extra_headers={"Cache-Control": "no-cache"},
        messages=[{"role": "system", "content": INSTRUCTIONS},
                  {"role": "user", "content": "ETH 1d: funding flipped negative."},
                  {"role": "assistant", "content": "Noted: shorts are paying longs."},
                  {"role": "user", "content": QUESTION}])
    assert reply.output_text == chat.choices[0].message.content
    assert reply.usage is not None and chat.usage is not None
    assert reply.usage.input_tokens == chat.usage.prompt_tokens
    assert reply.instructions == INSTRUCTIONS
    bare = await desk.responses.create(model="openai/gpt-4o-mini", input=QUESTION, max_output_tokens=64)
    assert bare.usage is not None and bare.usage.input_tokens < reply.usage.input_tokens


async def test_a_json_schema_text_format_gives_json_of_that_schema(desk: openai.AsyncOpenAI) -> None:
    reply = await desk.responses.create(
        model="openai/gpt-4o-mini", input=QUESTION, max_output_tokens=200,
        text={"format": {"type": "json_schema", "name": "decision", "schema": DECISION_SCHEMA, "strict": True}})
    decision = json.loads(reply.output_text)
    assert set(decision) == {"action", "confidence"} and decision["action"] in ("buy", "sell", "hold")
    assert reply.text is not None and reply.text.format is not None
    assert reply.text.format.type == "json_schema"


async def test_the_sdks_parse_fills_a_pydantic_model(desk: openai.AsyncOpenAI) -> None:
    parsed = await desk.responses.parse(model="openai/gpt-4o-mini", input=QUESTION, text_format=Decision,
                                        max_output_tokens=200)
    assert isinstance(parsed.output_parsed, Decision)
    assert 0 <= parsed.output_parsed.confidence <= 1


async def test_a_stream_arrives_as_responses_events_and_ends_with_the_whole_response(
        desk: openai.AsyncOpenAI) -> None:
    async with desk.responses.stream(model="tier:fast", instructions=INSTRUCTIONS, input=QUESTION,
                                     max_output_tokens=120) as stream:
        events = [event async for event in stream]
        final = await stream.get_final_response()
    kinds = [event.type for event in events]
    assert kinds[:5] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added", "response.output_text.delta"]
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done",
                          "response.output_item.done", "response.completed"]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    deltas = [event.delta for event in events if event.type == "response.output_text.delta"]
    assert len(deltas) > 1  # piece by piece, not one burst at the end
    assert "".join(deltas) == final.output_text and final.output_text.strip()
    assert final.status == "completed" and "/" in final.model
    assert final.usage is not None and final.usage.output_tokens > 0
    assert final.model_dump()["usage"]["cost"] > 0
    created = events[0]
    assert created.type == "response.created" and created.response.id == final.id
    assert created.response.status == "in_progress"


async def test_a_plain_stream_matches_the_whole_answer(desk: openai.AsyncOpenAI) -> None:
    whole = await desk.responses.create(model="openai/gpt-4o-mini", input=QUESTION, max_output_tokens=120)
    stream = await desk.responses.create(model="openai/gpt-4o-mini", input=QUESTION, max_output_tokens=120,
                                         stream=True)
    events = [event async for event in stream]
    done = [event for event in events if event.type == "response.output_text.done"]
    assert [event.text for event in done] == [whole.output_text]
    [completed] = [event for event in events if event.type == "response.completed"]
    assert completed.response.output_text == whole.output_text
    assert completed.response.usage == whole.usage


async def test_max_output_tokens_cut_short_leaves_the_response_incomplete(desk: openai.AsyncOpenAI) -> None:
    reply = await desk.responses.create(model="openai/gpt-4o-mini", input=QUESTION, max_output_tokens=3)
    assert reply.status == "incomplete"
    assert reply.incomplete_details is not None and reply.incomplete_details.reason == "max_output_tokens"
    assert reply.output[0].status == "incomplete" and reply.output_text
    assert reply.usage is not None and reply.usage.output_tokens <= 3
    stream = await desk.responses.create(model="openai/gpt-4o-mini", input=QUESTION, max_output_tokens=3,
                                         stream=True)
    events = [event async for event in stream]
    last = events[-1]
    assert last.type == "response.incomplete"  # as OpenAI ends a truncated stream
    assert last.response.incomplete_details is not None
    assert last.response.incomplete_details.reason == "max_output_tokens"
    assert last.response.output_text == reply.output_text


@pytest.mark.parametrize(("extra", "param"), [
    ({"store": True}, "store"),
    ({"previous_response_id": "resp_abc123"}, "previous_response_id"),
    ({"conversation": "conv_abc123"}, "conversation"),
    ({"background": True}, "background"),
])
async def test_anything_needing_stored_state_is_a_400_saying_the_gateway_is_stateless(
        desk: openai.AsyncOpenAI, sim: Simulator, extra: dict[str, Any], param: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await desk.responses.create(model="tier:fast", input=QUESTION, extra_body=extra)
    assert caught.value.param == param
    assert "stateless" in caught.value.message
    assert sim.stats.calls == 0
    stored_false = await desk.responses.create(model="tier:fast", input=QUESTION, store=False,
                                               max_output_tokens=16)
    assert stored_false.status in ("completed", "incomplete")


@pytest.mark.parametrize(("items", "param", "words"), [
    ([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
      {"type": "web_search_call", "id": "ws_1"}], "input[2].type", "unsupported input item type"),
    ([{"type": "item_reference", "id": "msg_1"}], "input[0].type", "stateless"),
    ([{"role": "owner", "content": "hi"}], "input[0].role", "user"),
    ([{"role": "user", "content": [{"type": "input_audio", "data": "AAAA"}]}], "input[0].content[0].type",
     "unsupported content part"),
    ([{"role": "user", "content": [{"type": "input_text", "text": 7}]}], "input[0].content[0].text",
     "string"),
    ([{"type": "function_call_output", "output": "42"}], "input[0].call_id", "missing"),
    ([{"content": "who am I?"}], "input[0].type", "missing"),
    ([], "input", "at least one"),
])
async def test_a_bad_input_item_is_a_400_naming_it(desk: openai.AsyncOpenAI, sim: Simulator, items: Any,
                                                    param: str, words: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await desk.responses.create(model="tier:fast", input=items)
    assert caught.value.param == param
    body = caught.value.body
    assert isinstance(body, dict) and body["message"].startswith(f"{param}: ") and words in body["message"]
    assert sim.stats.calls == 0


@pytest.mark.parametrize(("body", "param"), [
    ({"input": QUESTION}, "model"),
    ({"model": "tier:fast"}, "input"),
    ({"model": "tier:fast", "input": 5}, "input"),
    ({"model": "tier:fast", "input": QUESTION, "max_output_tokens": "64"}, "max_output_tokens"),
    ({"model": "tier:fast", "input": QUESTION, "max_output_tokens": 10_000_000}, "max_output_tokens"),
    ({"model": "tier:fast", "input": QUESTION, "temperature": 3}, "temperature"),
    ({"model": "tier:fast", "input": QUESTION, "text": {"format": {"type": "json_schema", "schema": {}}}},
     "text.format.name"),
    ({"model": "tier:fast", "input": QUESTION, "text": {"format": {"type": "yaml"}}}, "text.format.type"),
    ({"model": "tier:fast", "input": QUESTION, "tools": [{"type": "web_search"}]}, "tools[0].type"),
    ({"model": "tier:fast", "input": QUESTION, "reasoning": {"effort": "extreme"}}, "reasoning.effort"),
    ({"model": "tier:fast", "input": QUESTION, "metadata": {"desk": 7}}, "metadata.desk"),
])
async def test_a_bad_field_is_a_400_in_openais_shape_naming_it(
        http: tuple[aiohttp.ClientSession, str], body: dict[str, Any], param: str) -> None:
    status, _, raw = await post(http, body)
    payload = orjson.loads(raw)
    assert status == 400 and set(payload) == {"error"}
    error = payload["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["param"] == param
    assert error["message"].startswith(f"{param}: ")


async def test_a_wrong_token_is_refused_with_401(gateway: str) -> None:
    async with openai.AsyncOpenAI(api_key="lyra-not-a-client-token", base_url=gateway, max_retries=0) as intruder:
        with pytest.raises(openai.AuthenticationError) as caught:
            await intruder.responses.create(model="tier:fast", input=QUESTION)
    assert caught.value.status_code == 401 and caught.value.code == "invalid_api_key"
    assert "lyra-not-a-client-token" not in str(caught.value.body)


async def test_a_client_over_its_daily_budget_is_refused_with_402(gateway: str, sim: Simulator) -> None:
    async with openai.AsyncOpenAI(api_key=TIGHT_TOKEN, base_url=gateway, max_retries=0) as tight:
        for stream in (False, True):
            with pytest.raises(openai.APIStatusError) as caught:
                await tight.responses.create(model="tier:fast", input=QUESTION, max_output_tokens=100,
                                             stream=stream)
            assert caught.value.status_code == 402
            body = caught.value.body
            assert isinstance(body, dict)
            assert body["type"] == "insufficient_quota" and body["code"] == "budget_exceeded"
            assert "client 'tight' has reached its daily cap" in body["message"]
            assert body["budget"]["cap"] == "client:tight"
    assert sim.stats.calls == 0  # refused before any upstream call


async def test_a_tier_the_client_may_not_use_is_refused_with_403(desk: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.PermissionDeniedError) as caught:
        await desk.responses.create(model="tier:premium", input=QUESTION)
    assert caught.value.body is not None and "premium" in str(caught.value.body)


async def test_requests_per_minute_are_limited_with_retry_after(gateway: str) -> None:
    async with openai.AsyncOpenAI(api_key=SLOW_TOKEN, base_url=gateway, max_retries=0) as slow:
        for _ in range(2):
            await slow.responses.create(model="tier:fast", input=QUESTION, max_output_tokens=16)
        with pytest.raises(openai.RateLimitError) as caught:
            await slow.responses.create(model="tier:fast", input=QUESTION, max_output_tokens=16)
    assert int(caught.value.response.headers["retry-after"]) >= 1


async def test_the_chat_routes_cache_and_headers_apply(http: tuple[aiohttp.ClientSession, str],
                                                       sim: Simulator) -> None:
    body = {"model": "task:market_analysis", "input": QUESTION, "max_output_tokens": 32}
    statuses, calls, ids, texts = [], [], [], []
    for extra in ({}, {}, {"Cache-Control": "no-cache"}):
        status, headers, raw = await post(http, body, extra)
        assert status == 200
        statuses.append(headers["Cache-Status"])
        calls.append(sim.stats.calls)
        assert headers["x-request-id"].startswith("req-")
        reply = orjson.loads(raw)
        ids.append(reply["id"])
        texts.append(reply["output"][0]["content"][0]["text"])
    assert statuses == ["lyra; fwd=miss", "lyra; hit", "lyra; fwd=bypass"]
    assert calls[1] == calls[0] and calls[2] == calls[1] + 1  # the hit cost no call; the bypass did
    assert len(set(ids)) == 3 and len(set(texts)) == 1  # each response its own id, one answer
    status, headers, raw = await post(http, body | {"stream": True})
    assert status == 200 and headers["Cache-Status"] == "lyra; fwd=bypass"
    assert headers["Content-Type"].startswith("text/event-stream")
    assert raw.startswith(b"event: response.created\ndata: {")


async def test_responses_are_booked_in_the_ledger_as_the_clients(
        http: tuple[aiohttp.ClientSession, str]) -> None:
    for stream in (False, True):
        status, _, _ = await post(http, {"model": "openai/gpt-4o-mini", "input": QUESTION,
                                         "max_output_tokens": 32, "stream": stream})
        assert status == 200
    session, base = http
    async with session.get(f"{base}/usage?since=7d&by=client", headers=AUTH) as r:
        assert r.status == 200
        [line] = (await r.json())["data"]
    assert line["group"] == "desk" and line["requests"] == 2 and line["cost_nanos"] > 0


async def test_a_stream_failing_midway_ends_with_response_failed(desk: openai.AsyncOpenAI,
                                                                 sim: Simulator) -> None:
    sim.add_fault(Fault(kind="midstream_error"))
    stream = await desk.responses.create(model="openai/gpt-4o-mini", input=QUESTION, max_output_tokens=200,
                                         stream=True)
    events = [event async for event in stream]  # it ends: no hung connection
    last = events[-1]
    assert last.type == "response.failed"
    assert last.response.status == "failed" and last.response.error is not None
    assert last.response.error.code.startswith("upstream") and last.response.error.message
    assert events[0].type == "response.created"
    assert [event.sequence_number for event in events] == list(range(len(events)))


async def test_a_client_hanging_up_mid_stream_frees_its_budget_hold(tmp_path: Path) -> None:
    # Real latencies, so the stream is still going when the client leaves.
    async with Simulator(options=SimulatorOptions(time_scale=1.0, generation_lag_s=0.0)) as slow_sim:
        path = tmp_path / "lyra.toml"
        path.write_text(gateway_config_text(timeout_s=10))
        lyra = Lyra.from_config(path, environ=engine_env(slow_sim) | {
            "LYRA_LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.db'}"})
        async with running(create_app(lyra)) as base, aiohttp.ClientSession() as session:
            body = orjson.dumps({"model": "tier:fast", "input": QUESTION, "max_output_tokens": 400, "stream": True})
            async with session.post(f"{base}/responses", data=body, headers=AUTH) as r:
                assert r.status == 200
                assert (await r.content.readline()).startswith(b"event: response.created")
                r.close()  # hang up mid-stream
            assert lyra.budget is not None
            deadline = time.monotonic() + 60  # the server notices the hang-up in its own time
            for _ in range(100_000):
                caps = {cap.name: cap for cap in await lyra.budget.snapshot()}
                if caps["client:desk"].reserved == 0 or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.01)
            assert caps["client:desk"].reserved == 0
            assert caps["global"].reserved == 0


async def test_the_sync_sdk_works_too(gateway: str) -> None:
    def call() -> str:
        with (openai.OpenAI(api_key=DESK_TOKEN, base_url=gateway, max_retries=0) as client,
              client.responses.stream(model="tier:fast", input=QUESTION, max_output_tokens=200) as stream):
            return stream.get_final_response().output_text

    assert await asyncio.to_thread(call)


# --- tools, reasoning and logprobs, through the chat route ---------------------------------------

QUOTE: Any = {"type": "function", "name": "get_quote", "description": "The last price of a symbol",
              "parameters": {"type": "object", "properties": {
                  "symbol": {"type": "string", "enum": ["BTC/USDT", "ETH/USDT"]}},
                  "required": ["symbol"], "additionalProperties": False}, "strict": True}
NEWS: Any = {"type": "function", "name": "get_news", "parameters": {
    "type": "object", "properties": {"topic": {"type": "string"}}, "required": ["topic"]}}


async def test_a_function_call_and_its_output_round_trip(desk: openai.AsyncOpenAI) -> None:
    reply = await desk.responses.create(model="openai/gpt-4o-mini", input=QUESTION, tools=[QUOTE],
                                        max_output_tokens=100)
    assert reply.status == "completed"
    [call] = [item for item in reply.output if item.type == "function_call"]
    assert call.name == "get_quote" and call.status == "completed" and call.id and call.id.startswith("fc_")
    assert json.loads(call.arguments)["symbol"] in ("BTC/USDT", "ETH/USDT")
    assert reply.tools and reply.tools[0].type == "function"
    follow_up: Any = [{"role": "user", "content": QUESTION}, *reply.output,
                      {"type": "function_call_output", "call_id": call.call_id, "output": '{"price": 97000.5}'}]
    answer = await desk.responses.create(model="openai/gpt-4o-mini", input=follow_up, tools=[QUOTE],
                                         max_output_tokens=100)
    assert answer.output_text and not [item for item in answer.output if item.type == "function_call"]
    plain = await desk.responses.create(model="openai/gpt-4o-mini", input=QUESTION, tools=[QUOTE],
                                        tool_choice="none", max_output_tokens=100)
    assert plain.output_text and [item.type for item in plain.output] == ["message"]


async def test_streamed_function_calls_match_the_whole_answer(desk: openai.AsyncOpenAI) -> None:
    whole = await desk.responses.create(model="openai/gpt-4o-mini", input=QUESTION, tools=[QUOTE, NEWS])
    expected = [(c.call_id, c.name, c.arguments) for c in whole.output if c.type == "function_call"]
    assert len(expected) == 2
    async with desk.responses.stream(model="openai/gpt-4o-mini", input=QUESTION, tools=[QUOTE, NEWS]) as stream:
        events = [event async for event in stream]
        final = await stream.get_final_response()
    assert [(c.call_id, c.name, c.arguments) for c in final.output if c.type == "function_call"] == expected
    kinds = [event.type for event in events]
    assert kinds.count("response.function_call_arguments.done") == 2
    assert kinds.count("response.function_call_arguments.delta") >= 2


async def test_reasoning_comes_back_as_an_item_that_can_be_passed_back(desk: openai.AsyncOpenAI) -> None:
    reply = await desk.responses.create(model="openai/gpt-4o-mini", input=QUESTION, max_output_tokens=100,
                                        reasoning={"max_tokens": 40})  # type: ignore[typeddict-unknown-key]
    reasoning = reply.output[0]
    assert reasoning.type == "reasoning" and reasoning.content and reasoning.content[0].text
    assert reasoning.encrypted_content and json.loads(reasoning.encrypted_content)[0]["type"] == "reasoning.text"
    assert reply.usage is not None and 0 < reply.usage.output_tokens_details.reasoning_tokens <= 40
    again = await desk.responses.create(model="openai/gpt-4o-mini", max_output_tokens=100,
                                        reasoning={"effort": "low"},
                                        input=[{"role": "user", "content": QUESTION}, *reply.output,  # type: ignore[list-item]
                                               {"role": "user", "content": "And ETH?"}])
    assert again.output_text
    stream = await desk.responses.create(model="openai/gpt-4o-mini", input=QUESTION, max_output_tokens=100,
                                         reasoning={"max_tokens": 40}, stream=True)  # type: ignore[typeddict-unknown-key]
    kinds = [event.type async for event in stream]
    assert "response.reasoning_text.delta" in kinds and kinds[-1] == "response.completed"


async def test_top_logprobs_come_back_on_the_output_text(desk: openai.AsyncOpenAI) -> None:
    reply = await desk.responses.create(model="openai/gpt-4o-mini", input=QUESTION, top_logprobs=2,
                                        max_output_tokens=60)
    part = reply.output[0].content[0]  # type: ignore[union-attr]
    assert part.type == "output_text" and part.logprobs
    assert "".join(t.token for t in part.logprobs) == part.text
    assert all(len(t.top_logprobs) == 2 and t.logprob <= 0 for t in part.logprobs)
