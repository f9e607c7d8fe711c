"""Each client's requests per minute, as a token bucket in the engine's state backend.

The bucket lives where budgets live (memory, SQLite or Redis), so several gateway processes
sharing Redis hold one limit between them.
"""

from __future__ import annotations

from lyra.service.auth import Client
from lyra.service.errors import ApiError
from lyra.state.base import StateBackend


class ClientRateLimit:
    """Admits a client's request or answers 429 with the wait before the next one fits."""

    def __init__(self, backend: StateBackend) -> None:
        self._backend = backend

    async def admit(self, client: Client) -> None:
        rpm = client.settings.requests_per_min
        wait = await self._backend.take(f"rpm:client:{client.name}", rpm, rpm / 60, 1)
        if wait > 0:
            raise ApiError(
                429, f"client {client.name!r} is over its limit of {rpm} requests per minute; "
                f"retry in {wait:.1f}s", type="rate_limit_error", code="rate_limit_exceeded",
                retry_after=wait)
