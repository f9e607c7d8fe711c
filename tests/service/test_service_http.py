"""The gateway over raw HTTP: malformed bodies, bounds, and the read-only endpoints."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from gateway_support import DESK_TOKEN, MESSAGES, OPS_TOKEN, gateway_config_text, running

from lyra import Lyra
from lyra.service import create_app
from lyra.simulator import Simulator, SimulatorOptions
from support import engine_env

AUTH = {"Authorization": f"Bearer {DESK_TOKEN}"}


@pytest.fixture
async def http(gateway: str) -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
    async with aiohttp.ClientSession() as session:
        yield session, gateway


async def post(http: tuple[aiohttp.ClientSession, str], data: bytes | dict[str, Any],
               headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    session, base = http
    body = data if isinstance(data, bytes) else orjson.dumps(data)
    async with session.post(f"{base}/chat/completions", data=body,
                            headers=AUTH | {"Content-Type": "application/json"} | (headers or {})) as r:
        return r.status, orjson.loads(await r.read())


def error_of(payload: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's error body: exactly message, type, param and code."""
    assert set(payload) == {"error"}
    error: dict[str, Any] = payload["error"]
    assert set(error) == {"message", "type", "param", "code"}
    return error


async def test_a_body_that_is_not_json_is_a_400(http: tuple[aiohttp.ClientSession, str]) -> None:
    status, payload = await post(http, b"{model: tier:fast")
    error = error_of(payload)
    assert status == 400 and error["code"] == "invalid_json" and "not valid JSON" in error["message"]


async def test_a_body_that_is_not_an_object_is_a_400(http: tuple[aiohttp.ClientSession, str]) -> None:
    status, payload = await post(http, b"[1, 2]")
    assert status == 400 and "JSON object" in error_of(payload)["message"]


@pytest.mark.parametrize(("body", "param", "words"), [
    ({"model": "tier:fast"}, "messages", "required"),
    ({"model": "tier:fast", "messages": []}, "messages", "at least 1"),
    ({"messages": MESSAGES}, "model", "required"),
    ({"model": "tier:fast", "messages": [{"role": "trader", "content": "hi"}]}, "messages[0].role", "'user'"),
    ({"model": "tier:fast", "messages": [{"role": "user", "content": 7}]}, "messages[0].content", "string"),
    ({"model": "tier:fast", "messages": MESSAGES, "max_tokens": 10**6}, "max_tokens", "more than"),
    ({"model": "tier:fast", "messages": MESSAGES, "max_tokens": 0}, "max_tokens", "greater than"),
    ({"model": "tier:fast", "messages": MESSAGES, "max_tokens": "100"}, "max_tokens", "integer"),
    ({"model": "openai/gpt-4o-mini", "messages": MESSAGES, "max_tokens": 20_000}, "max_tokens", "gpt-4o-mini"),
    ({"model": "tier:fast", "messages": MESSAGES, "temperature": 7}, "temperature", "less than"),
    ({"model": "no-such/model", "messages": MESSAGES}, "model", "unknown model"),
    ({"model": "tier:gold", "messages": MESSAGES}, "model", "unknown tier"),
    ({"model": "task:astrology", "messages": MESSAGES}, "model", "unknown task"),
    ({"model": "tier:fast", "messages": MESSAGES, "n": 9}, "n", "more than this gateway allows (8)"),
    ({"model": "tier:fast", "messages": MESSAGES, "n": 0}, "n", "greater than"),
    ({"model": "tier:fast", "messages": MESSAGES, "tools": [{"type": "function"}]}, "tools[0].function",
     "missing"),
    ({"model": "tier:fast", "messages": MESSAGES, "functions": [{"name": "f"}]}, "functions", "legacy"),
    ({"model": "tier:fast", "messages": MESSAGES, "tool_choice": "required"}, "tool_choice", "needs tools"),
    ({"model": "tier:fast", "messages": [{"role": "tool", "content": "42"}]}, "messages[0]", "tool_call_id"),
    ({"model": "tier:fast", "messages": MESSAGES, "top_logprobs": 3}, "top_logprobs", "logprobs"),
    ({"model": "tier:fast", "messages": MESSAGES, "reasoning": {"effort": "huge"}}, "reasoning.effort",
     "expected one of"),
    ({"model": "tier:fast", "messages": MESSAGES, "models": ["openai/gpt-4o-mini"]}, "models",
     "tier or a task"),
    ({"model": "openai/gpt-4o-mini", "messages": MESSAGES, "models": ["no-such/model"]}, "models[0]",
     "unknown model"),
    ({"model": "openai/gpt-4o-mini", "messages": MESSAGES, "models": ["tier:fast"]}, "models[0]",
     "not a catalogue model id"),
    ({"model": "tier:fast", "messages": MESSAGES, "response_format": {"type": "json_schema"}},
     "response_format", "json_schema"),
])
async def test_a_bad_field_is_a_400_naming_it(http: tuple[aiohttp.ClientSession, str], body: dict[str, Any],
                                               param: str, words: str) -> None:
    status, payload = await post(http, body)
    error = error_of(payload)
    assert status == 400, payload
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert words in error["message"] and error["message"].startswith(param)


HUGE = orjson.dumps({"model": "tier:fast", "messages": [{"role": "user", "content": "x" * 1_100_000}]})


async def test_a_body_over_the_bound_is_a_413(http: tuple[aiohttp.ClientSession, str]) -> None:
    session, base = http
    async with session.post(f"{base}/chat/completions", data=io.BytesIO(HUGE), headers=AUTH) as r:
        assert r.status == 413 and error_of(await r.json())["code"] == "request_too_large"


async def test_a_chunked_body_is_cut_off_at_the_bound_too(http: tuple[aiohttp.ClientSession, str]) -> None:
    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: the gateway counts as it reads
        for start in range(0, len(HUGE), 65_536):
            yield HUGE[start:start + 65_536]

    session, base = http
    async with session.post(f"{base}/chat/completions", data=chunks(), headers=AUTH) as r:
        assert r.status == 413 and error_of(await r.json())["code"] == "request_too_large"


async def test_a_missing_token_is_a_401_before_the_body_is_read(http: tuple[aiohttp.ClientSession, str]) -> None:
    session, base = http
    async with session.post(f"{base}/chat/completions", data=b"not even json") as r:
        assert r.status == 401
        assert r.headers["WWW-Authenticate"] == "Bearer"
        error = error_of(await r.json())
        assert error["code"] == "invalid_api_key" and error["type"] == "authentication_error"


async def test_every_answer_carries_a_request_id(http: tuple[aiohttp.ClientSession, str]) -> None:
    session, base = http
    seen = set()
    for method, path, headers in (("POST", "/chat/completions", {}), ("GET", "/embeddings", AUTH),
                                  ("GET", "/models", AUTH)):
        async with session.request(method, f"{base}{path}", headers=headers) as r:
            assert r.headers["x-request-id"].startswith("req-"), (path, r.status)
            seen.add(r.headers["x-request-id"])
    assert len(seen) == 3  # one per answer
    async with session.get(f"{base}/models", headers={**AUTH, "x-request-id": "desk-7f3a:42"}) as r:
        assert r.headers["x-request-id"] == "desk-7f3a:42"  # the caller's own, echoed
    async with session.get(f"{base}/models", headers={**AUTH, "x-request-id": "bad id\twith\tspaces"}) as r:
        assert r.headers["x-request-id"].startswith("req-")  # not a plain token: a new one


async def test_an_unknown_route_answers_in_the_same_error_shape(http: tuple[aiohttp.ClientSession, str]) -> None:
    session, base = http
    async with session.get(f"{base}/embeddings", headers=AUTH) as r:
        assert r.status == 404
        assert error_of(await r.json())["code"] == "not_found"


async def test_health_and_readiness(http: tuple[aiohttp.ClientSession, str]) -> None:
    session, base = http
    root = base.removesuffix("/v1")
    for path in ("/healthz", "/readyz"):
        async with session.get(root + path) as r:
            assert r.status == 200


async def test_usage_reports_the_ledger_by_model(http: tuple[aiohttp.ClientSession, str]) -> None:
    session, base = http
    for _ in range(3):
        status, _ = await post(http, {"model": "openai/gpt-4o-mini", "messages": MESSAGES, "max_tokens": 32})
        assert status == 200
    async with session.get(f"{base}/usage?since=7d&by=model", headers=AUTH) as r:
        assert r.status == 200
        report = await r.json()
    line = next(line for line in report["data"] if line["group"] == "openai/gpt-4o-mini")
    assert line["requests"] == 3 and line["cost_nanos"] > 0 and line["cost_usd"] > 0
    async with session.get(f"{base}/usage?since=7d&by=client", headers=AUTH) as r:
        assert {line["group"] for line in (await r.json())["data"]} == {"desk"}


@pytest.mark.parametrize(("query", "param"), [("since=yesterday", "since"), ("by=colour", "by")])
async def test_usage_names_a_bad_query_parameter(http: tuple[aiohttp.ClientSession, str], query: str,
                                                 param: str) -> None:
    session, base = http
    async with session.get(f"{base}/usage?{query}", headers=AUTH) as r:
        assert r.status == 400 and error_of(await r.json())["param"] == param


async def test_budget_shows_todays_caps_and_the_clients_own(http: tuple[aiohttp.ClientSession, str]) -> None:
    session, base = http
    status, _ = await post(http, {"model": "tier:fast", "messages": MESSAGES, "max_tokens": 32})
    assert status == 200
    async with session.get(f"{base}/budget", headers=AUTH) as r:
        assert r.status == 200
        budget = await r.json()
    assert budget["client"]["name"] == "client:desk"
    assert budget["client"]["limit"] == 5.0
    assert 0 < budget["client"]["spent"] < 5.0
    # A client sees its own cap only; the operator sees the desk's shared caps and every client's.
    assert [cap["name"] for cap in budget["caps"]] == ["client:desk"]
    assert budget["resets_at"].endswith("T00:00:00Z")
    async with session.get(f"{base}/budget", headers={"Authorization": f"Bearer {OPS_TOKEN}"}) as r:
        assert r.status == 200
        names = {cap["name"] for cap in (await r.json())["caps"]}
    assert {"global", "tier:fast", "key:premium", "client:tight", "client:desk"} <= names


async def test_metrics_count_requests_tokens_cost_and_budget(http: tuple[aiohttp.ClientSession, str]) -> None:
    session, base = http
    status, _ = await post(http, {"model": "openai/gpt-4o-mini", "messages": MESSAGES, "max_tokens": 32})
    assert status == 200
    await post(http, {"model": "nope/nope", "messages": MESSAGES})
    async with session.get(base.removesuffix("/v1") + "/metrics", headers=AUTH) as r:
        assert r.status == 403  # it names every key and client: an operator's page
    async with session.get(base.removesuffix("/v1") + "/metrics",
                           headers={"Authorization": f"Bearer {OPS_TOKEN}"}) as r:
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/plain")
        text = await r.text()
    assert 'lyra_requests_total{client="desk",key=' in text
    assert 'model="openai/gpt-4o-mini"' in text and 'outcome="ok"' in text
    assert "lyra_tokens_total{" in text and "lyra_spend_usd_total{" in text
    assert "lyra_request_duration_seconds_bucket{" in text
    assert 'lyra_budget_remaining_usd{cap="client:desk"}' in text
    assert 'lyra_http_requests_total{method="POST",route="/v1/chat/completions",status="400"} 1.0' in text


async def test_a_client_hanging_up_mid_stream_frees_its_budget_hold(tmp_path: Path) -> None:
    # Real latencies, so the stream is still going when the client leaves.
    async with Simulator(options=SimulatorOptions(time_scale=1.0, generation_lag_s=0.0)) as slow_sim:
        path = tmp_path / "lyra.toml"
        path.write_text(gateway_config_text(timeout_s=10))
        lyra = Lyra.from_config(path, environ=engine_env(slow_sim) | {
            "LYRA_LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.db'}"})
        async with running(create_app(lyra)) as base, aiohttp.ClientSession() as session:
            body = orjson.dumps({"model": "tier:fast", "messages": MESSAGES, "max_tokens": 400, "stream": True})
            async with session.post(f"{base}/chat/completions", data=body, headers=AUTH) as r:
                assert r.status == 200
                first = await r.content.readline()
                assert first.startswith(b"data: {")
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


async def test_a_cached_answer_says_so_and_a_request_can_ask_for_a_fresh_one(
        http: tuple[aiohttp.ClientSession, str], sim: Simulator) -> None:
    session, base = http
    body = orjson.dumps({"model": "task:market_analysis", "messages": MESSAGES, "max_tokens": 32})
    headers = AUTH | {"Content-Type": "application/json"}
    statuses, calls = [], []
    for extra in ({}, {}, {"Cache-Control": "no-cache"}):
        async with session.post(f"{base}/chat/completions", data=body, headers=headers | extra) as r:
            assert r.status == 200
            statuses.append(r.headers["Cache-Status"])
        calls.append(sim.stats.calls)
    assert statuses == ["lyra; fwd=miss", "lyra; hit", "lyra; fwd=bypass"]
    assert calls[1] == calls[0] and calls[2] == calls[1] + 1  # the hit cost no call; the bypass did
