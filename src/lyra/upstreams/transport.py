"""An upstream's transport: OpenRouter's wire code, its answers renamed into Lyra's `NAME:` ids."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable

from lyra.openrouter.transport import OpenRouterTransport
from lyra.openrouter.wire import ChatResult, StreamDelta, Usage
from lyra.redact import mask_url


class UpstreamTransport:
    """Speaks chat completions to one upstream and gives back what the router can book.

    The served model comes back as `NAME:model` (ledger, Completion and metrics keep the full id);
    the answer's id is dropped, so that nothing asks OpenRouter's /generation about it; and a
    `usage.cost` the upstream may report is dropped, so that the cost is always the usage at the
    configured prices (exact, and the same figure the budget reserved against).
    """

    def __init__(self, name: str, base_url: str) -> None:
        self.name = name
        self._prefix = f"{name}:"
        # No app title or URL: OpenRouter's attribution headers are not sent to anyone else.
        self.wire = OpenRouterTransport(base_url=base_url, app_title="", app_url="",
                                        name=f"upstream {name!r}")

    def __repr__(self) -> str:
        return f"UpstreamTransport(name={self.name!r}, base_url={mask_url(self.wire.base_url)!r})"

    async def close(self) -> None:
        await self.wire.close()

    async def chat(self, body: bytes, *, api_key: str, timeout_s: float) -> ChatResult:
        result = await self.wire.chat(body, api_key=api_key, timeout_s=timeout_s)
        return dataclasses.replace(result, id="", model=self._named(result.model),
                                   provider=result.provider or self.name, usage=_uncosted(result.usage))

    async def stream(self, body: bytes, *, api_key: str, timeout_s: float,
                     on_generation_id: Callable[[str], None] | None = None) -> AsyncIterator[StreamDelta]:
        """Stream as OpenRouter's transport does; `on_generation_id` is never called: nothing to reconcile."""
        async for delta in self.wire.stream(body, api_key=api_key, timeout_s=timeout_s):
            delta.id = ""
            delta.model = self._named(delta.model) if delta.model else None
            delta.usage = _uncosted(delta.usage)
            delta.provider = delta.provider or self.name  # a plain server names none
            yield delta

    def _named(self, served: str) -> str:
        return served if served.startswith(self._prefix) else self._prefix + served


def _uncosted(usage: Usage | None) -> Usage | None:
    return None if usage is None else dataclasses.replace(usage, cost_usd=None)
