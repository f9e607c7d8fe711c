"""OpenRouter chat wire format: request bodies, responses, SSE frames and error bodies."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any

import orjson

from lyra.errors import FailureKind, StreamInterrupted, UpstreamError
from lyra.types import Choice, ChoiceDelta

_RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529})
_TIMEOUT_STATUS = frozenset({408, 504, 524})


@dataclass(slots=True, kw_only=True)
class ChatRequest:
    """One chat completion request as OpenRouter takes it."""

    model: str
    messages: Sequence[Mapping[str, Any]]
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: Sequence[str] | None = None
    response_format: Mapping[str, Any] | None = None
    fallback_models: Sequence[str] = ()
    provider: Mapping[str, Any] | None = None
    user: str | None = None
    stream: bool = False
    tools: Sequence[Mapping[str, Any]] | None = None
    tool_choice: str | Mapping[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    n: int | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    reasoning: Mapping[str, Any] | None = None
    service_tier: str | None = None
    session_id: str | None = None

    def encode(self) -> bytes:
        """The JSON body; optional fields are left out rather than sent as null."""
        body: dict[str, Any] = {"model": self.model, "messages": self.messages}
        if self.fallback_models:
            body["models"] = [self.model, *self.fallback_models]
        for name in ("max_tokens", "temperature", "top_p", "seed", "stop", "response_format",
                     "provider", "user", "tools", "tool_choice", "parallel_tool_calls", "logprobs",
                     "top_logprobs", "reasoning", "service_tier", "session_id"):
            value = getattr(self, name)
            if value is not None:
                body[name] = value
        if self.n is not None and self.n != 1:
            body["n"] = self.n
        # Harmless on today's API and needed by older deployments to return usage.cost.
        body["usage"] = {"include": True}
        if self.stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return orjson.dumps(body)


@dataclass(slots=True, frozen=True)
class Usage:
    """Token counts and the cost OpenRouter billed (None when the body did not say)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cost_usd: Decimal | None = None
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cache_write_tokens: int = 0  # prompt_tokens_details.cache_write_tokens


@dataclass(slots=True)
class ChatResult:
    """A parsed non-streamed completion."""

    id: str
    model: str
    provider: str | None
    text: str
    finish_reason: str | None
    native_finish_reason: str | None = None
    usage: Usage | None = None
    reasoning: str | None = None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    choices: list[Choice] = field(default_factory=list)  # every choice, in index order
    service_tier: str | None = None


@dataclass(slots=True)
class StreamDelta:
    """One streamed chunk reduced to what a caller needs (`text`, `finish_reason`: its first choice's)."""

    id: str
    model: str | None
    provider: str | None
    text: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None
    choices: list[ChoiceDelta] = field(default_factory=list)
    service_tier: str | None = None


def parse_usage(raw: Any) -> Usage | None:
    """Usage from a response or chunk; tolerant of missing and null fields."""
    if not isinstance(raw, Mapping):
        return None
    cost = raw.get("cost")
    prompt_details = raw.get("prompt_tokens_details") or {}
    completion_details = raw.get("completion_tokens_details") or {}
    prompt = _int(raw.get("prompt_tokens"))
    completion = _int(raw.get("completion_tokens"))
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        total_tokens=_int(raw.get("total_tokens")) or prompt + completion,
        cost_usd=Decimal(str(cost)) if isinstance(cost, int | float | str) and cost != "" else None,
        cached_tokens=_int(prompt_details.get("cached_tokens")) if isinstance(prompt_details, Mapping) else 0,
        reasoning_tokens=(
            _int(completion_details.get("reasoning_tokens"))
            if isinstance(completion_details, Mapping) else 0
        ),
        cache_write_tokens=(
            _int(prompt_details.get("cache_write_tokens")) if isinstance(prompt_details, Mapping) else 0
        ),
    )


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) else 0


def decode_chat_response(status: int, headers: Mapping[str, str], body: bytes) -> ChatResult:
    """Parse a non-streamed response, raising UpstreamError for every error form."""
    payload = _load_json(status, headers, body)
    if status >= 400 or ("error" in payload and not payload.get("choices")):
        raise error_from_payload(status, payload, headers)
    choices = payload.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], Mapping):
        raise UpstreamError("response has no choices", status=status, kind=FailureKind.MALFORMED,
                            retryable=True)
    choice = choices[0]
    if isinstance(choice.get("error"), Mapping) or choice.get("finish_reason") == "error":
        raise error_from_payload(200, {"error": choice.get("error") or {}}, headers,
                                 provider=payload.get("provider"))
    parsed = sorted((parse_choice(c, i) for i, c in enumerate(choices) if isinstance(c, Mapping)),
                    key=lambda c: c.index)
    first = parsed[0]
    tier = payload.get("service_tier")
    return ChatResult(
        id=str(payload.get("id") or headers.get("X-Generation-Id") or ""),
        model=str(payload.get("model") or ""),
        provider=payload.get("provider"),
        text=first.text,
        finish_reason=first.finish_reason,
        native_finish_reason=choice.get("native_finish_reason"),
        usage=parse_usage(payload.get("usage")),
        reasoning=first.reasoning,
        tool_calls=first.tool_calls,
        choices=parsed,
        service_tier=tier if isinstance(tier, str) else None,
    )


def parse_choice(raw: Mapping[str, Any], position: int) -> Choice:
    """One choice of a completion. Tool calls are trusted over the finish reason: some providers
    say "stop" beside tool calls (reference section 8), which is reported as "tool_calls"."""
    message = raw.get("message")
    message = message if isinstance(message, Mapping) else {}
    content = message.get("content")
    tool_calls = [dict(c) for c in message.get("tool_calls") or [] if isinstance(c, Mapping)]
    finish = raw.get("finish_reason")
    if tool_calls and finish in (None, "stop"):
        finish = "tool_calls"
    index = raw.get("index")
    reasoning = message.get("reasoning")
    return Choice(
        index=index if isinstance(index, int) and not isinstance(index, bool) else position,
        text=content if isinstance(content, str) else "",
        finish_reason=finish if isinstance(finish, str) else None,
        tool_calls=tool_calls,
        logprobs=_logprobs(raw.get("logprobs")),
        reasoning=reasoning if isinstance(reasoning, str) else None,
        reasoning_details=_dicts(message.get("reasoning_details")),
    )


def _logprobs(raw: Any) -> list[dict[str, Any]] | None:
    """`choice.logprobs.content`: a list of {token, logprob, bytes, top_logprobs}, or None."""
    if not isinstance(raw, Mapping):
        return None
    return _dicts(raw.get("content"))


def _dicts(raw: Any) -> list[dict[str, Any]] | None:
    if not isinstance(raw, list):
        return None
    return [dict(item) for item in raw if isinstance(item, Mapping)]


def _choice_delta(raw: Mapping[str, Any], position: int) -> ChoiceDelta:
    delta = raw.get("delta")
    delta = delta if isinstance(delta, Mapping) else {}
    content, reasoning = delta.get("content"), delta.get("reasoning")
    index = raw.get("index")
    finish = raw.get("finish_reason")
    return ChoiceDelta(
        index=index if isinstance(index, int) and not isinstance(index, bool) else position,
        text=content if isinstance(content, str) else "",
        reasoning=reasoning if isinstance(reasoning, str) else "",
        reasoning_details=tuple(_dicts(delta.get("reasoning_details")) or ()),
        tool_calls=tuple(_dicts(delta.get("tool_calls")) or ()),
        logprobs=tuple(_logprobs(raw.get("logprobs")) or ()),
        finish_reason=finish if isinstance(finish, str) else None,
    )


def _load_json(status: int, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if status >= 400:
            raise _error_for_status(status, body[:200].decode("utf-8", "replace"), headers) from exc
        raise UpstreamError(
            "response body is not JSON", status=status, kind=FailureKind.MALFORMED, retryable=True
        ) from exc
    if not isinstance(payload, dict):
        raise UpstreamError("response body is not a JSON object", status=status, kind=FailureKind.MALFORMED,
                            retryable=True)
    return payload


def error_from_payload(
    status: int,
    payload: Mapping[str, Any],
    headers: Mapping[str, str],
    *,
    provider: str | None = None,
) -> UpstreamError:
    """An UpstreamError from an OpenRouter error body (HTTP error or error inside a 200)."""
    error = payload.get("error")
    if not isinstance(error, Mapping):
        error = {"message": str(error) if error else "unknown error"}
    code = error.get("code")
    metadata = error.get("metadata") if isinstance(error.get("metadata"), Mapping) else {}
    assert isinstance(metadata, Mapping)
    message = str(error.get("message") or "unknown error")
    raw = metadata.get("raw")
    if raw and message == "Provider returned error":
        message = f"{message}: {_raw_text(raw)}"
    inner = code if isinstance(code, int) else 0
    effective = status if status >= 400 else (inner if inner >= 400 else 0)
    err = _error_for_status(effective, message, headers, in_200=status < 400)
    err.code = code
    err.error_type = metadata.get("error_type") if isinstance(metadata.get("error_type"), str) else None
    err.provider = provider or _str_or_none(metadata.get("provider_name"))
    err.provider_code = _str_or_none(metadata.get("provider_code"))
    _apply_budget(err, effective, message, metadata)
    if err.kind not in _KEY_KINDS:
        _apply_availability(err, error.get("availability"))
    echoed = metadata.get("headers")
    if isinstance(echoed, Mapping) and err.rate_limit_reset is None:
        err.rate_limit_reset = _reset_epoch_s(echoed.get("X-RateLimit-Reset"))
    if "free-models-per-day" in message:
        err.kind, err.retryable = FailureKind.RATE_LIMIT_DAILY, False
    return err


# Failures about the key or the account: an availability block never turns them into a model's fault.
_KEY_KINDS = frozenset({
    FailureKind.AUTH, FailureKind.KEY_LIMIT, FailureKind.PAYMENT, FailureKind.IN_FLIGHT_BUDGET,
    FailureKind.WEIGHT_EXCEEDS_BUDGET, FailureKind.GUARDRAIL_BUDGET, FailureKind.WORKSPACE_BUDGET,
})
# Availability codes that mean the model cannot serve, when the body does not say `retryable`.
_GONE_CODES = frozenset({"model_not_found", "model_deprecated", "no_endpoints", "free_variant_ended",
                         "constraint_filtered", "wrong_endpoint", "privacy_restricted", "region_restricted"})
_PERIOD = re.compile(r"\b(daily|weekly|monthly|total|lifetime) (?:limit|budget)\b", re.IGNORECASE)


def _apply_budget(err: UpstreamError, status: int, message: str, metadata: Mapping[str, Any]) -> None:
    """OpenRouter's budgets (limits page): which one refused, its period, its reset, and the kind.

    402 `reason` in_flight_budget_exhausted (retry after Retry-After) or weight_exceeds_budget (this
    request alone is too big); 403 `limit_source` openrouter_key_limit, openrouter_guardrail_budget or
    openrouter_workspace_budget, with `resets_at`. Values Lyra does not know leave the kind as it was.
    """
    source = _str_or_none(metadata.get("limit_source"))
    reason = metadata.get("reason")
    err.limit_source = source
    err.resets_at = _epoch_s(metadata.get("resets_at"))
    found = _PERIOD.search(message)
    err.limit_period = found.group(1).lower() if found else None
    lowered = message.lower()
    if status == 402:
        if reason == "in_flight_budget_exhausted" or source == "openrouter_in_flight_budget":
            err.kind, err.retryable = FailureKind.IN_FLIGHT_BUDGET, True
        elif reason == "weight_exceeds_budget":
            err.kind, err.retryable = FailureKind.WEIGHT_EXCEEDS_BUDGET, False
        elif source == "openrouter_key_limit":
            err.kind, err.retryable = FailureKind.KEY_LIMIT, False
    elif status == 403:
        if source == "openrouter_workspace_budget" or (
                source is None and "workspace" in lowered and "budget" in lowered):
            err.kind, err.retryable = FailureKind.WORKSPACE_BUDGET, False
        elif source == "openrouter_guardrail_budget":
            err.kind, err.retryable = FailureKind.GUARDRAIL_BUDGET, False
        elif source == "openrouter_key_limit":
            err.kind, err.retryable = FailureKind.KEY_LIMIT, False


def _apply_availability(err: UpstreamError, availability: Any) -> None:
    """`error.availability`: honour `retryable` and `retry_after`, keep `code` and `fallback_models`.

    `retryable: false` means this model will not serve (the router moves on); `true` makes an error
    that would otherwise be final retryable. A code Lyra does not know is kept, never refused.
    """
    if not isinstance(availability, Mapping):
        return
    code = _str_or_none(availability.get("code"))
    err.availability_code = code
    fallbacks = availability.get("fallback_models")
    if isinstance(fallbacks, list):
        err.fallback_models = tuple(m for m in fallbacks if isinstance(m, str) and m)
    wait = availability.get("retry_after")
    if err.retry_after is None and isinstance(wait, int | float) and not isinstance(wait, bool) and wait >= 0:
        err.retry_after = float(wait)
    retryable = availability.get("retryable")
    if retryable is False or (retryable is not True and code in _GONE_CODES):
        err.kind, err.retryable = FailureKind.MODEL_UNAVAILABLE, False
    elif retryable is True:
        err.retryable = True
        if err.kind in (FailureKind.MODEL_UNAVAILABLE, FailureKind.BAD_REQUEST, FailureKind.MODERATION):
            err.kind = FailureKind.SERVER


def _epoch_s(value: Any) -> float | None:
    """`resets_at` as epoch seconds: an ISO 8601 time, or a number of seconds or milliseconds."""
    if isinstance(value, str) and value:
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return _reset_epoch_s(value)
    return None


def _error_for_status(
    status: int, message: str, headers: Mapping[str, str], *, in_200: bool = False
) -> UpstreamError:
    retry_after = retry_after_seconds(headers)
    reset = _reset_epoch_s(headers.get("X-RateLimit-Reset"))
    kind, retryable = _classify(status, message)
    if in_200 and status == 0:
        kind, retryable = FailureKind.SERVER, True
    text = f"OpenRouter {status or 'error in 200 body'}: {message}"
    return UpstreamError(text, status=status or 200, kind=kind, retry_after=retry_after,
                         retryable=retryable, rate_limit_reset=reset)


def _classify(status: int, message: str) -> tuple[FailureKind, bool]:
    lowered = message.lower()
    if status == 401:
        return FailureKind.AUTH, False
    if status == 402:
        return FailureKind.PAYMENT, False
    if status == 403:
        return (FailureKind.KEY_LIMIT, False) if "key limit" in lowered else (FailureKind.MODERATION, False)
    if status == 429:
        return FailureKind.RATE_LIMIT, True
    if status in _TIMEOUT_STATUS:
        return FailureKind.TIMEOUT, True
    if status in (404,) or "not a valid model id" in lowered or "no endpoints found" in lowered:
        return FailureKind.MODEL_UNAVAILABLE, False
    if status in _RETRYABLE_STATUS or status >= 500:
        return FailureKind.SERVER, True
    return FailureKind.BAD_REQUEST, False


def _raw_text(raw: Any) -> str:
    if isinstance(raw, str):
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return raw[:300]
        raw = parsed
    if isinstance(raw, Mapping):
        inner = raw.get("error")
        if isinstance(inner, Mapping) and inner.get("message"):
            return str(inner["message"])[:300]
        return orjson.dumps(raw).decode()[:300]
    return str(raw)[:300]


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def retry_after_seconds(headers: Mapping[str, str]) -> float | None:
    """Seconds from a Retry-After header, as a number or an HTTP date."""
    value = headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _reset_epoch_s(value: Any) -> float | None:
    """X-RateLimit-Reset as epoch seconds; OpenRouter sends epoch milliseconds."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number / 1000.0 if number > 1e11 else number


class SSEDecoder:
    """Incremental server-sent-events decoder: bytes in, `data:` payloads out; comments skipped."""

    __slots__ = ("_buffer", "_data")

    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[str]:
        """Return the payload of every event completed by this chunk."""
        self._buffer += chunk
        events: list[str] = []
        while True:
            newline = self._buffer.find(b"\n")
            if newline < 0:
                return events
            line = self._buffer[:newline].rstrip(b"\r").decode("utf-8")
            self._buffer = self._buffer[newline + 1:]
            if not line:
                if self._data:
                    events.append("\n".join(self._data))
                    self._data = []
            elif line.startswith(":"):
                continue  # keep-alive comment such as ": OPENROUTER PROCESSING"
            elif line.startswith("data:"):
                self._data.append(line[5:].removeprefix(" "))

    def flush(self) -> list[str]:
        """Events left when the stream closed without a final blank line."""
        tail = self.feed(b"\n\n") if self._buffer or self._data else []
        return tail


def decode_chunk(data: str) -> StreamDelta | None:
    """One SSE payload -> StreamDelta; None for [DONE]; raises for error events."""
    if data == "[DONE]":
        return None
    try:
        payload = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise StreamInterrupted("stream chunk is not JSON", kind=FailureKind.MALFORMED,
                                retryable=True) from exc
    if not isinstance(payload, dict):
        raise StreamInterrupted("stream chunk is not an object", kind=FailureKind.MALFORMED, retryable=True)
    choices = payload.get("choices") or []
    choice = choices[0] if choices and isinstance(choices[0], Mapping) else {}
    finish = choice.get("finish_reason")
    if "error" in payload or finish == "error" or isinstance(choice.get("error"), Mapping):
        source = payload if "error" in payload else {"error": choice.get("error") or {}}
        err = error_from_payload(200, source, {}, provider=payload.get("provider"))
        raise StreamInterrupted(str(err), status=err.status, kind=err.kind, code=err.code,
                                error_type=err.error_type, provider=err.provider,
                                retryable=err.retryable, retry_after=err.retry_after,
                                availability_code=err.availability_code, fallback_models=err.fallback_models,
                                provider_code=err.provider_code)
    delta = choice.get("delta") or {}
    content = delta.get("content") if isinstance(delta, Mapping) else None
    tier = payload.get("service_tier")
    return StreamDelta(
        id=str(payload.get("id") or ""),
        model=payload.get("model"),
        provider=payload.get("provider"),
        text=content if isinstance(content, str) else "",
        finish_reason=finish,
        usage=parse_usage(payload.get("usage")),
        choices=[_choice_delta(c, i) for i, c in enumerate(choices) if isinstance(c, Mapping)],
        service_tier=tier if isinstance(tier, str) else None,
    )
