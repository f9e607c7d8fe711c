"""Keys: credit limits and the 402 pre-flight, /key, free-model rate limits, token secrecy."""

from __future__ import annotations

import re
import time
from decimal import Decimal

import aiohttp
from sim_helpers import OTHER_TOKEN, TOKEN, Chat, fetch

from lyra.catalog.models import load_catalog
from lyra.simulator import Fault, Simulator, SimulatorOptions

CATALOG = load_catalog()
HELLO = [{"role": "user", "content": "Say hello."}]  # 10 characters: 3 + 4 = 7 tokens


def _affordable(limit_usd: str, model_id: str, prompt_tokens: int) -> int:
    model = CATALOG.get(model_id)
    left = Decimal(limit_usd) * 1_000_000 - model.prompt_per_m * prompt_tokens
    return int(left / model.completion_per_m)


async def test_402_when_max_tokens_cannot_be_afforded(sim: Simulator, chat: Chat) -> None:
    sim.set_key_limit(TOKEN, 0.01)  # 10,000 nano-dollars; gpt-4o output is 10 per token
    answer = await chat(model="openai/gpt-4o", messages=HELLO, max_tokens=2000)

    assert answer.status == 402
    error = answer.json()["error"]
    assert error["code"] == 402
    assert error["metadata"] == {"provider_name": None}
    expected = _affordable("0.01", "openai/gpt-4o", 7)
    assert expected == 998
    assert error["message"] == (
        "This request requires more credits, or fewer max_tokens. You requested up to 2000 "
        f"tokens, but can only afford {expected}. To increase, visit "
        "https://openrouter.ai/settings/credits and upgrade to a paid account"
    )
    assert (await chat(model="openai/gpt-4o", messages=HELLO, max_tokens=998)).status == 200


async def test_without_max_tokens_the_models_max_output_is_checked(
    sim: Simulator, chat: Chat
) -> None:
    sim.set_key_limit(TOKEN, 0.05)
    answer = await chat(model="openai/gpt-4o", messages=HELLO)  # max_output 16384
    assert answer.status == 402
    assert "You requested up to 16384 tokens" in answer.json()["error"]["message"]


async def test_spend_is_charged_and_reported_by_key(
    sim: Simulator, chat: Chat, session: aiohttp.ClientSession
) -> None:
    sim.set_key_limit(TOKEN, 1.0)
    costs = [
        (await chat(model="openai/gpt-4o", max_tokens=100)).json()["usage"]["cost"]
        for _ in range(3)
    ]
    data = (await fetch(session, "GET", f"{sim.base_url}/key")).json()["data"]
    assert data["limit"] == 1.0
    assert data["limit_reset"] == "daily"
    assert abs(data["usage"] - sum(costs)) < 1e-6
    assert abs(data["usage_daily"] - sum(costs)) < 1e-6
    assert abs(data["limit_remaining"] - (1.0 - sum(costs))) < 1e-6
    assert data["is_free_tier"] is False
    assert data["is_management_key"] is False


async def test_spend_runs_a_limited_key_into_402(sim: Simulator, chat: Chat) -> None:
    sim.set_key_limit(TOKEN, 0.002)
    statuses = [(await chat(model="openai/gpt-4o", max_tokens=60)).status for _ in range(12)]
    assert statuses[0] == 200
    assert statuses[-1] == 402
    assert statuses == sorted(statuses)  # once out of credit, it stays out


async def test_default_key_limit_applies_to_every_token(session: aiohttp.ClientSession) -> None:
    options = SimulatorOptions(time_scale=0, default_key_limit_usd=0.0001)
    async with Simulator(options=options) as sim:
        body = {"model": "openai/gpt-4o", "messages": HELLO, "max_tokens": 500}
        answer = await fetch(session, "POST", f"{sim.base_url}/chat/completions", body=body)
        assert answer.status == 402
        data = (await fetch(session, "GET", f"{sim.base_url}/auth/key")).json()["data"]
        assert data["limit"] == 0.0001


async def test_key_label_is_masked(sim: Simulator, session: aiohttp.ClientSession) -> None:
    data = (await fetch(session, "GET", f"{sim.base_url}/key")).json()["data"]
    assert data["label"] == f"sk-or-v1-{TOKEN[9:12]}...{TOKEN[-3:]}"
    assert data["limit"] is None and data["limit_remaining"] is None
    unauth = await fetch(session, "GET", f"{sim.base_url}/key", token=None)
    assert unauth.status == 401


async def test_free_models_allow_20_requests_a_minute(sim: Simulator, chat: Chat) -> None:
    statuses = [(await chat(model="openai/gpt-oss-20b:free")).status for _ in range(21)]
    assert statuses == [200] * 20 + [429]
    answer = await chat(model="openai/gpt-oss-20b:free")
    error = answer.json()["error"]
    assert error["message"] == "Rate limit exceeded: free-models-per-min."
    headers = error["metadata"]["headers"]
    assert headers["X-RateLimit-Limit"] == "20"
    assert headers["X-RateLimit-Remaining"] == "0"
    reset = int(headers["X-RateLimit-Reset"])
    assert time.time() * 1000 < reset <= (time.time() + 61) * 1000
    assert answer.headers["X-RateLimit-Reset"] == headers["X-RateLimit-Reset"]
    # The window is per token, and paid models are not limited.
    assert (await chat(model="openai/gpt-oss-20b:free", token=OTHER_TOKEN)).status == 200
    assert (await chat(model="openai/gpt-4o")).status == 200


async def test_the_token_never_appears_in_any_response(
    sim: Simulator, chat: Chat, session: aiohttp.ClientSession
) -> None:
    sim.set_key_limit(TOKEN, 0.001)
    bodies = [
        (await chat()).raw,
        (await chat(max_tokens=100_000)).raw,  # 402
        (await chat(stream=True)).raw,
        (await chat(model="acme/none")).raw,
        (await fetch(session, "GET", f"{sim.base_url}/key")).raw,
        (await fetch(session, "GET", f"{sim.base_url}/auth/key")).raw,
        (await fetch(session, "GET", f"{sim.root_url}/_sim/stats")).raw,
    ]
    generation_id = (await chat(model="openai/gpt-4o-mini", max_tokens=10)).json()["id"]
    generation_url = f"{sim.base_url}/generation?id={generation_id}"
    bodies.append((await fetch(session, "GET", generation_url)).raw)
    sim.add_fault(Fault(kind="server_error", key=TOKEN))
    bodies.append((await chat()).raw)
    bodies.append((await fetch(session, "GET", f"{sim.root_url}/_sim/faults")).raw)
    secret = TOKEN.encode()
    tail = TOKEN[9:].encode()
    for raw in bodies:
        assert secret not in raw
        assert tail not in raw
    assert not re.search(re.escape(TOKEN), repr(sim.stats))
