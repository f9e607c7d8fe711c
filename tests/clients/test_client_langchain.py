"""The gateway through LangChain's `ChatOpenAI` (langchain-openai), with `base_url` pointing at it."""

from __future__ import annotations

from typing import Literal

import openai
import pytest
from gateway_support import MESSAGES
from langchain_core.exceptions import ModelAuthenticationError
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, Field

from clients.served import LIBRARY_NOTES, ONE_LOOP, Served

pytestmark = LIBRARY_NOTES

MODEL = "openai/gpt-4o-mini"
QUESTION = MESSAGES[0]["content"]


class Decision(BaseModel):
    """A trading decision."""

    action: Literal["buy", "sell", "hold"]
    confidence: float = Field(ge=0, le=1)


@tool
def get_price(symbol: str) -> str:
    """The latest traded price of a symbol, in USD."""
    return f'{{"symbol": "{symbol}", "price_usd": 97000}}'


@tool
def get_funding_rate(symbol: str) -> str:
    """The current perpetual-futures funding rate of a symbol."""
    return f'{{"symbol": "{symbol}", "funding_rate": 0.0001}}'


def chat(served: Served, model: str = MODEL, *, token: str | None = None, **options: object) -> ChatOpenAI:
    return ChatOpenAI(model=model, base_url=served.url, api_key=token or served.token,  # type: ignore[arg-type]
                      max_retries=0, max_tokens=200, **options)


def test_invoke_answers_with_the_served_model_and_usage(served: Served) -> None:
    reply = chat(served, "tier:fast").invoke(QUESTION)
    assert isinstance(reply, AIMessage) and isinstance(reply.content, str) and reply.content
    assert "/" in reply.response_metadata["model_name"]  # the model that served it
    assert reply.response_metadata["finish_reason"] in ("stop", "length")
    assert reply.usage_metadata is not None
    assert reply.usage_metadata["total_tokens"] == (
        reply.usage_metadata["input_tokens"] + reply.usage_metadata["output_tokens"]) > 0


@ONE_LOOP
async def test_ainvoke(served: Served) -> None:
    reply = await chat(served).ainvoke([HumanMessage(QUESTION)])
    assert reply.content and reply.response_metadata["model_name"] == MODEL


def test_a_stream_names_the_served_model_and_ends_with_usage(served: Served) -> None:
    chunks = list(chat(served, "tier:fast", stream_usage=True).stream(QUESTION))
    assert all(isinstance(c, AIMessageChunk) for c in chunks)
    assert len([c for c in chunks if c.content]) > 1
    whole = chunks[0]
    for chunk in chunks[1:]:
        whole += chunk
    assert isinstance(whole.content, str) and whole.content.strip()
    assert "/" in whole.response_metadata["model_name"]
    assert whole.usage_metadata is not None and whole.usage_metadata["output_tokens"] > 0
    [with_usage] = [i for i, c in enumerate(chunks) if c.usage_metadata]  # usage once, after the text
    assert all(not c.content for c in chunks[with_usage:])


@ONE_LOOP
async def test_astream(served: Served) -> None:
    pieces = [c.content async for c in chat(served, stream_usage=True).astream(QUESTION)]
    assert "".join(str(p) for p in pieces).strip()


def test_structured_output_by_default_sends_a_json_schema(served: Served) -> None:
    decision = chat(served).with_structured_output(Decision).invoke(QUESTION)
    assert isinstance(decision, Decision)


def test_structured_output_by_function_calling(served: Served) -> None:
    answer = chat(served).with_structured_output(Decision, method="function_calling", include_raw=True).invoke(
        QUESTION)
    assert answer["parsing_error"] is None
    assert isinstance(answer["parsed"], Decision)
    [call] = answer["raw"].tool_calls
    assert call["name"] == "Decision"


def test_bound_tools_call_and_their_results_round_trip(served: Served) -> None:
    model = chat(served).bind_tools([get_price], tool_choice="get_price")
    history: list[BaseMessage] = [HumanMessage("What is BTC trading at right now? Use the tool.")]
    first = model.invoke(history)
    assert isinstance(first, AIMessage)
    [call] = first.tool_calls
    assert call["name"] == "get_price" and isinstance(call["args"]["symbol"], str) and call["id"]
    history += [first, ToolMessage(get_price.invoke(call["args"]), tool_call_id=call["id"])]
    second = chat(served).bind_tools([get_price]).invoke(history)
    assert second.content and not second.tool_calls


def test_parallel_tool_calls_each_get_their_result(served: Served) -> None:
    tools = {"get_price": get_price, "get_funding_rate": get_funding_rate}
    history: list[BaseMessage] = [HumanMessage("BTC price and funding rate, please: call both tools at once.")]
    first = chat(served).bind_tools(list(tools.values()), tool_choice="any").invoke(history)
    assert isinstance(first, AIMessage)
    assert sorted(c["name"] for c in first.tool_calls) == ["get_funding_rate", "get_price"]
    history += [first, *(ToolMessage(tools[c["name"]].invoke(c["args"]), tool_call_id=c["id"])
                         for c in first.tool_calls)]
    second = chat(served).bind_tools(list(tools.values())).invoke(history)
    assert second.content and not second.tool_calls


def test_streamed_tool_call_chunks_add_up_to_the_call(served: Served) -> None:
    chunks = list(chat(served).bind_tools([get_price], tool_choice="get_price").stream(
        "What is BTC trading at right now? Use the tool."))
    whole = chunks[0]
    for chunk in chunks[1:]:
        whole += chunk
    assert isinstance(whole, AIMessageChunk) and len([c for c in chunks if c.tool_call_chunks]) >= 1
    [call] = whole.tool_calls
    assert call["name"] == "get_price" and isinstance(call["args"]["symbol"], str)
    assert whole.response_metadata["finish_reason"] == "tool_calls"


def test_n_2_gives_two_generations(served: Served) -> None:
    result = chat(served, n=2).generate([[HumanMessage(QUESTION)]])
    [generations] = result.generations
    assert len(generations) == 2 and all(g.text for g in generations)


def test_logprobs_are_in_the_response_metadata(served: Served) -> None:
    reply = chat(served, logprobs=True).invoke(QUESTION)
    tokens = reply.response_metadata["logprobs"]["content"]
    assert tokens and "".join(t["token"] for t in tokens) == reply.content
    assert all(t["logprob"] <= 0 for t in tokens)


def test_a_wrong_token_raises_authentication_error(served: Served) -> None:
    with pytest.raises(openai.AuthenticationError) as caught:
        chat(served, token="lyra-not-a-client-token").invoke(QUESTION)
    assert isinstance(caught.value, ModelAuthenticationError)  # LangChain's own class too
    assert caught.value.status_code == 401


@ONE_LOOP
async def test_a_budget_refusal_keeps_its_402(served: Served) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        await chat(served, "tier:fast", token=served.over_budget_token).ainvoke(QUESTION)
    assert caught.value.status_code == 402 and caught.value.code == "budget_exceeded"


def test_an_invalid_field_raises_bad_request(served: Served) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        chat(served, temperature=5).invoke(QUESTION)
    assert caught.value.status_code == 400 and caught.value.param == "temperature"
