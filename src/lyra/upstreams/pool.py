"""The configured upstreams: which one serves a model id, with which keys and transport."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from lyra.config import Settings, UpstreamSettings
from lyra.config.upstreams import keyless_key, split_model
from lyra.types import CompletionRequest
from lyra.upstreams.body import openai_body
from lyra.upstreams.transport import UpstreamTransport


@dataclass(frozen=True, slots=True)
class Upstream:
    """One `[upstreams.NAME]` endpoint as the router uses it."""

    name: str
    keys: tuple[str, ...]  # its own keys, or its one pseudo key when its server needs none
    transport: UpstreamTransport
    settings: UpstreamSettings

    def body(self, request: CompletionRequest, *, model_id: str, max_tokens: int, temperature: float | None,
             stream: bool) -> bytes:
        """The plain chat-completions body for `model_id` (the full `NAME:model-id`)."""
        sent = model_id.partition(":")[2]
        return openai_body(request, model=sent, max_tokens=max_tokens, temperature=temperature, stream=stream)


class Upstreams:
    """Every upstream besides OpenRouter; `get(model_id)` is None for OpenRouter's own ids."""

    def __init__(self, upstreams: Mapping[str, UpstreamSettings] | None = None) -> None:
        self._settings = dict(upstreams or {})
        self._by_name = {
            name: Upstream(name, tuple(u.keys) or (keyless_key(name),),
                           UpstreamTransport(name, u.base_url), u)
            for name, u in self._settings.items()}
        self._upstream_keys = frozenset(k for u in self._by_name.values() for k in u.keys)

    @classmethod
    def of(cls, settings: Settings) -> Upstreams:
        return cls(settings.upstreams)

    def __repr__(self) -> str:
        return f"Upstreams({sorted(self._by_name)})"

    def __bool__(self) -> bool:
        return bool(self._by_name)

    def __iter__(self) -> Iterator[Upstream]:
        return iter(self._by_name.values())

    def get(self, model_id: str) -> Upstream | None:
        if not self._by_name:
            return None
        split = split_model(model_id, self._by_name)
        return self._by_name[split[0]] if split is not None else None

    def keyless(self) -> list[str]:
        """The upstreams called with no key."""
        return [name for name, u in self._settings.items() if not u.keys]

    def keys_for(self, model_id: str, allowed: Sequence[str]) -> Sequence[str]:
        """The keys an attempt on `model_id` may use: its upstream's own (those of `allowed` first,
        so that a panel member's key leads), else `allowed` without any upstream's keys."""
        if not self._by_name:
            return allowed
        upstream = self.get(model_id)
        if upstream is None:
            return [k for k in allowed if k not in self._upstream_keys]
        first = [k for k in allowed if k in upstream.keys]
        return [*first, *(k for k in upstream.keys if k not in first)]

    async def close(self) -> None:
        for upstream in self._by_name.values():
            await upstream.transport.close()
