"""OpenRouter chat wire format: request bodies, responses, SSE frames and error bodies."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any

import orjson

from lyra.errors import FailureKind, StreamInterrupted, UpstreamError

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

    def encode(self) -> bytes:
        """The JSON body; optional fields are left out rather than sent as null."""
        body: dict[str, Any] = {"model": self.model, "messages": self.messages}
        if self.fallback_models:
            body["models"] = [self.model, *self.fallback_models]
        for name in ("max_tokens", "temperature", "top_p", "seed", "stop", "response_format",
                     "provider", "user"):
            value = getattr(self, name)
            if value is not None:
                body[name] = value
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


@dataclass(slots=True)
class StreamDelta:
    """One streamed chunk reduced to what a caller needs."""

    id: str
    model: str | None
    provider: str | None
    text: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None


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
    message = choice.get("message") or {}
    content = message.get("content")
    return ChatResult(
        id=str(payload.get("id") or headers.get("X-Generation-Id") or ""),
        model=str(payload.get("model") or ""),
        provider=payload.get("provider"),
        text=content if isinstance(content, str) else "",
        finish_reason=choice.get("finish_reason"),
        native_finish_reason=choice.get("native_finish_reason"),
        usage=parse_usage(payload.get("usage")),
        reasoning=message.get("reasoning"),
        tool_calls=list(message.get("tool_calls") or []),
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
    availability = error.get("availability")
    if isinstance(availability, Mapping):
        if err.retry_after is None and isinstance(availability.get("retry_after"), int | float):
            err.retry_after = float(availability["retry_after"])
        if availability.get("code") in {"model_not_found", "model_deprecated", "no_endpoints",
                                        "free_variant_ended", "constraint_filtered"}:
            err.kind, err.retryable = FailureKind.MODEL_UNAVAILABLE, False
    echoed = metadata.get("headers")
    if isinstance(echoed, Mapping) and err.rate_limit_reset is None:
        err.rate_limit_reset = _reset_epoch_s(echoed.get("X-RateLimit-Reset"))
    if "free-models-per-day" in message:
        err.kind, err.retryable = FailureKind.RATE_LIMIT_DAILY, False
    return err


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
                                retryable=err.retryable, retry_after=err.retry_after)
    delta = choice.get("delta") or {}
    content = delta.get("content") if isinstance(delta, Mapping) else None
    return StreamDelta(
        id=str(payload.get("id") or ""),
        model=payload.get("model"),
        provider=payload.get("provider"),
        text=content if isinstance(content, str) else "",
        finish_reason=finish,
        usage=parse_usage(payload.get("usage")),
    )
