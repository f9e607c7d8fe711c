"""Each client's requests per minute, as a token bucket in the engine's state backend.

The bucket lives where budgets live (memory, SQLite or Redis), so several gateway processes
sharing Redis hold one limit between them. The one take that admits a request also reads the
bucket's level, so every answer can carry OpenAI's `x-ratelimit-*` headers without a second
round trip to the state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lyra.service.auth import Client
from lyra.service.errors import ApiError
from lyra.state.base import StateBackend

# Where `Gateway.admit` leaves a request's quota (in the ASGI scope's state) for RateLimitHeaders.
QUOTA_STATE = "rate_limit"


@dataclass(frozen=True, slots=True)
class ClientQuota:
    """A client's requests-per-minute bucket right after this request's take.

    `remaining` is the whole requests left now; `reset_s` the seconds until the bucket is full
    again (OpenAI's "time until the rate limit resets to its initial state"); `wait` is 0.0 when
    the request was admitted, else the seconds before one more request fits.
    """

    limit: int
    remaining: int
    reset_s: float
    wait: float

    @property
    def admitted(self) -> bool:
        return self.wait <= 0

    def headers(self) -> list[tuple[bytes, bytes]]:
        """OpenAI's request rate-limit headers (there is no client token limit, so no tokens pair)."""
        return [(b"x-ratelimit-limit-requests", str(self.limit).encode()),
                (b"x-ratelimit-remaining-requests", str(self.remaining).encode()),
                (b"x-ratelimit-reset-requests", go_duration(self.reset_s).encode())]


class ClientRateLimit:
    """Takes one request from a client's bucket and says what is left; refusing is the caller's part."""

    def __init__(self, backend: StateBackend) -> None:
        self._backend = backend

    async def take(self, client: Client) -> ClientQuota:
        rpm = client.settings.requests_per_min
        refill = rpm / 60
        level = await self._backend.take_level(f"rpm:client:{client.name}", rpm, refill, 1)
        tokens = min(float(rpm), max(0.0, level.tokens))
        return ClientQuota(limit=rpm, remaining=math.floor(tokens), reset_s=(rpm - tokens) / refill,
                           wait=level.wait)


def over_limit(client: Client, quota: ClientQuota) -> ApiError:
    """The 429 for a request the client's bucket refused, with the wait as Retry-After."""
    return ApiError(
        429, f"client {client.name!r} is over its limit of {quota.limit} requests per minute; "
        f"retry in {quota.wait:.1f}s", type="rate_limit_error", code="rate_limit_exceeded",
        retry_after=quota.wait)


def go_duration(seconds: float) -> str:
    """A duration as OpenAI writes its reset headers (Go's format, to the millisecond): 20ms, 1s, 6m0s."""
    millis = max(0, math.ceil(seconds * 1000 - 1e-6))
    if millis == 0:
        return "0s"
    if millis < 1000:
        return f"{millis}ms"
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    whole, frac = divmod(rest, 1000)
    secs = f"{whole}.{frac:03d}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{secs}"
    return f"{minutes}m{secs}" if minutes else secs


class RateLimitHeaders:
    """Adds the client's `x-ratelimit-*` headers to every answer of a request that reached its limiter:
    served, refused with 429, or failed later (the request counted either way)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def quota_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                state: dict[str, Any] = scope.get("state") or {}
                quota = state.get(QUOTA_STATE)
                if isinstance(quota, ClientQuota):
                    message = {**message, "headers": [*message.get("headers", ()), *quota.headers()]}
            await send(message)

        await self.app(scope, receive, quota_send)
