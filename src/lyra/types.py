"""The values that travel through the engine: requests, attempts and completions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, TypedDict

from lyra.money import nanos_to_usd

Message = Mapping[str, Any]
CacheMode = Literal["use", "bypass", "refresh"]


@dataclass(slots=True)
class SpendTally:
    """What one request booked over all its attempts, served, failed or cancelled (nano-dollars).

    A caller that may cancel the request (a consensus panel's early exit) reads it afterwards: a
    cancelled call raises instead of returning a Completion, but its booked worst case is money.
    """

    nanos: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class CompletionRequest:
    """What a caller asked for, as typed options with a trader's defaults."""

    messages: Sequence[Message]
    task: str | None = None
    model: str | None = None
    tier: str | None = None
    key: str | None = None  # a key name to try first (a panel member's own key)
    max_tokens: int | None = None
    temperature: float | None = None
    response_format: Mapping[str, Any] | None = None
    provider: Mapping[str, Any] | None = None
    seed: int | None = None
    deadline_s: float | None = None
    cache: CacheMode = "use"
    priority: Literal["normal", "high", "emergency"] = "normal"
    client: str | None = None
    spend: SpendTally | None = field(default=None, compare=False)  # every attempt's booked cost adds here
    user: str | None = None  # the caller's end user (OpenAI's `user`), recorded on the ledger rows
    tags: tuple[str, ...] = ()  # "key:value" or plain labels spend is attributed to, on the ledger rows


class RequestOptions(TypedDict, total=False):
    """A completion's options as keywords: what `Lyra.complete` and `Lyra.stream` both accept."""

    task: str | None
    model: str | None
    tier: str | None
    max_tokens: int | None
    temperature: float | None
    response_format: Mapping[str, Any] | None
    provider: Mapping[str, Any] | None
    seed: int | None
    deadline_s: float | None
    cache: CacheMode
    priority: Literal["normal", "high", "emergency"]
    client: str | None
    user: str | None
    tags: tuple[str, ...]


@dataclass(slots=True, kw_only=True)
class Attempt:
    """One try at one model with one key, whatever came of it."""

    number: int
    model: str
    key_name: str | None
    outcome: Literal["ok", "error", "skipped"]
    error_kind: str | None = None
    status: int | None = None
    message: str = ""
    provider: str | None = None
    latency_s: float = 0.0
    cost_nanos: int = 0
    cost_estimated: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    generation_id: str | None = None
    retry_after_s: float | None = None


@dataclass(slots=True, kw_only=True)
class Completion:
    """The answer to one routed request, with everything needed to audit it."""

    text: str
    model: str
    requested_model: str
    provider: str | None
    key_name: str | None
    tier: str | None
    task: str | None
    cost_nanos: int
    cost_estimated: bool
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    finish_reason: str | None = None
    generation_id: str | None = None
    cached: bool = False
    attempts: list[Attempt] = field(default_factory=list)
    # What was sent: the exact model, the tier's provider preferences and service tier, a fingerprint.
    profile: dict[str, Any] | None = None

    @property
    def cost_usd(self) -> Decimal:
        return nanos_to_usd(self.cost_nanos)

    @property
    def total_cost_nanos(self) -> int:
        """What this request spent: the served attempt plus failed ones that may have been billed."""
        if not self.attempts:
            return self.cost_nanos
        return sum(a.cost_nanos for a in self.attempts)
