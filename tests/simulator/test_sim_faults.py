"""Fault injection: every kind's status, body and headers; scoping, counts, control endpoint."""

from __future__ import annotations

import asyncio
import re
import time

import aiohttp
import orjson
import pytest
from sim_helpers import OTHER_TOKEN, TOKEN, Chat, fetch, sse_events

from lyra.simulator import Fault, Simulator, SimulatorOptions

STREAM_MESSAGES = [{"role": "user", "content": "Write a few sentences about liquidity " * 3}]


async def test_rate_limit_is_429_with_headers(sim: Simulator, chat: Chat) -> None:
    sim.add_fault(Fault(kind="rate_limit", retry_after_s=2))
    answer = await chat()
    assert answer.status == 429
    assert answer.headers["Retry-After"] == "2"
    for name in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"):
        assert answer.headers[name].isdigit()
    assert int(answer.headers["X-RateLimit-Reset"]) > time.time() * 1000
    error = answer.json()["error"]
    assert error["code"] == 429
    assert "rate-limited" in error["message"]
    assert error["metadata"]["headers"]["X-RateLimit-Remaining"] == "0"
    assert sim.stats.faults_fired["rate_limit"] == 1


async def test_server_error_502_varies_raw_between_string_and_object(
    sim: Simulator, chat: Chat
) -> None:
    sim.add_fault(Fault(kind="server_error"))
    first, second = (await chat()), (await chat())
    raws = []
    for answer in (first, second):
        assert answer.status == 502
        error = answer.json()["error"]
        assert error["code"] == 502
        assert error["message"] == "Provider returned error"
        assert error["metadata"]["provider_name"] == "OpenAI"
        raws.append(error["metadata"]["raw"])
    assert {type(r) for r in raws} == {str, dict}
    as_string = next(r for r in raws if isinstance(r, str))
    assert orjson.loads(as_string) == next(r for r in raws if isinstance(r, dict))


@pytest.mark.parametrize("status", [500, 503])
async def test_server_error_statuses(sim: Simulator, chat: Chat, status: int) -> None:
    sim.add_fault(Fault(kind="server_error", status=status, retry_after_s=1))
    answer = await chat()
    assert answer.status == status
    assert answer.json()["error"]["code"] == status
    assert answer.headers["Retry-After"] == "1"


async def test_timeout_hangs_past_the_client_deadline(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    sim.add_fault(Fault(kind="timeout", hang_s=30))
    body = {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    with pytest.raises(asyncio.TimeoutError):
        async with session.post(
            f"{sim.base_url}/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {TOKEN}"},
            timeout=aiohttp.ClientTimeout(total=0.2),
        ) as resp:
            await resp.read()
    assert sim.stats.faults_fired["timeout"] == 1


async def test_timeout_ends_with_524_after_the_hang(sim: Simulator, chat: Chat) -> None:
    sim.add_fault(Fault(kind="timeout", hang_s=0.01))
    answer = await chat()
    assert answer.status == 524
    assert answer.json()["error"]["code"] == 524


async def test_malformed_bodies_are_200_and_not_json(sim: Simulator, chat: Chat) -> None:
    sim.add_fault(Fault(kind="malformed"))
    for _ in range(2):  # a cut-off JSON body, then an HTML page
        answer = await chat()
        assert answer.status == 200
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(answer.raw)


async def test_malformed_stream_has_an_unparseable_event(sim: Simulator, chat: Chat) -> None:
    sim.add_fault(Fault(kind="malformed"))
    answer = await chat(stream=True, messages=STREAM_MESSAGES)
    assert answer.status == 200
    with pytest.raises(orjson.JSONDecodeError):
        sse_events(answer.text)


async def test_error_in_200_alternates_forms_and_code_types(sim: Simulator, chat: Chat) -> None:
    sim.add_fault(Fault(kind="error_in_200"))
    bodies = []
    for _ in range(4):
        answer = await chat()
        assert answer.status == 200
        bodies.append(answer.json())
    top_level = [b for b in bodies if "choices" not in b]
    in_choices = [b for b in bodies if "choices" in b]
    assert len(top_level) == 2 and len(in_choices) == 2
    for body in top_level:
        assert set(body) == {"error", "user_id"} and "id" not in body
    for body in in_choices:
        choice = body["choices"][0]
        assert choice["finish_reason"] == "error"
        assert "error" in choice
        assert body["usage"]["cost"] == 0
    codes = [(b if "error" in b else b["choices"][0])["error"]["code"] for b in bodies]
    assert {type(c) for c in codes} == {int, str}
    assert "server_error" in codes


async def test_error_in_200_streams_an_error_event_and_no_done(
    sim: Simulator, chat: Chat
) -> None:
    sim.add_fault(Fault(kind="error_in_200"))
    shapes = []
    for _ in range(2):
        answer = await chat(stream=True, messages=STREAM_MESSAGES)
        assert answer.status == 200
        _, events, done = sse_events(answer.text)
        assert not done and len(events) == 1 and "error" in events[0]
        shapes.append("choices" in events[0])
    assert shapes == [False, True]


async def test_midstream_error_streams_content_then_an_error_event(
    sim: Simulator, chat: Chat
) -> None:
    sim.add_fault(Fault(kind="midstream_error"))
    answer = await chat(stream=True, messages=STREAM_MESSAGES)
    assert answer.status == 200
    comments, events, done = sse_events(answer.text)
    assert comments and not done
    assert events[0]["choices"][0]["delta"]["content"]
    last = events[-1]
    assert "error" in last
    assert last["choices"][0]["finish_reason"] == "error"
    assert not any("usage" in e for e in events)


async def test_midstream_error_without_stream_is_a_choices_error(
    sim: Simulator, chat: Chat
) -> None:
    sim.add_fault(Fault(kind="midstream_error"))
    body = (await chat(messages=STREAM_MESSAGES)).json()
    choice = body["choices"][0]
    assert choice["finish_reason"] == "error"
    assert choice["error"]["message"]
    assert choice["message"]["content"]  # the part produced before the failure


async def test_revoked_key_fault_is_401(sim: Simulator, chat: Chat) -> None:
    sim.add_fault(Fault(kind="revoked_key"))
    answer = await chat()
    assert answer.status == 401
    assert answer.json()["error"]["message"] == "User not found."


async def test_key_limit_fault_is_403(sim: Simulator, chat: Chat) -> None:
    sim.add_fault(Fault(kind="key_limit"))
    answer = await chat()
    assert answer.status == 403
    assert answer.json()["error"]["message"] == (
        "Key limit exceeded (daily limit). Manage it using https://openrouter.ai/settings/keys"
    )


async def test_payment_required_fault_is_402_with_the_real_message(
    sim: Simulator, chat: Chat
) -> None:
    sim.add_fault(Fault(kind="payment_required"))
    answer = await chat(max_tokens=1000)
    assert answer.status == 402
    error = answer.json()["error"]
    assert re.fullmatch(
        r"This request requires more credits, or fewer max_tokens\. You requested up to 1000 "
        r"tokens, but can only afford \d+\. To increase, visit "
        r"https://openrouter\.ai/settings/credits and upgrade to a paid account",
        error["message"],
    )
    assert error["metadata"] == {"provider_name": None}


async def test_free_per_day_fault_is_429_with_reset_in_epoch_ms(
    sim: Simulator, chat: Chat
) -> None:
    sim.add_fault(Fault(kind="free_per_day"))
    answer = await chat(model="openai/gpt-oss-20b:free")
    assert answer.status == 429
    error = answer.json()["error"]
    assert error["message"].startswith("Rate limit exceeded: free-models-per-day.")
    headers = error["metadata"]["headers"]
    assert headers["X-RateLimit-Remaining"] == "0"
    assert answer.headers["X-RateLimit-Reset"] == headers["X-RateLimit-Reset"]
    assert int(headers["X-RateLimit-Reset"]) > time.time() * 1000


async def test_drop_closes_the_connection(
    sim: Simulator, session: aiohttp.ClientSession
) -> None:
    sim.add_fault(Fault(kind="drop"))
    url = f"{sim.base_url}/chat/completions"
    body = {"model": "openai/gpt-4o", "messages": STREAM_MESSAGES}
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await fetch(session, "POST", url, body=body)
    with pytest.raises(aiohttp.ClientPayloadError):
        await fetch(session, "POST", url, body={**body, "stream": True})
    assert sim.stats.faults_fired["drop"] == 2


async def test_count_limits_how_often_a_fault_fires(sim: Simulator, chat: Chat) -> None:
    sim.add_fault(Fault(kind="server_error", count=2))
    statuses = [(await chat()).status for _ in range(4)]
    assert statuses == [502, 502, 200, 200]


async def test_faults_are_scoped_by_model_and_key(sim: Simulator, chat: Chat) -> None:
    sim.add_fault(Fault(kind="server_error", model="openai/gpt-4o", key=TOKEN))
    assert (await chat(model="openai/gpt-4o")).status == 502
    assert (await chat(model="openai/gpt-4o-mini")).status == 200
    assert (await chat(model="openai/gpt-4o", token=OTHER_TOKEN)).status == 200
    sim.clear_faults()
    assert (await chat(model="openai/gpt-4o")).status == 200


async def test_rate_draws_come_from_the_seeded_rng() -> None:
    async def pattern() -> list[int]:
        options = SimulatorOptions(time_scale=0, seed=11)
        async with Simulator(options=options) as sim, aiohttp.ClientSession() as session:
            sim.add_fault(Fault(kind="server_error", rate=0.5))
            body = {"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
            url = f"{sim.base_url}/chat/completions"
            return [(await fetch(session, "POST", url, body=body)).status for _ in range(30)]

    first, second = await pattern(), await pattern()
    assert first == second
    assert 5 < first.count(502) < 25


async def test_a_faulty_primary_falls_back_to_the_next_model(sim: Simulator, chat: Chat) -> None:
    sim.add_fault(Fault(kind="server_error", model="openai/gpt-4o"))
    body = (await chat(model="openai/gpt-4o", models=["anthropic/claude-sonnet-4.6"])).json()
    assert body["model"] == "anthropic/claude-sonnet-4.6"
    assert body["provider"] == "Anthropic"


async def test_key_faults_do_not_fall_back(sim: Simulator, chat: Chat) -> None:
    sim.add_fault(Fault(kind="key_limit", model="openai/gpt-4o"))
    answer = await chat(model="openai/gpt-4o", models=["anthropic/claude-sonnet-4.6"])
    assert answer.status == 403


async def test_control_endpoint_adds_clears_and_reports(
    sim: Simulator, session: aiohttp.ClientSession, chat: Chat
) -> None:
    root = sim.root_url
    added = await fetch(session, "POST", f"{root}/_sim/faults", body={"kind": "key_limit"})
    assert added.status == 201
    assert (await chat()).status == 403
    listed = (await fetch(session, "GET", f"{root}/_sim/faults")).json()
    assert [f["kind"] for f in listed["faults"]] == ["key_limit"]
    assert (await fetch(session, "DELETE", f"{root}/_sim/faults")).status == 200
    assert (await chat()).status == 200
    stats = (await fetch(session, "GET", f"{root}/_sim/stats")).json()
    assert stats["calls"] == 2
    assert stats["faults_fired"] == {"key_limit": 1}
    bad = await fetch(session, "POST", f"{root}/_sim/faults", body={"kind": "meteor"})
    assert bad.status == 400
    assert "meteor" in bad.json()["error"]["message"]


def test_fault_fields_are_validated() -> None:
    with pytest.raises(ValueError, match="kind"):
        Fault(kind="meteor")
    with pytest.raises(ValueError, match="rate"):
        Fault(kind="drop", rate=1.5)
    with pytest.raises(ValueError, match="status"):
        Fault(kind="server_error", status=404)
    with pytest.raises(ValueError, match="unknown"):
        Fault.from_mapping({"kind": "drop", "colour": "red"})
