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
    # OpenAI and OpenRouter fields passed upstream as given (see `ChatRequest` on the wire).
    tools: Sequence[Mapping[str, Any]] | None = None
    tool_choice: str | Mapping[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    n: int = 1  # choices to generate: every one is billed, so the worst case is n times one
    logprobs: bool | None = None
    top_logprobs: int | None = None
    reasoning: Mapping[str, Any] | None = None  # {effort, max_tokens, exclude, enabled}
    service_tier: str | None = None
    session_id: str | None = None
    user: str | None = None  # the caller's end user (OpenAI's `user`), recorded on the ledger rows
    tags: tuple[str, ...] = ()  # "key:value" or plain labels spend is attributed to, on the ledger rows
    models: Sequence[str] | None = None  # candidate model ids in order, instead of `model` alone


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
    tools: Sequence[Mapping[str, Any]] | None
    tool_choice: str | Mapping[str, Any] | None
    parallel_tool_calls: bool | None
    n: int
    logprobs: bool | None
    top_logprobs: int | None
    reasoning: Mapping[str, Any] | None
    service_tier: str | None
    session_id: str | None
    user: str | None
    tags: tuple[str, ...]
    models: Sequence[str] | None


@dataclass(slots=True, kw_only=True)
class Choice:
    """One generated choice: its text and, when asked for, tool calls, log-probabilities, reasoning.

    `tool_calls` and `reasoning_details` are kept in OpenAI's / OpenRouter's own shapes, so that a
    caller can send them back unchanged on the next assistant message.
    """

    index: int = 0
    text: str = ""
    finish_reason: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    logprobs: list[dict[str, Any]] | None = None  # choice.logprobs.content
    reasoning: str | None = None
    reasoning_details: list[dict[str, Any]] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChoiceDelta:
    """One streamed piece of one choice: text, reasoning, tool-call fragments or log-probabilities.

    `tool_calls` are OpenAI's delta entries ({index, id?, type?, function: {name?, arguments}}).
    """

    index: int = 0
    text: str = ""
    reasoning: str = ""
    reasoning_details: tuple[dict[str, Any], ...] = ()
    tool_calls: tuple[dict[str, Any], ...] = ()
    logprobs: tuple[dict[str, Any], ...] = ()
    finish_reason: str | None = None

    @property
    def empty(self) -> bool:
        """Nothing for a caller: no text, reasoning, tool call or logprobs (a finish reason alone)."""
        return not (self.text or self.reasoning or self.reasoning_details or self.tool_calls or self.logprobs)


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
    # "hedge": a second attempt sent because this one's predecessor was slow (lyra.routing.hedge).
    kind: Literal["primary", "hedge"] = "primary"


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
    # Choice 0's parts (also in `choices[0]`), then every choice when n > 1.
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    logprobs: list[dict[str, Any]] | None = None
    reasoning: str | None = None
    reasoning_details: list[dict[str, Any]] | None = None
    reasoning_tokens: int = 0  # billed as output, inside completion_tokens
    service_tier: str | None = None  # the tier that served the call, as the response reports it
    choices: list[Choice] = field(default_factory=list)

    @property
    def cost_usd(self) -> Decimal:
        return nanos_to_usd(self.cost_nanos)

    @property
    def total_cost_nanos(self) -> int:
        """What this request spent: the served attempt plus failed ones that may have been billed."""
        if not self.attempts:
            return self.cost_nanos
        return sum(a.cost_nanos for a in self.attempts)
