"""OpenRouter's error payloads, with the statuses, messages and headers the live service uses."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

USER_ID = "user_sim"
_DOCS_URL = "https://openrouter.ai/docs/api-reference/errors-and-debugging"
_UPSTREAM_BODY = {
    "error": {
        "message": "upstream connect error or disconnect/reset before headers",
        "type": "server_error",
        "code": 502,
    }
}


@dataclass(frozen=True, slots=True)
class SimError:
    """An error answer: HTTP status, JSON body, extra headers, and whether `models` falls back."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    fallback: bool = False


def error_body(
    code: int | str, message: str, metadata: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    """`{"error": {code, message, metadata, ...}, "user_id": ...}`."""
    error: dict[str, Any] = {"code": code, "message": message, "metadata": metadata or {}}
    error.update(extra)
    return {"error": error, "user_id": USER_ID}


def simple(status: int, message: str, error_type: str, **metadata: Any) -> SimError:
    return SimError(status, error_body(status, message, {"error_type": error_type, **metadata}))


def no_credentials() -> SimError:
    return simple(401, "No auth credentials found", "authentication")


def user_not_found() -> SimError:
    return simple(401, "User not found.", "authentication")


def bad_request(message: str) -> SimError:
    return simple(400, message, "invalid_request")


def unknown_model(model_id: str) -> SimError:
    availability = {
        "code": "model_not_found",
        "retryable": False,
        "requested_models": [model_id],
        "docs_url": _DOCS_URL,
    }
    body = error_body(
        400,
        f"{model_id} is not a valid model ID",
        {"error_type": "invalid_request"},
        availability=availability,
    )
    return SimError(400, body, fallback=True)


def retired_model(model_id: str, successor: str | None) -> SimError:
    availability: dict[str, Any] = {
        "code": "model_deprecated",
        "retryable": False,
        "requested_models": [model_id],
        "docs_url": _DOCS_URL,
    }
    message = f"{model_id} has been deprecated and is no longer available."
    if successor:
        availability["fallback_models"] = [successor]
        message += f" Try {successor} instead."
    body = error_body(404, message, {"error_type": "not_found"}, availability=availability)
    return SimError(404, body, fallback=True)


def context_exceeded(context: int, prompt_tokens: int, max_tokens: int) -> SimError:
    message = (
        f"This endpoint's maximum context length is {context} tokens. However, you requested "
        f"about {prompt_tokens + max_tokens} tokens ({prompt_tokens} of text input, "
        f"{max_tokens} in the output). Please reduce the length of either one, or use the "
        '"middle-out" transform to compress your prompt automatically.'
    )
    body = error_body(400, message, {"error_type": "context_length_exceeded"})
    return SimError(400, body, fallback=True)


def payment_required(requested: int, affordable: int) -> SimError:
    message = (
        "This request requires more credits, or fewer max_tokens. "
        f"You requested up to {requested} tokens, but can only afford {affordable}. "
        "To increase, visit https://openrouter.ai/settings/credits and upgrade to a paid account"
    )
    return SimError(402, error_body(402, message, {"provider_name": None}))


def key_limit() -> SimError:
    message = (
        "Key limit exceeded (daily limit). Manage it using https://openrouter.ai/settings/keys"
    )
    return simple(403, message, "permission_denied")


def _limit_headers(limit: int, reset_ms: int) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset": str(reset_ms),
    }


def free_per_min(reset_ms: int) -> SimError:
    headers = _limit_headers(20, reset_ms)
    body = error_body(429, "Rate limit exceeded: free-models-per-min.", {"headers": headers})
    return SimError(429, body, headers)


def free_per_day() -> SimError:
    tomorrow = datetime.now(UTC).date() + timedelta(days=1)
    reset = datetime(tomorrow.year, tomorrow.month, tomorrow.day, tzinfo=UTC)
    headers = _limit_headers(50, int(reset.timestamp() * 1000))
    message = (
        "Rate limit exceeded: free-models-per-day. "
        "Add 10 credits to unlock 1000 free model requests per day"
    )
    return SimError(429, error_body(429, message, {"headers": headers}), headers)


def format_retry_after(seconds: float) -> str:
    """Seconds as Retry-After carries them: an integer when whole, else a short decimal."""
    if seconds == int(seconds):
        return str(int(seconds))
    return f"{seconds:.3f}".rstrip("0")


def rate_limited(model_id: str, provider: str, retry_after_s: float | None) -> SimError:
    wait = 1.0 if retry_after_s is None else retry_after_s
    reset_ms = int((time.time() + wait) * 1000)
    headers = {**_limit_headers(20, reset_ms), "Retry-After": format_retry_after(wait)}
    message = (
        f"{model_id} is temporarily rate-limited upstream. Please retry shortly, or add your "
        "own key to accumulate your rate limits: https://openrouter.ai/settings/integrations"
    )
    metadata = {
        "error_type": "rate_limit_exceeded",
        "provider_name": provider,
        "headers": {k: v for k, v in headers.items() if k != "Retry-After"},
    }
    availability = {
        "code": "capacity_exhausted",
        "retryable": True,
        "retry_after": wait,
        "requested_models": [model_id],
        "docs_url": _DOCS_URL,
    }
    body = error_body(429, message, metadata, availability=availability)
    return SimError(429, body, headers, fallback=True)


def provider_metadata(provider: str, ordinal: int) -> dict[str, Any]:
    """2024-style provider error metadata; `raw` alternates between a JSON string and an object."""
    raw: Any = _UPSTREAM_BODY if ordinal % 2 else orjson.dumps(_UPSTREAM_BODY).decode()
    return {"provider_name": provider, "raw": raw, "error_type": "provider_unavailable"}


def server_error(
    status: int, model_id: str, provider: str, ordinal: int, retry_after_s: float | None
) -> SimError:
    headers: dict[str, str] = {}
    if retry_after_s is not None:
        headers["Retry-After"] = format_retry_after(retry_after_s)
    if status == 500:
        body = error_body(500, "Internal Server Error", {"error_type": "server"})
    elif status == 503:
        availability: dict[str, Any] = {
            "code": "temporarily_unavailable",
            "retryable": True,
            "requested_models": [model_id],
            "docs_url": _DOCS_URL,
        }
        if retry_after_s is not None:
            availability["retry_after"] = retry_after_s
        body = error_body(
            503,
            f"No endpoints available for {model_id} right now. Please retry shortly.",
            {"error_type": "provider_overloaded", "provider_name": provider},
            availability=availability,
        )
    else:
        body = error_body(502, "Provider returned error", provider_metadata(provider, ordinal))
    return SimError(status, body, headers, fallback=True)


def timed_out() -> SimError:
    return simple(524, "Request timed out. Please try again later.", "timeout")


def generation_not_found(generation_id: str) -> SimError:
    return simple(404, f"Generation {generation_id} not found", "not_found")


def in_body_error(provider: str, ordinal: int) -> dict[str, Any]:
    """The `error` object of a 200-with-error answer; every other pair of fires uses a str code."""
    code: int | str = "server_error" if (ordinal // 2) % 2 else 502
    return {
        "code": code,
        "message": "Provider returned error",
        "metadata": provider_metadata(provider, ordinal),
    }


def reset_epoch_ms(seconds_from_now: float) -> int:
    return math.ceil((time.time() + seconds_from_now) * 1000)


def _iso_utc(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def next_utc_midnight() -> float:
    tomorrow = datetime.now(UTC).date() + timedelta(days=1)
    return datetime(tomorrow.year, tomorrow.month, tomorrow.day, tzinfo=UTC).timestamp()


def interval_reset(interval: str) -> float | None:
    """When a budget of this interval resets: midnight UTC, Monday, the 1st; never for a lifetime one."""
    if interval == "lifetime":
        return None
    today = datetime.now(UTC).date()
    if interval == "weekly":
        day = today + timedelta(days=7 - today.weekday())
    elif interval == "monthly":
        day = (today.replace(day=28) + timedelta(days=4)).replace(day=1)
    else:
        day = today + timedelta(days=1)
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()


def key_limit_budget(limit_usd: float, spend_usd: float) -> SimError:
    """The 2026 form of the per-key limit: a 403 whose metadata names the limit and its reset."""
    message = "Key limit exceeded (daily limit). Manage it using https://openrouter.ai/settings/keys"
    metadata = {
        "error_type": "permission_denied",
        "limit_source": "openrouter_key_limit",
        "scope": "api_key",
        "limit_usd": limit_usd,
        "spend_usd": spend_usd,
        "resets_at": _iso_utc(next_utc_midnight()),
    }
    return SimError(403, error_body(403, message, metadata))


def in_flight_budget_exhausted(retry_after_s: float) -> SimError:
    """402: the account's in-flight spending budget is full for now; `Retry-After` says when to retry."""
    message = (
        "This request would exceed your available credits given your current in-flight requests. "
        "Retry after in-flight requests settle, or add credits."
    )
    metadata = {
        "error_type": "payment_required",
        "reason": "in_flight_budget_exhausted",
        "limit_source": "openrouter_in_flight_budget",
        "remedy_hint": (
            "Retry after your in-flight requests settle (see the Retry-After header). Adding credits at "
            "https://openrouter.ai/settings/credits raises your in-flight budget, up to a capped ceiling."
        ),
    }
    headers = {"Retry-After": format_retry_after(retry_after_s)}
    return SimError(402, error_body(402, message, metadata), headers)


def weight_exceeds_budget() -> SimError:
    """402: this one request's estimated cost is larger than the whole in-flight budget."""
    message = (
        "This request's estimated cost exceeds your in-flight spending budget. "
        "Lower max_tokens or the prompt size, or add credits."
    )
    metadata = {
        "error_type": "payment_required",
        "reason": "weight_exceeds_budget",
        "limit_source": "openrouter_credits",
        "remedy_hint": "Lower max_tokens or the prompt size, or add credits at https://openrouter.ai/settings/credits.",
    }
    return SimError(402, error_body(402, message, metadata))


def budget_limit(source: str, *, interval: str, limit_usd: float, spend_usd: float,
                 resets_at: float | None) -> SimError:
    """403 from a workspace or guardrail budget: `limit_source`, `limit_usd`, `spend_usd`, `resets_at`."""
    if source == "openrouter_workspace_budget":
        message = f"Workspace {interval} budget of ${limit_usd:.2f} exceeded. Contact your workspace admin."
        scope = "workspace"
    else:
        message = f"Guardrail {interval} budget of ${limit_usd:.2f} exceeded for this API key."
        scope = "api_key"
    metadata = {
        "error_type": "permission_denied",
        "limit_source": source,
        "scope": scope,
        "limit_usd": limit_usd,
        "spend_usd": spend_usd,
        "resets_at": None if resets_at is None else _iso_utc(resets_at),
    }
    return SimError(403, error_body(403, message, metadata))


# Availability codes with their statuses (reference 4.1) and whether a retry can succeed.
AVAILABILITY_STATUS = {
    "model_not_found": 400, "wrong_endpoint": 400, "no_endpoints": 404, "model_deprecated": 404,
    "privacy_restricted": 404, "constraint_filtered": 404, "free_variant_ended": 404,
    "capacity_exhausted": 429, "temporarily_unavailable": 503, "region_restricted": 403,
}
_RETRYABLE_CODES = frozenset({"capacity_exhausted", "temporarily_unavailable"})
_ERROR_TYPES = {400: "invalid_request", 403: "permission_denied", 404: "not_found",
                429: "rate_limit_exceeded", 503: "provider_overloaded"}


def unavailable(model_id: str, provider: str, code: str, *, status: int | None = None,
                retryable: bool | None = None, retry_after_s: float | None = None,
                fallback_models: tuple[str, ...] = ()) -> SimError:
    """A 2026 availability error: `error.availability` with its code, `retryable`, `retry_after` and
    `fallback_models`; `metadata.error_type` and `provider_code`. Any code is sent, known or not."""
    answer = status or AVAILABILITY_STATUS.get(code, 503)
    can_retry = code in _RETRYABLE_CODES if retryable is None else retryable
    availability: dict[str, Any] = {
        "code": code,
        "retryable": can_retry,
        "requested_models": [model_id],
        "affected_providers": [provider],
        "docs_url": _DOCS_URL,
    }
    headers: dict[str, str] = {}
    if retry_after_s is not None:
        availability["retry_after"] = retry_after_s
        headers["Retry-After"] = format_retry_after(retry_after_s)
    if fallback_models:
        availability["fallback_models"] = list(fallback_models)
    messages = {
        "model_deprecated": f"{model_id} has been deprecated and is no longer available.",
        "free_variant_ended": f"The free variant {model_id} has ended. Use the paid variant instead.",
        "capacity_exhausted": f"{model_id} is at capacity right now. Please retry shortly.",
        "temporarily_unavailable": f"No endpoints available for {model_id} right now. Please retry shortly.",
    }
    message = messages.get(code, f"{model_id} is unavailable ({code}).")
    metadata = {"error_type": _ERROR_TYPES.get(answer, "unmapped"), "provider_name": provider,
                "provider_code": code}
    body = error_body(answer, message, metadata, availability=availability)
    return SimError(answer, body, headers, fallback=True)
