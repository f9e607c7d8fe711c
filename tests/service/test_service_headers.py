"""The gateway's answer headers over loopback: OpenAI's x-ratelimit-* from the client's own limit,
and what a request cost (x-lyra-cost-usd, exact, as the ledger has it) and left of the day's budget.

The limit tests freeze the rate limiter's clock, so that no refill happens between two requests
however slow the machine is: each request then takes exactly one token.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import aiohttp
import openai
import orjson
import pytest
from gateway_support import DESK_TOKEN, MESSAGES, SLOW_TOKEN, gateway_config_text, running
from quant_support import QUANT_TOKEN, quant_gateway
from starlette.applications import Starlette

from lyra import Lyra
from lyra.ledger import LedgerRow
from lyra.money import nanos_to_usd
from lyra.service import create_app
from lyra.service.gateway import Gateway
from lyra.service.ratelimit import ClientRateLimit, go_duration
from lyra.simulator import Simulator
from lyra.state import MemoryBackend
from support import engine_env

DESK_DAILY = Decimal(5)  # gateway_config_text's desk_usd


@contextlib.asynccontextmanager
async def serving(sim: Simulator, tmp_path: Path, *, frozen: bool) -> AsyncIterator[tuple[str, Gateway]]:
    """A gateway in front of `sim`; with `frozen`, its client limits on a state whose clock stands still."""
    path = tmp_path / "lyra.toml"
    path.write_text(gateway_config_text())
    environ = engine_env(sim) | {"LYRA_LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.db'}"}
    app: Starlette = create_app(Lyra.from_config(path, environ=environ))
    async with running(app) as url:
        gateway: Gateway = app.state.gateway
        if frozen:
            gateway.limiter = ClientRateLimit(MemoryBackend(clock=lambda: 1_000_000.0))
        yield url, gateway


def client(url: str, token: str = DESK_TOKEN) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key=token, base_url=url, max_retries=0)


def request_rows(gateway: Gateway, user: str) -> list[LedgerRow]:
    ledger = gateway.lyra.ledger
    assert ledger is not None
    ledger.flush()
    return [row for row in ledger.rows(since_ts=0, kind=None, limit=None) if row.end_user == user]


def test_durations_are_written_as_openai_writes_them() -> None:
    assert [go_duration(s) for s in (0, 0.02, 0.1, 1, 1.5, 60, 360, 3661.25)] == [
        "0s", "20ms", "100ms", "1s", "1.5s", "1m0s", "6m0s", "1h1m1.25s"]


async def test_remaining_requests_fall_by_exactly_one_per_request(sim: Simulator, tmp_path: Path) -> None:
    async with serving(sim, tmp_path, frozen=True) as (url, _), client(url) as desk:
        seen = []
        for _ in range(3):
            raw = await desk.chat.completions.with_raw_response.create(
                model="tier:fast", messages=MESSAGES, max_tokens=16)
            raw.parse()
            seen.append((raw.headers["x-ratelimit-limit-requests"], raw.headers["x-ratelimit-remaining-requests"],
                         raw.headers["x-ratelimit-reset-requests"]))
        # desk: 600 a minute, 10 a second back: after k requests, k tenths of a second to full.
        assert seen == [("600", "599", "100ms"), ("600", "598", "200ms"), ("600", "597", "300ms")]
        models = await desk.models.with_raw_response.list()  # every authenticated answer counts and says so
        assert models.headers["x-ratelimit-remaining-requests"] == "596"


async def test_a_429_carries_retry_after_and_nothing_remaining(sim: Simulator, tmp_path: Path) -> None:
    async with serving(sim, tmp_path, frozen=True) as (url, _), client(url, SLOW_TOKEN) as slow:
        remaining = []
        for _ in range(2):  # slow: 2 a minute
            raw = await slow.chat.completions.with_raw_response.create(
                model="tier:fast", messages=MESSAGES, max_tokens=16)
            remaining.append(raw.headers["x-ratelimit-remaining-requests"])
        assert remaining == ["1", "0"]
        with pytest.raises(openai.RateLimitError) as caught:
            await slow.chat.completions.create(model="tier:fast", messages=MESSAGES, max_tokens=16)
        headers = caught.value.response.headers
        assert headers["retry-after"] == "30"  # one token back at 2 a minute
        assert headers["x-ratelimit-remaining-requests"] == "0"
        assert headers["x-ratelimit-limit-requests"] == "2"
        assert headers["x-ratelimit-reset-requests"] == "1m0s"


async def test_the_real_state_counts_the_limit_too(sim: Simulator, tmp_path: Path) -> None:
    async with serving(sim, tmp_path, frozen=False) as (url, _), client(url, SLOW_TOKEN) as slow:
        first = await slow.chat.completions.with_raw_response.create(
            model="tier:fast", messages=MESSAGES, max_tokens=16)
        assert first.headers["x-ratelimit-remaining-requests"] == "1"
        await slow.chat.completions.create(model="tier:fast", messages=MESSAGES, max_tokens=16)
        with pytest.raises(openai.RateLimitError) as caught:
            await slow.chat.completions.create(model="tier:fast", messages=MESSAGES, max_tokens=16)
        assert caught.value.response.headers["x-ratelimit-remaining-requests"] == "0"
        assert int(caught.value.response.headers["retry-after"]) >= 1


async def test_an_unauthenticated_request_has_no_limit_headers(sim: Simulator, tmp_path: Path) -> None:
    async with serving(sim, tmp_path, frozen=True) as (url, _), client(url, "lyra-nobody") as nobody:
        with pytest.raises(openai.AuthenticationError) as caught:
            await nobody.chat.completions.create(model="tier:fast", messages=MESSAGES, max_tokens=16)
        assert not any(name.startswith("x-ratelimit") for name in caught.value.response.headers)


async def test_the_cost_header_is_the_ledgers_cost_exactly(sim: Simulator, tmp_path: Path) -> None:
    async with serving(sim, tmp_path, frozen=True) as (url, gateway), client(url) as desk:
        costs = []
        for n in range(2):
            raw = await desk.chat.completions.with_raw_response.create(
                model="tier:fast", messages=MESSAGES, max_tokens=32, user=f"trader-{n}")
            reply = raw.parse()
            cost = Decimal(raw.headers["x-lyra-cost-usd"])
            attempts = [row for row in request_rows(gateway, f"trader-{n}") if row.kind == "attempt"]
            assert attempts and cost == nanos_to_usd(sum(row.cost_nanos for row in attempts)) > 0
            assert raw.headers["x-lyra-model"] == reply.model
            costs.append(cost)
            # desk is the only client that spent today: its cap less what it spent so far.
            assert Decimal(raw.headers["x-lyra-budget-remaining-usd"]) == DESK_DAILY - sum(costs)
        assert "x-lyra-cost-usd" not in (await desk.models.with_raw_response.list()).headers


async def test_a_stream_names_its_model_up_front_and_its_cost_in_the_last_chunk(
        sim: Simulator, tmp_path: Path) -> None:
    async with serving(sim, tmp_path, frozen=True) as (url, gateway), aiohttp.ClientSession() as session:
        body = {"model": "tier:fast", "messages": MESSAGES, "max_tokens": 48, "stream": True, "user": "streamer"}
        async with session.post(f"{url}/chat/completions", json=body,
                                headers={"Authorization": f"Bearer {DESK_TOKEN}"}) as response:
            assert response.status == 200
            headers = response.headers
            events = [line.removeprefix(b"data: ") async for line in response.content if line.startswith(b"data: ")]
        assert headers["x-ratelimit-remaining-requests"] == "599"
        assert "x-lyra-cost-usd" not in headers  # sent before the cost was known
        chunks = [orjson.loads(event) for event in events if event.strip() != b"[DONE]"]
        assert headers["x-lyra-model"] == chunks[-1]["model"]
        cost = chunks[-1]["usage"]["cost"]  # a JSON number: read it as the decimal it is written as
        found = re.search(rb'"cost":([-0-9.eE+]+)', events[-2])
        assert found is not None, events[-2]
        written = Decimal(found.group(1).decode())
        assert written == Decimal(str(cost))
        attempts = [row for row in request_rows(gateway, "streamer") if row.kind == "attempt"]
        assert written == nanos_to_usd(sum(row.cost_nanos for row in attempts)) > 0


async def test_a_cached_answer_costs_nothing_and_says_so(sim: Simulator, tmp_path: Path) -> None:
    async with serving(sim, tmp_path, frozen=True) as (url, gateway), client(url) as desk:
        seen = []
        for user in ("first", "again"):  # market_analysis answers from the cache for a while
            raw = await desk.chat.completions.with_raw_response.create(
                model="task:market_analysis", messages=MESSAGES, max_tokens=32, user=user)
            seen.append((raw.headers["cache-status"], Decimal(raw.headers["x-lyra-cost-usd"]),
                         Decimal(raw.headers["x-lyra-budget-remaining-usd"])))
        [(_, paid, left), hit] = seen
        assert paid > 0 and left == DESK_DAILY - paid
        assert hit == ("lyra; hit", Decimal(0), left)
        [row] = request_rows(gateway, "again")  # the hit's one request row, attributed, billed nothing
        assert (row.kind, row.cached, row.cost_nanos) == ("request", True, 0)


@pytest.mark.parametrize(("path", "body"), [
    ("/consensus", {"messages": MESSAGES, "panel": "quick", "cascade": False}),
    ("/decide", {"sample": "GOOGL", "proposed_notional": 5000}),
])
async def test_a_consensus_and_a_decision_say_what_they_spent(
        sim: Simulator, tmp_path: Path, path: str, body: dict[str, object]) -> None:
    auth = {"Authorization": f"Bearer {QUANT_TOKEN}"}
    async with quant_gateway(sim, tmp_path) as url, aiohttp.ClientSession() as session:
        async with session.post(url + path, json=body, headers=auth) as r:
            assert r.status == 200, await r.text()
            headers, answer = r.headers, json.loads(await r.text(), parse_float=Decimal)  # money read exactly
        async with session.get(f"{url}/budget", headers=auth) as r:
            budget = await r.read()
    spent = Decimal(headers["x-lyra-cost-usd"])
    assert spent == answer["cost_usd"] > 0
    if "cost_nanos" in answer:
        assert spent == nanos_to_usd(answer["cost_nanos"])
    # The cap as GET /v1/budget reads it (a JSON number, read as the decimal it is written as).
    remaining = Decimal(budget.split(b'"remaining":')[1].split(b"}")[0].decode())
    assert Decimal(headers["x-lyra-budget-remaining-usd"]) == remaining
    assert headers["x-ratelimit-limit-requests"] == "600" and headers["x-ratelimit-remaining-requests"]
