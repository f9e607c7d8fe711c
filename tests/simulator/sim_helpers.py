"""Helpers shared by the simulator tests: a read-whole HTTP answer, prompts, SSE parsing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

TOKEN = "sk-or-v1-test0123456789abcdef0123456789abcdef"
OTHER_TOKEN = "sk-or-v1-other9876543210fedcba9876543210fedcba"
BULLISH = {"rsi": 35.0, "macd_hist": 0.8, "ret_5": 0.025, "sma_ratio": 0.012, "price": 100.0}


@dataclass
class Answer:
    """One HTTP answer, read whole."""

    status: int
    headers: dict[str, str]
    raw: bytes

    def json(self) -> Any:
        return orjson.loads(self.raw)

    @property
    def text(self) -> str:
        return self.raw.decode()


Chat = Callable[..., Awaitable[Answer]]


def trading_prompt(features: dict[str, float]) -> list[dict[str, str]]:
    block = orjson.dumps({"symbol": "BTC/USDT", "features": features}).decode()
    return [
        {"role": "system", "content": "You are a trading assistant. Answer with JSON."},
        {"role": "user", "content": f"Decide on BTC/USDT.\n```json\n{block}\n```"},
    ]


async def fetch(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    token: str | None = TOKEN,
    body: Any = None,
) -> Answer:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    data = orjson.dumps(body) if body is not None else None
    async with session.request(method, url, data=data, headers=headers) as resp:
        return Answer(resp.status, dict(resp.headers), await resp.read())


def sse_events(text: str) -> tuple[list[str], list[Any], bool]:
    """Comments, parsed data events, and whether the stream ended with [DONE]."""
    comments: list[str] = []
    events: list[Any] = []
    done = False
    for line in text.split("\n"):
        if line.startswith(":"):
            comments.append(line)
        elif line.startswith("data: "):
            data = line[len("data: ") :]
            if data == "[DONE]":
                done = True
            else:
                events.append(orjson.loads(data))
    return comments, events, done
