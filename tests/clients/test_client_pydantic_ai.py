"""The gateway through Pydantic AI's `OpenAIChatModel`, with an `OpenAIProvider` pointing at it."""

from __future__ import annotations

from typing import Literal

import pytest
from gateway_support import MESSAGES
from pydantic import BaseModel, Field
from pydantic_ai import Agent, NativeOutput
from pydantic_ai.exceptions import ModelAuthenticationError, ModelHTTPError, ModelQuotaExceededError
from pydantic_ai.messages import ModelResponse, ToolCallPart, ToolReturnPart
from pydantic_ai.models.openai import OpenAIChatModel, OpenAIChatModelSettings
from pydantic_ai.providers.openai import OpenAIProvider

from clients.served import LIBRARY_NOTES, ONE_LOOP, Served

pytestmark = LIBRARY_NOTES

MODEL = "openai/gpt-4o-mini"
QUESTION = MESSAGES[0]["content"]


class Decision(BaseModel):
    """A trading decision."""

    action: Literal["buy", "sell", "hold"]
    confidence: float = Field(ge=0, le=1)


def model(served: Served, name: str = MODEL, *, token: str | None = None) -> OpenAIChatModel:
    return OpenAIChatModel(name, provider=OpenAIProvider(base_url=served.url, api_key=token or served.token))


def responses(messages: list[object]) -> list[ModelResponse]:
    return [m for m in messages if isinstance(m, ModelResponse)]


@ONE_LOOP
async def test_a_run_answers_text_with_the_served_model_and_usage(served: Served) -> None:
    result = await Agent(model(served, "tier:fast")).run(QUESTION, model_settings={"max_tokens": 64})
    assert isinstance(result.output, str) and result.output
    [response] = responses(result.all_messages())
    assert response.model_name and "/" in response.model_name  # the model that served it
    usage = result.usage
    assert usage.requests == 1 and usage.input_tokens > 0 and usage.output_tokens > 0


@ONE_LOOP
async def test_a_streamed_run_delivers_text_in_pieces_and_counts_usage(served: Served) -> None:
    agent = Agent(model(served, "tier:fast"))
    async with agent.run_stream(QUESTION, model_settings={"max_tokens": 80}) as run:
        pieces = [piece async for piece in run.stream_text(delta=True, debounce_by=None)]
        output = await run.get_output()
    assert len(pieces) > 1 and "".join(pieces) == output and output.strip()
    assert run.usage.output_tokens > 0  # from the usage chunk that stream_options asked for
    [response] = responses(run.all_messages())
    assert response.model_name and "/" in response.model_name


@ONE_LOOP
async def test_native_output_sends_a_json_schema(served: Served) -> None:
    agent = Agent(model(served), output_type=NativeOutput(Decision))
    result = await agent.run(QUESTION, model_settings={"max_tokens": 200})
    assert isinstance(result.output, Decision)


@ONE_LOOP
async def test_the_default_structured_output_uses_an_output_tool(served: Served) -> None:
    result = await Agent(model(served), output_type=Decision).run(QUESTION, model_settings={"max_tokens": 200})
    assert isinstance(result.output, Decision)
    [response] = responses(result.all_messages())
    [call] = [p for p in response.parts if isinstance(p, ToolCallPart)]
    assert call.tool_name == "final_result"


@ONE_LOOP
async def test_a_streamed_run_with_an_output_tool_validates_the_final_output(served: Served) -> None:
    agent = Agent(model(served), output_type=Decision)
    async with agent.run_stream(QUESTION, model_settings={"max_tokens": 200}) as run:
        partials = [partial async for partial in run.stream_output(debounce_by=None)]
        output = await run.get_output()
    assert isinstance(output, Decision) and partials and partials[-1] == output


@ONE_LOOP
async def test_a_tool_is_called_and_its_result_sent_back(served: Served) -> None:
    agent = Agent(model(served), instructions="Use the get_price tool for prices.")
    asked: list[str] = []

    @agent.tool_plain
    def get_price(symbol: str) -> str:
        """The latest traded price of a symbol, in USD."""
        asked.append(symbol)
        return f"{symbol}: 97000 USD"

    result = await agent.run("What is BTC trading at right now? Use the tool.", model_settings={"max_tokens": 200})
    assert asked and all(isinstance(symbol, str) for symbol in asked)
    returned = [p for m in result.all_messages() for p in getattr(m, "parts", []) if isinstance(p, ToolReturnPart)]
    assert [p.tool_name for p in returned] == ["get_price"] * len(asked)
    assert isinstance(result.output, str) and result.output


@ONE_LOOP
async def test_logprobs_are_in_the_provider_details(served: Served) -> None:
    settings = OpenAIChatModelSettings(max_tokens=64, openai_logprobs=True, openai_top_logprobs=2)
    result = await Agent(model(served)).run(QUESTION, model_settings=settings)
    [response] = responses(result.all_messages())
    tokens = (response.provider_details or {}).get("logprobs")
    assert tokens and "".join(t["token"] for t in tokens) == result.output
    assert all(t["logprob"] <= 0 for t in tokens)


@ONE_LOOP
async def test_a_wrong_token_raises_an_authentication_error(served: Served) -> None:
    with pytest.raises(ModelAuthenticationError) as caught:
        await Agent(model(served, token="lyra-not-a-client-token")).run(QUESTION)
    assert isinstance(caught.value, ModelHTTPError) and caught.value.status_code == 401


@ONE_LOOP
async def test_a_budget_refusal_is_a_quota_error_with_its_402(served: Served) -> None:
    with pytest.raises(ModelQuotaExceededError) as caught:
        await Agent(model(served, "tier:fast", token=served.over_budget_token)).run(QUESTION)
    assert isinstance(caught.value, ModelHTTPError) and caught.value.status_code == 402


@ONE_LOOP
async def test_an_invalid_setting_is_a_400(served: Served) -> None:
    with pytest.raises(ModelHTTPError) as caught:
        await Agent(model(served)).run(QUESTION, model_settings={"temperature": 5})
    assert caught.value.status_code == 400 and "temperature" in str(caught.value.body)


def test_run_sync(served: Served) -> None:
    result = Agent(model(served)).run_sync(QUESTION, model_settings={"max_tokens": 64})
    assert result.output and responses(result.all_messages())[0].model_name == MODEL
