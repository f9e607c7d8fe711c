"""Streaming: keep-alive comment, deltas, finish chunk, both final usage forms, [DONE]."""

from __future__ import annotations

import math

import aiohttp
import pytest
from sim_helpers import TOKEN, Chat, fetch, sse_events

from lyra.catalog.models import load_catalog
from lyra.simulator import Simulator, SimulatorOptions

MESSAGES = [{"role": "user", "content": "Summarise the state of the market in two sentences."}]


async def test_stream_framing_and_usage(chat: Chat) -> None:
    answer = await chat(model="openai/gpt-4o-mini", stream=True, messages=MESSAGES)

    assert answer.status == 200
    assert answer.headers["Content-Type"].startswith("text/event-stream")
    assert answer.text.startswith(": OPENROUTER PROCESSING\n\n")
    comments, events, done = sse_events(answer.text)
    assert comments and done
    assert answer.text.endswith("data: [DONE]\n\n")
    ids = {e["id"] for e in events}
    assert ids == {answer.headers["X-Generation-Id"]}
    assert all(e["object"] == "chat.completion.chunk" for e in events)
    assert all(e["provider"] == "OpenAI" and e["model"] == "openai/gpt-4o-mini" for e in events)

    deltas = [e for e in events if e["choices"] and e["choices"][0]["finish_reason"] is None]
    finish = [e for e in events if e["choices"] and e["choices"][0]["finish_reason"]]
    assert len(finish) == 1 and finish[0]["choices"][0]["finish_reason"] == "stop"
    content = "".join(e["choices"][0]["delta"]["content"] for e in deltas)
    assert len([d for d in deltas if d["choices"][0]["delta"]["content"]]) >= 2
    assert "openai/gpt-4o-mini" in content

    usage_events = [e for e in events if "usage" in e]
    assert len(usage_events) == 1 and usage_events[0] is events[-1]
    usage = usage_events[0]["usage"]
    model = load_catalog().get("openai/gpt-4o-mini")
    assert usage["completion_tokens"] == math.ceil(len(content) / 4)
    usd_millionths = (
        model.prompt_per_m * usage["prompt_tokens"]
        + model.completion_per_m * usage["completion_tokens"]
    )
    assert math.isclose(usage["cost"], float(usd_millionths) / 1e6, rel_tol=1e-9)


async def test_same_request_streams_the_same_content_as_without_stream(chat: Chat) -> None:
    plain = (await chat(messages=MESSAGES)).json()["choices"][0]["message"]["content"]
    streamed = await chat(messages=MESSAGES, stream=True)
    _, events, _ = sse_events(streamed.text)
    text = "".join(e["choices"][0]["delta"]["content"] for e in events if e["choices"])
    assert text == plain


def _usage_choices(text: str) -> list[object]:
    _, events, _ = sse_events(text)
    final = events[-1]
    assert "usage" in final
    return list(final["choices"])


@pytest.mark.parametrize("form", ["empty_choices", "empty_delta"])
async def test_final_usage_form_is_configurable(form: str) -> None:
    async with (
        Simulator(options=SimulatorOptions(time_scale=0, final_usage_form=form)) as sim,
        aiohttp.ClientSession() as session,
    ):
        body = {"model": "openai/gpt-4o", "messages": MESSAGES, "stream": True}
        answer = await fetch(session, "POST", f"{sim.base_url}/chat/completions", body=body)
    choices = _usage_choices(answer.text)
    if form == "empty_choices":
        assert choices == []
    else:
        assert choices == [
            {
                "index": 0,
                "delta": {"role": "assistant", "content": ""},
                "finish_reason": None,
                "native_finish_reason": None,
                "logprobs": None,
            }
        ]


async def test_alternate_gives_both_final_usage_forms(chat: Chat) -> None:
    forms = set()
    for _ in range(2):
        answer = await chat(messages=MESSAGES, stream=True)
        forms.add(len(_usage_choices(answer.text)))
    assert forms == {0, 1}


async def test_streams_with_latency_keep_the_same_framing() -> None:
    options = SimulatorOptions(time_scale=0.005)  # a few milliseconds per call
    async with Simulator(options=options) as sim, aiohttp.ClientSession() as session:
        body = {"model": "openai/gpt-4o", "messages": MESSAGES, "stream": True}
        answer = await fetch(
            session, "POST", f"{sim.base_url}/chat/completions", token=TOKEN, body=body
        )
    _, events, done = sse_events(answer.text)
    assert answer.text.startswith(": OPENROUTER PROCESSING")
    assert done and "usage" in events[-1]
