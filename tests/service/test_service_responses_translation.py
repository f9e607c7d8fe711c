"""The Responses translation as pure functions: a Responses body to the chat body it means, a chat
answer to a Response object, and chat chunks to Responses events, tool calls and reasoning included.
The official `openai` SDK reads what they produce (over an httpx mock transport), as it would from
the gateway."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import openai
import orjson
import pytest

from lyra.service.errors import ApiError
from lyra.service.options import ServiceOptions
from lyra.service.responses import response_events, whole_response
from lyra.service.responses_render import Shell, from_chat_completion
from lyra.service.responses_request import ResponsesCall, as_responses_error, chat_call, parse_responses
from lyra.service.responses_stream import ResponseEvents

OPTIONS = ServiceOptions()
PRICE_TOOL = {"type": "function", "name": "get_price", "description": "Last trade price of a symbol",
              "parameters": {"type": "object", "properties": {"symbol": {"type": "string"}},
                             "required": ["symbol"], "additionalProperties": False}, "strict": True}
FUNDING_TOOL = {"type": "function", "name": "get_funding",
                "parameters": {"type": "object", "properties": {"symbol": {"type": "string"}}}}
DETAILS = [{"type": "reasoning.text", "text": "RSI is hot. MACD confirms.", "signature": "sig-1", "index": 0}]


def parse(body: dict[str, Any]) -> ResponsesCall:
    return parse_responses(orjson.dumps(body), OPTIONS)


def refused(body: dict[str, Any]) -> ApiError:
    with pytest.raises(ApiError) as caught:
        parse(body)
    assert caught.value.status == 400
    return caught.value


# --- request -------------------------------------------------------------------------------------


def test_a_plain_request_becomes_the_chat_body_it_means() -> None:
    call = parse({"model": "tier:fast", "input": "Signal?", "instructions": "Be brief.", "max_output_tokens": 50,
                  "temperature": 0.2, "top_p": 0.9, "user": "trader-7", "seed": 3, "stream": True,
                  "metadata": {"desk": "crypto"}, "include": ["reasoning.encrypted_content"], "store": False})
    assert call.chat_body == {
        "model": "tier:fast", "max_tokens": 50, "temperature": 0.2, "top_p": 0.9, "stream": True,
        "user": "trader-7", "seed": 3, "metadata": {"desk": "crypto"},
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Signal?"}]}
    assert call.stream is True
    assert call.echo["metadata"] == {"desk": "crypto"} and call.echo["instructions"] == "Be brief."
    chat = chat_call(call, OPTIONS)  # the chat route's own validation accepts it
    assert chat.max_tokens == 50 and chat.stream and chat.messages[0]["role"] == "system"


def test_text_format_becomes_response_format() -> None:
    schema = {"type": "object", "properties": {"action": {"type": "string"}}}
    call = parse({"model": "m/x", "input": "x", "text": {"format": {
        "type": "json_schema", "name": "decision", "schema": schema, "strict": True, "description": "d"}}})
    assert call.chat_body["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "decision", "schema": schema, "strict": True,
                                               "description": "d"}}
    assert call.echo["text"]["format"]["schema"] == schema  # echoed under its Responses name
    assert parse({"model": "m/x", "input": "x", "text": {"format": {"type": "json_object"}}}).chat_body[
        "response_format"] == {"type": "json_object"}
    assert "response_format" not in parse({"model": "m/x", "input": "x",
                                           "text": {"format": {"type": "text"}}}).chat_body
    assert chat_call(call, OPTIONS).response_format == call.chat_body["response_format"]


def test_function_tools_and_tool_choice_take_chats_nested_shape() -> None:
    call = parse({"model": "m/x", "input": "x", "tools": [PRICE_TOOL, FUNDING_TOOL],
                  "tool_choice": {"type": "function", "name": "get_price"}, "parallel_tool_calls": False})
    assert call.chat_body["tools"] == [
        {"type": "function", "function": {"name": "get_price", "description": "Last trade price of a symbol",
                                          "parameters": PRICE_TOOL["parameters"], "strict": True}},
        {"type": "function", "function": {"name": "get_funding", "parameters": FUNDING_TOOL["parameters"]}}]
    assert call.chat_body["tool_choice"] == {"type": "function", "function": {"name": "get_price"}}
    assert call.chat_body["parallel_tool_calls"] is False
    assert [tool["name"] for tool in call.echo["tools"]] == ["get_price", "get_funding"]
    for choice in ("auto", "none", "required"):
        assert parse({"model": "m/x", "input": "x", "tools": [PRICE_TOOL],
                      "tool_choice": choice}).chat_body["tool_choice"] == choice


def test_reasoning_and_logprobs_pass_through_in_chats_spelling() -> None:
    call = parse({"model": "m/x", "input": "x", "reasoning": {"effort": "high", "summary": "auto"},
                  "top_logprobs": 3})
    assert call.chat_body["reasoning"] == {"effort": "high"}  # summary is Responses-only
    assert call.chat_body["logprobs"] is True and call.chat_body["top_logprobs"] == 3
    assert call.echo["reasoning"] == {"effort": "high", "summary": "auto"}


def test_a_whole_tool_conversation_becomes_chat_messages() -> None:
    """The SDK's own pattern: the last response's output items, then the tool results, as next input."""
    encrypted = orjson.dumps(DETAILS).decode()
    call = parse({"model": "m/x", "input": [
        {"role": "user", "content": "Price and funding of BTC?"},
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": encrypted},
        {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
         "content": [{"type": "output_text", "text": "Checking both.", "annotations": []}]},
        {"type": "function_call", "id": "fc_1", "call_id": "call_a", "name": "get_price",
         "arguments": '{"symbol":"BTC"}', "status": "completed"},
        {"type": "function_call", "id": "fc_2", "call_id": "call_b", "name": "get_funding",
         "arguments": '{"symbol":"BTC"}'},
        {"type": "function_call_output", "call_id": "call_a", "output": "97000"},
        {"type": "function_call_output", "call_id": "call_b",
         "output": [{"type": "input_text", "text": "0.01%"}, {"type": "input_text", "text": " per 8h"}]},
        {"type": "function_call", "call_id": "call_c", "name": "get_price", "arguments": '{"symbol":"ETH"}'},
    ]})
    assert call.chat_body["messages"] == [
        {"role": "user", "content": "Price and funding of BTC?"},
        {"role": "assistant", "content": "Checking both.", "reasoning_details": DETAILS, "tool_calls": [
            {"id": "call_a", "type": "function", "function": {"name": "get_price", "arguments": '{"symbol":"BTC"}'}},
            {"id": "call_b", "type": "function",
             "function": {"name": "get_funding", "arguments": '{"symbol":"BTC"}'}}]},
        {"role": "tool", "tool_call_id": "call_a", "content": "97000"},
        {"role": "tool", "tool_call_id": "call_b",
         "content": [{"type": "text", "text": "0.01%"}, {"type": "text", "text": " per 8h"}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_c", "type": "function", "function": {"name": "get_price", "arguments": '{"symbol":"ETH"}'}}]},
    ]


def test_images_and_files_become_chat_parts() -> None:
    call = parse({"model": "m/x", "input": [{"role": "user", "content": [
        {"type": "input_text", "text": "This chart?"},
        {"type": "input_image", "image_url": "https://example.com/btc.png", "detail": "low"},
        {"type": "input_file", "filename": "fills.csv", "file_data": "data:text/csv;base64,YSxi"}]}]})
    assert call.chat_body["messages"][0]["content"] == [
        {"type": "text", "text": "This chart?"},
        {"type": "image_url", "image_url": {"url": "https://example.com/btc.png", "detail": "low"}},
        {"type": "file", "file": {"filename": "fills.csv", "file_data": "data:text/csv;base64,YSxi"}}]
    refusal = parse({"model": "m/x", "input": [{"role": "assistant", "content": [
        {"type": "refusal", "refusal": "I cannot advise on that."}]}]})
    assert refusal.chat_body["messages"] == [{"role": "assistant", "content": "I cannot advise on that."}]
    error = refused({"model": "m/x", "input": [{"role": "user", "content": [
        {"type": "input_image", "file_id": "file-123"}]}]})
    assert error.param == "input[0].content[0].image_url" and "stateless" in error.message


@pytest.mark.parametrize(("body", "param", "words"), [
    ({"store": True}, "store", "not stored"),
    ({"previous_response_id": "resp_1"}, "previous_response_id", "stateless"),
    ({"prompt": {"id": "pmpt_1"}}, "prompt", "stored prompt"),
    ({"truncation": "auto"}, "truncation", "disabled"),
    ({"tools": [PRICE_TOOL, {"type": "file_search"}]}, "tools[1].type", "only function tools"),
    ({"tools": [{"type": "function"}]}, "tools[0].name", "missing"),
    ({"tools": [{"type": "function", "name": "get price"}]}, "tools[0].name", "pattern"),
    ({"tool_choice": {"type": "web_search_preview"}}, "tool_choice", "expected"),
    ({"tool_choice": {"type": "function"}}, "tool_choice.name", "required"),
    ({"text": {"format": {"type": "json_schema", "name": "d"}}}, "text.format.schema", "required"),
    ({"metadata": {f"k{i}": "v" for i in range(17)}}, "metadata", "at most 16"),
    ({"input": [{"type": "function_call", "call_id": "c", "name": "f"}]}, "input[0].arguments", "missing"),
    ({"input": [{"type": "reasoning", "encrypted_content": "gAAAAB-from-openai"}]}, "input[0].encrypted_content",
     "not reasoning details"),
    ({"input": [{"role": "user", "content": "a"}, {"type": 7}]}, "input[1].type", "not a string"),
    ({"input": [{"type": "function_call_output", "call_id": "c",
                 "output": [{"type": "input_image", "image_url": "https://x"}]}]}, "input[0].output[0].type",
     "supported: input_text, output_text"),
    ({"input": ["just a string"]}, "input", "expected a string or a list of input items"),
])
def test_a_field_the_gateway_cannot_honour_is_refused_by_name(body: dict[str, Any], param: str,
                                                               words: str) -> None:
    error = refused({"model": "m/x", "input": "x"} | body)
    assert error.param == param and error.message.startswith(f"{param}: ") and words in error.message


def test_chat_validation_errors_are_renamed_to_the_responses_fields() -> None:
    too_many = ResponsesCall(chat_body={"model": "m/x", "messages": [{"role": "user", "content": "x"}],
                                        "max_tokens": 99}, stream=False, echo={})
    with pytest.raises(ApiError) as caught:
        chat_call(too_many, ServiceOptions(max_tokens=10))
    assert caught.value.param == "max_output_tokens" and caught.value.message.startswith("max_output_tokens: ")
    schema = ResponsesCall(chat_body={"model": "m/x", "messages": [{"role": "user", "content": "x"}],
                                      "response_format": {"type": "json_schema"}}, stream=False, echo={})
    with pytest.raises(ApiError) as caught:
        chat_call(schema, OPTIONS)
    assert caught.value.param == "text.format"
    bad_role = ResponsesCall(chat_body={"model": "m/x", "messages": [{"role": "owner"}]}, stream=False, echo={})
    with pytest.raises(ApiError) as caught:
        chat_call(bad_role, OPTIONS)
    assert caught.value.param == "input"


def test_an_engine_error_naming_a_chat_field_keeps_its_status_and_retry_after() -> None:
    error = as_responses_error(ApiError(400, "max_tokens: smaller, please", param="max_tokens", retry_after=2.0,
                                        code="upstream_request_too_large", extra={"hint": 1}))
    assert (error.status, error.param, error.message) == (400, "max_output_tokens", "max_output_tokens: smaller, "
                                                                                     "please")
    assert error.retry_after == 2.0 and error.code == "upstream_request_too_large" and error.extra == {"hint": 1}
    same = ApiError(403, "model: not yours", param="model")
    assert as_responses_error(same) is same


def test_the_bounds_are_the_gateways() -> None:
    items = [{"role": "user", "content": "x"}] * 4
    with pytest.raises(ApiError) as caught:
        parse_responses(orjson.dumps({"model": "m/x", "input": items, "instructions": "i"}),
                        ServiceOptions(max_messages=4))
    assert caught.value.param == "input" and "5 messages" in caught.value.message


# --- whole answers ---------------------------------------------------------------------------------


def chat_completion(message: dict[str, Any], finish: str = "stop", **choice: Any) -> dict[str, Any]:
    return {"id": "gen-1", "object": "chat.completion", "created": 1, "model": "openai/gpt-4o-mini",
            "provider": "OpenAI", "choices": [{"index": 0, "message": message, "finish_reason": finish, **choice}],
            "usage": {"prompt_tokens": 50, "completion_tokens": 20, "total_tokens": 70, "cost": 0.0001,
                      "prompt_tokens_details": {"cached_tokens": 10, "cache_write_tokens": 4},
                      "completion_tokens_details": {"reasoning_tokens": 8}}}


def shell(**echo: Any) -> Shell:
    return Shell(echo={"model": "tier:fast", **echo})


def test_a_chat_answer_with_reasoning_and_tool_calls_becomes_output_items() -> None:
    message = {"role": "assistant", "content": None, "reasoning": "RSI is hot. MACD confirms.",
               "reasoning_details": DETAILS, "tool_calls": [
                   {"id": "call_a", "type": "function", "function": {"name": "get_price",
                                                                     "arguments": '{"symbol":"BTC"}'}},
                   {"id": "call_b", "type": "function", "function": {"name": "get_funding", "arguments": "{}"}}]}
    reply = from_chat_completion(chat_completion(message, "tool_calls"), shell())
    assert reply["status"] == "completed" and reply["model"] == "openai/gpt-4o-mini"
    reasoning, first, second = reply["output"]
    assert reasoning["type"] == "reasoning" and reasoning["id"].startswith("rs_")
    assert reasoning["content"] == [{"type": "reasoning_text", "text": "RSI is hot. MACD confirms."}]
    assert json.loads(reasoning["encrypted_content"]) == DETAILS  # handed back next turn, unchanged
    assert first == {"type": "function_call", "id": first["id"], "call_id": "call_a", "name": "get_price",
                     "arguments": '{"symbol":"BTC"}', "status": "completed"}
    assert second["call_id"] == "call_b" and second["id"].startswith("fc_") and second["id"] != first["id"]
    assert reply["usage"] == {"input_tokens": 50, "output_tokens": 20, "total_tokens": 70, "cost": 0.0001,
                              "input_tokens_details": {"cached_tokens": 10, "cache_write_tokens": 4},
                              "output_tokens_details": {"reasoning_tokens": 8}}
    # Passed back as the SDK does, the reasoning and calls become the assistant turn they were.
    again = parse({"model": "m/x", "input": [{"role": "user", "content": "q"}, *reply["output"],
                                              {"type": "function_call_output", "call_id": "call_a", "output": "1"},
                                              {"type": "function_call_output", "call_id": "call_b", "output": "2"}]})
    assistant = again.chat_body["messages"][1]
    assert assistant["reasoning_details"] == DETAILS
    assert [c["id"] for c in assistant["tool_calls"]] == ["call_a", "call_b"]


def test_a_cut_short_answer_is_incomplete_and_logprobs_are_kept() -> None:
    logprobs = {"content": [{"token": "Buy", "logprob": -0.1, "bytes": [66, 117, 121],
                             "top_logprobs": [{"token": "Buy", "logprob": -0.1, "bytes": [66, 117, 121]}]}]}
    reply = from_chat_completion(chat_completion({"role": "assistant", "content": "Buy"}, "length",
                                                 logprobs=logprobs), shell(max_output_tokens=1))
    assert reply["status"] == "incomplete" and reply["incomplete_details"] == {"reason": "max_output_tokens"}
    [message] = reply["output"]
    assert message["status"] == "incomplete" and message["content"][0]["text"] == "Buy"
    assert message["content"][0]["logprobs"] == logprobs["content"]
    assert reply["max_output_tokens"] == 1
    empty = from_chat_completion(chat_completion({"role": "assistant", "content": ""}), shell())
    assert [item["type"] for item in empty["output"]] == ["message"]  # an empty answer is still one


async def test_the_cost_is_said_again_exactly_never_through_a_float() -> None:
    chat = chat_completion({"role": "assistant", "content": "Hold."})
    raw = orjson.dumps(chat).replace(b'"cost":0.0001', b'"cost":0.0000000369')
    assert b'"cost":0.0000000369' in raw
    assert b'"cost":0.0000000369}' in whole_response(raw, shell())  # not 3.69e-8
    stream = chat_sse([chunk({"role": "assistant", "content": "Hold."}), chunk({}, "stop")])
    stream = stream.replace(b"data: [DONE]", b'data: {"choices":[],"usage":{"prompt_tokens":1,'
                                             b'"completion_tokens":1,"cost":0.0000000369}}\n\ndata: [DONE]')
    assert b'"cost":0.0000000369}' in await translated(stream)


async def test_the_sdk_reads_a_whole_answer_with_tool_calls() -> None:
    message = {"role": "assistant", "content": "Checking.", "tool_calls": [
        {"id": "call_a", "type": "function", "function": {"name": "get_price", "arguments": '{"symbol":"BTC"}'}}]}
    body = orjson.dumps(from_chat_completion(chat_completion(message, "tool_calls"), shell()))
    tools: Any = [PRICE_TOOL]
    async with sdk(lambda: body, "application/json") as client:
        reply = await client.responses.create(model="tier:fast", input="x", tools=tools)
    assert reply.output_text == "Checking."
    calls = [item for item in reply.output if item.type == "function_call"]
    assert [(c.call_id, c.name, json.loads(c.arguments)) for c in calls] == [("call_a", "get_price",
                                                                              {"symbol": "BTC"})]


# --- streams ---------------------------------------------------------------------------------------


HEAD = {"id": "gen-1", "object": "chat.completion.chunk", "created": 1, "model": "openai/gpt-4o-mini"}


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return HEAD | {"choices": choices} | extra


TOOL_STREAM = [
    chunk({"role": "assistant", "content": "", "reasoning": "RSI is hot."}),
    chunk({"reasoning": " MACD confirms.", "reasoning_details": DETAILS}),
    chunk({"content": "Checking "}),
    chunk({"content": "both."}),
    chunk({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                           "function": {"name": "get_price", "arguments": ""}}]}),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"symbol":'}}]}),
    chunk({"tool_calls": [{"index": 1, "id": "call_b", "type": "function",
                           "function": {"name": "get_funding", "arguments": '{"symbol":"ETH"}'}}]}),
    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"BTC"}'}}]}),
    chunk({}, "tool_calls", provider="OpenAI"),
    chunk(None, provider="OpenAI", usage={"prompt_tokens": 50, "completion_tokens": 20, "total_tokens": 70,
                                          "cost": 0.0001, "completion_tokens_details": {"reasoning_tokens": 8}}),
]


def chat_sse(chunks: list[dict[str, Any]], *, done: bool = True, error: dict[str, Any] | None = None) -> bytes:
    raw = b": OPENROUTER PROCESSING\n\n" + b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks)
    if error is not None:
        raw += b"data: " + orjson.dumps({"error": error}) + b"\n\n"
    return raw + (b"data: [DONE]\n\n" if done else b"")


async def pieces(raw: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(raw), size):
        yield raw[start:start + size]


async def translated(raw: bytes, size: int = 7) -> bytes:
    """The Responses SSE for chat's SSE `raw`, fed in pieces that split events and lines anywhere."""
    return b"".join([out async for out in response_events(pieces(raw, size), ResponseEvents(shell()))])


def events_of(sse: bytes) -> list[dict[str, Any]]:
    events = []
    for block in sse.split(b"\n\n"):
        if block:
            name, data = block.split(b"\n")
            event = orjson.loads(data.removeprefix(b"data: "))
            assert name == b"event: " + event["type"].encode()
            events.append(event)
    return events


async def test_a_stream_with_reasoning_text_and_two_tool_calls_becomes_responses_events() -> None:
    events = events_of(await translated(chat_sse(TOOL_STREAM)))
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    kinds = [(e["type"], e.get("output_index")) for e in events]
    assert kinds == [
        ("response.created", None), ("response.in_progress", None),
        ("response.output_item.added", 0), ("response.content_part.added", 0),
        ("response.reasoning_text.delta", 0), ("response.reasoning_text.delta", 0),
        ("response.reasoning_text.done", 0), ("response.content_part.done", 0), ("response.output_item.done", 0),
        ("response.output_item.added", 1), ("response.content_part.added", 1),
        ("response.output_text.delta", 1), ("response.output_text.delta", 1),
        ("response.output_text.done", 1), ("response.content_part.done", 1), ("response.output_item.done", 1),
        ("response.output_item.added", 2), ("response.function_call_arguments.delta", 2),
        ("response.output_item.added", 3), ("response.function_call_arguments.delta", 3),
        ("response.function_call_arguments.delta", 2),
        ("response.function_call_arguments.done", 2), ("response.output_item.done", 2),
        ("response.function_call_arguments.done", 3), ("response.output_item.done", 3),
        ("response.completed", None)]
    final = events[-1]["response"]
    assert final["status"] == "completed" and final["provider"] == "OpenAI"
    assert final["usage"]["output_tokens_details"] == {"reasoning_tokens": 8}
    reasoning, message, first, second = final["output"]
    assert json.loads(reasoning["encrypted_content"]) == DETAILS
    assert reasoning["content"] == [{"type": "reasoning_text", "text": "RSI is hot. MACD confirms."}]
    assert message["content"][0]["text"] == "Checking both."
    assert (first["call_id"], first["name"], first["arguments"]) == ("call_a", "get_price", '{"symbol":"BTC"}')
    assert (second["call_id"], second["arguments"]) == ("call_b", '{"symbol":"ETH"}')
    done = {e["output_index"]: e["item"] for e in events if e["type"] == "response.output_item.done"}
    assert [done[i] for i in range(4)] == final["output"]  # every item as its done event gave it


@pytest.mark.parametrize("size", [1, 3, 4096])
async def test_where_chats_bytes_split_does_not_matter(size: int) -> None:
    reference = events_of(await translated(chat_sse(TOOL_STREAM), 100_000))
    assert [e["type"] for e in events_of(await translated(chat_sse(TOOL_STREAM), size))] == [
        e["type"] for e in reference]


async def test_the_sdk_accumulates_the_stream_into_the_final_response() -> None:
    sse = await translated(chat_sse(TOOL_STREAM))
    tools: Any = [PRICE_TOOL, FUNDING_TOOL]
    async with (sdk(lambda: sse, "text/event-stream") as client,
                client.responses.stream(model="tier:fast", input="x", tools=tools) as stream):
        events = [event async for event in stream]
        final = await stream.get_final_response()
    assert final.output_text == "Checking both."
    calls = [item for item in final.output if item.type == "function_call"]
    assert [json.loads(c.arguments) for c in calls] == [{"symbol": "BTC"}, {"symbol": "ETH"}]
    assert calls[0].parsed_arguments == {"symbol": "BTC"}  # the SDK parses a strict tool's arguments
    argument_snapshots = [e.snapshot for e in events if e.type == "response.function_call_arguments.delta"]
    assert argument_snapshots[-1] == '{"symbol":"BTC"}'
    assert final.usage is not None and final.usage.output_tokens_details.reasoning_tokens == 8


async def test_a_cut_short_stream_ends_incomplete() -> None:
    chunks = [chunk({"role": "assistant", "content": "Buy BTC"}), chunk({}, "length"),
              chunk(None, usage={"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7})]
    events = events_of(await translated(chat_sse(chunks)))
    last = events[-1]
    assert last["type"] == "response.incomplete"
    assert last["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert last["response"]["output"][0]["status"] == "incomplete"
    assert events[-2]["type"] == "response.output_item.done" and events[-2]["item"]["status"] == "incomplete"


async def test_an_error_mid_stream_fails_the_response_with_what_it_had() -> None:
    error = {"message": "upstream error (server_error, status 200): boom", "type": "upstream_error",
             "param": None, "code": "upstream_server_error"}
    events = events_of(await translated(chat_sse([chunk({"role": "assistant", "content": "Buy"})],
                                                 done=False, error=error)))
    last = events[-1]
    assert last["type"] == "response.failed"
    assert last["response"]["status"] == "failed"
    assert last["response"]["error"] == {"code": "upstream_server_error", "message": error["message"]}
    assert last["response"]["output"][0]["status"] == "incomplete"
    assert last["response"]["output"][0]["content"][0]["text"] == "Buy"


async def test_a_failure_before_any_chunk_still_begins_the_response() -> None:
    events = events_of(await translated(chat_sse([], done=False, error={"message": "no", "code": "x"})))
    assert [e["type"] for e in events] == ["response.created", "response.in_progress", "response.failed"]


async def test_a_stream_that_just_stops_or_breaks_fails_instead_of_hanging() -> None:
    cut = events_of(await translated(chat_sse([chunk({"role": "assistant", "content": "Buy"})], done=False)))
    assert cut[-1]["type"] == "response.failed" and cut[-1]["response"]["error"]["code"] == "stream_ended"

    async def broken() -> AsyncIterator[bytes]:
        yield b"data: " + orjson.dumps(chunk({"role": "assistant", "content": "Buy"})) + b"\n\n"
        raise ConnectionResetError("secret detail that must not be answered")

    raw = b"".join([out async for out in response_events(broken(), ResponseEvents(shell()))])
    failed = events_of(raw)[-1]
    assert failed["type"] == "response.failed" and failed["response"]["error"]["code"] == "internal_error"
    assert b"secret detail" not in raw


async def test_closing_the_translation_closes_the_chat_stream() -> None:
    closed = []

    async def chat() -> AsyncIterator[bytes]:
        try:
            yield chat_sse([chunk({"role": "assistant", "content": "Buy"})], done=False)
            yield b"data: " + orjson.dumps(chunk({"content": " more"})) + b"\n\n"
        finally:
            closed.append(True)

    events = response_events(chat(), ResponseEvents(shell()))
    assert (await anext(events)).startswith(b"event: response.created")
    await events.aclose()  # the client hung up
    assert closed == [True]


# --- the SDK over a mock transport ------------------------------------------------------------------


def sdk(body: Callable[[], bytes], media_type: str) -> openai.AsyncOpenAI:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body(), headers={"content-type": media_type})

    return openai.AsyncOpenAI(api_key="test", base_url="http://gateway.test/v1", max_retries=0,
                              http_client=httpx.AsyncClient(transport=httpx.MockTransport(answer)))
