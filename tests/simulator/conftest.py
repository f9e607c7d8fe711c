"""Fixtures: a simulator with zero latency on loopback, and a client that talks to it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from sim_helpers import TOKEN, Answer, Chat, fetch

from lyra.simulator import Simulator, SimulatorOptions


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(options=SimulatorOptions(time_scale=0)) as simulator:
        yield simulator


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


@pytest.fixture
def chat(sim: Simulator, session: aiohttp.ClientSession) -> Chat:
    """POST /chat/completions with defaults; keyword arguments go into the JSON body."""

    async def post(*, token: str | None = TOKEN, **payload: Any) -> Answer:
        payload.setdefault("model", "openai/gpt-4o")
        payload.setdefault("messages", [{"role": "user", "content": "Say hello."}])
        return await fetch(
            session, "POST", f"{sim.base_url}/chat/completions", token=token, body=payload
        )

    return post
