"""Load on a gateway: chat completions from a pool of concurrent clients, every outcome kept."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from gateway_support import DESK_TOKEN, MESSAGES

MODEL = "openai/gpt-4o-mini"
CLIENT_TIMEOUT_S = 60.0  # generous: a frozen backend must be answered by the gateway, not by us
GONE = 0  # the status of a request whose connection failed (the gateway died or never answered)


@dataclass(frozen=True)
class Outcome:
    """One request's fate: the HTTP status (GONE when the connection failed), body and Retry-After."""

    status: int
    body: dict[str, Any] | None = None
    retry_after: str | None = None
    streamed: bytes = b""

    @property
    def generation_id(self) -> str | None:
        return None if self.body is None else self.body.get("id")


def chat_body(*, max_tokens: int = 100, stream: bool = False, model: str = MODEL) -> bytes:
    return orjson.dumps({"model": model, "messages": MESSAGES, "max_tokens": max_tokens, "stream": stream})


def headers(token: str = DESK_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}


async def post_chat(session: aiohttp.ClientSession, url: str, body: bytes, *, token: str = DESK_TOKEN,
                    stream: bool = False) -> Outcome:
    """POST one chat completion to a gateway's /v1 `url`; a broken connection is Outcome(GONE)."""
    try:
        async with session.post(f"{url}/chat/completions", data=body, headers=headers(token)) as r:
            raw = await r.read()
            retry_after = r.headers.get("Retry-After")
            if stream and r.status == 200:
                return Outcome(r.status, None, retry_after, raw)
            with contextlib.suppress(orjson.JSONDecodeError):
                return Outcome(r.status, orjson.loads(raw), retry_after)
            return Outcome(r.status, None, retry_after)
    except (aiohttp.ClientError, OSError, TimeoutError):
        return Outcome(GONE)


def new_session(timeout_s: float = CLIENT_TIMEOUT_S) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s))


async def fire(urls: Sequence[str], n: int, *, concurrency: int = 16, max_tokens: int = 100,
               stream_every: int = 0, token: str = DESK_TOKEN,
               timeout_s: float = CLIENT_TIMEOUT_S) -> list[Outcome]:
    """`n` requests spread over `urls`, `concurrency` at a time; every `stream_every`-th one streams."""
    jobs = iter(range(n))
    outcomes: list[Outcome] = []
    async with new_session(timeout_s) as session:

        async def client() -> None:
            for i in jobs:
                stream = bool(stream_every) and i % stream_every == 0
                body = chat_body(max_tokens=max_tokens, stream=stream)
                outcomes.append(await post_chat(session, urls[i % len(urls)], body, token=token, stream=stream))

        await asyncio.gather(*(client() for _ in range(concurrency)))
    return outcomes


def statuses(outcomes: Sequence[Outcome]) -> collections.Counter[int]:
    return collections.Counter(o.status for o in outcomes)


def answered_ids(outcomes: Sequence[Outcome]) -> list[str]:
    """Generation ids of the answers clients received (200 with a body)."""
    return [o.generation_id for o in outcomes if o.status == 200 and o.generation_id]


@dataclass
class SteadyTraffic:
    """Clients that keep posting to a gateway until stopped, as a trading desk would.

    Start it with `async with`; `outcomes` grows as answers arrive. The gateway may die under it:
    requests then come back GONE and the clients keep trying (a restarted gateway is not theirs).
    """

    url: str
    concurrency: int = 8
    max_tokens: int = 100
    outcomes: list[Outcome] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)

    async def __aenter__(self) -> SteadyTraffic:
        self._session = new_session()
        self._tasks = [asyncio.create_task(self._client()) for _ in range(self.concurrency)]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stopping.set()
        try:
            await asyncio.gather(*self._tasks)
        finally:
            await self._session.close()

    async def _client(self) -> None:
        body = chat_body(max_tokens=self.max_tokens)
        for _ in itertools.count():
            if self._stopping.is_set():
                return
            outcome = await post_chat(self._session, self.url, body)
            self.outcomes.append(outcome)
            if outcome.status == GONE:
                await asyncio.sleep(0.05)  # a dead gateway: do not spin

    def answered(self) -> int:
        return sum(1 for o in self.outcomes if o.status == 200)

    def count(self, status: int) -> int:
        return sum(1 for o in self.outcomes if o.status == status)
