"""OpenRouter's budget and availability error bodies (reference sections 4 and 8) -> kinds.

The bodies are the documented ones (the limits page's 402 example, the 403 budget metadata, the
availability object); the last tests send values no reference lists, which must parse, not crash.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from lyra.errors import FailureKind, UpstreamError
from lyra.openrouter.wire import decode_chat_response, decode_chunk


def parsed(status: int, error: dict[str, Any], headers: dict[str, str] | None = None) -> UpstreamError:
    with pytest.raises(UpstreamError) as caught:
        decode_chat_response(status, headers or {}, orjson.dumps({"error": error, "user_id": "user_x"}))
    return caught.value


IN_FLIGHT = {
    "code": 402,
    "message": "This request would exceed your available credits given your current in-flight requests. "
               "Retry after in-flight requests settle, or add credits.",
    "metadata": {"reason": "in_flight_budget_exhausted", "limit_source": "openrouter_in_flight_budget",
                 "remedy_hint": "Retry after your in-flight requests settle (see the Retry-After header)."},
}


def test_in_flight_budget_is_retryable_after_its_retry_after() -> None:
    err = parsed(402, IN_FLIGHT, {"Retry-After": "7"})
    assert (err.kind, err.retryable, err.retry_after) == (FailureKind.IN_FLIGHT_BUDGET, True, 7.0)
    assert err.limit_source == "openrouter_in_flight_budget"


def test_weight_exceeds_budget_is_not_retryable() -> None:
    err = parsed(402, {"code": 402, "message": "too large", "metadata": {
        "reason": "weight_exceeds_budget", "limit_source": "openrouter_credits"}})
    assert (err.kind, err.retryable) == (FailureKind.WEIGHT_EXCEEDS_BUDGET, False)


def test_a_plain_402_is_still_payment_and_a_key_limit_402_is_a_key_limit() -> None:
    assert parsed(402, {"code": 402, "message": "This request requires more credits",
                        "metadata": {"provider_name": None}}).kind is FailureKind.PAYMENT
    limited = parsed(402, {"code": 402, "message": "key out", "metadata": {"limit_source": "openrouter_key_limit"}})
    assert limited.kind is FailureKind.KEY_LIMIT


@pytest.mark.parametrize(("source", "kind"), [
    ("openrouter_workspace_budget", FailureKind.WORKSPACE_BUDGET),
    ("openrouter_guardrail_budget", FailureKind.GUARDRAIL_BUDGET),
    ("openrouter_key_limit", FailureKind.KEY_LIMIT),
])
def test_a_403_budget_names_its_source_and_reset(source: str, kind: FailureKind) -> None:
    err = parsed(403, {"code": 403, "message": "Budget limit exceeded", "metadata": {
        "limit_source": source, "scope": "workspace", "limit_usd": 500, "spend_usd": 500.01,
        "resets_at": "2026-12-01T00:00:00.000Z"}})
    assert err.kind is kind and not err.retryable
    assert err.resets_at == datetime(2026, 12, 1, tzinfo=UTC).timestamp()


def test_the_workspace_message_alone_is_enough_and_gives_the_period() -> None:
    err = parsed(403, {"code": 403, "message": "Workspace monthly budget of $500.00 exceeded. "
                                               "Contact your workspace admin."})
    assert (err.kind, err.limit_period, err.resets_at) == (FailureKind.WORKSPACE_BUDGET, "monthly", None)


@pytest.mark.parametrize(("message", "period"), [
    ("Key limit exceeded (daily limit). Manage it using https://openrouter.ai/settings/keys", "daily"),
    ("Key limit exceeded (total limit)", "total"),
    ("Key limit exceeded", None),
])
def test_a_key_limit_message_gives_its_period(message: str, period: str | None) -> None:
    err = parsed(403, {"code": 403, "message": message, "metadata": {"error_type": "permission_denied"}})
    assert (err.kind, err.limit_period) == (FailureKind.KEY_LIMIT, period)


def test_a_moderation_403_stays_moderation() -> None:
    err = parsed(403, {"code": 403, "message": "Request blocked: prompt injection patterns detected",
                       "metadata": {"patterns": ["ignore all previous instructions"]}})
    assert err.kind is FailureKind.MODERATION


def test_availability_fields_are_kept() -> None:
    err = parsed(404, {"code": 404, "message": "gone", "metadata": {"error_type": "not_found",
                                                                    "provider_code": "deprecated"},
                       "availability": {"code": "model_deprecated", "retryable": False,
                                        "fallback_models": ["a/b", "c/d"], "requested_models": ["x/y"]}})
    assert (err.kind, err.retryable) == (FailureKind.MODEL_UNAVAILABLE, False)
    assert (err.availability_code, err.fallback_models, err.provider_code) == (
        "model_deprecated", ("a/b", "c/d"), "deprecated")
    assert err.error_type == "not_found"


def test_retryable_false_on_a_retryable_status_is_a_model_that_will_not_serve() -> None:
    err = parsed(429, {"code": 429, "message": "busy", "availability": {"code": "capacity_exhausted",
                                                                        "retryable": False}})
    assert (err.kind, err.retryable) == (FailureKind.MODEL_UNAVAILABLE, False)


def test_retryable_true_with_retry_after_in_the_body_only() -> None:
    err = parsed(503, {"code": 503, "message": "later", "availability": {"code": "temporarily_unavailable",
                                                                         "retryable": True, "retry_after": 4}})
    assert (err.kind, err.retryable, err.retry_after) == (FailureKind.SERVER, True, 4.0)


def test_an_availability_error_mid_stream_keeps_its_fields() -> None:
    event = {"id": "gen-1", "error": {"code": 404, "message": "gone", "availability": {
        "code": "free_variant_ended", "retryable": False, "fallback_models": ["a/b"]}},
        "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}]}
    with pytest.raises(UpstreamError) as caught:
        decode_chunk(orjson.dumps(event).decode())
    assert caught.value.kind is FailureKind.MODEL_UNAVAILABLE
    assert caught.value.fallback_models == ("a/b",) and caught.value.availability_code == "free_variant_ended"


@pytest.mark.parametrize("availability", [
    {"code": "a_code_from_next_year", "retryable": "maybe", "retry_after": "soon", "fallback_models": "a/b"},
    {"code": 17, "retryable": None, "retry_after": True, "fallback_models": [None, 3, ""]},
    {"code": None, "retry_after": -5},
    [],
    "unavailable",
])
def test_unknown_availability_values_parse(availability: Any) -> None:
    err = parsed(503, {"code": 503, "message": "x", "availability": availability})
    assert err.kind is FailureKind.SERVER and err.retryable  # as the status alone says
    assert err.fallback_models == () and err.retry_after is None


@pytest.mark.parametrize("metadata", [
    {"reason": "a_reason_from_next_year", "limit_source": "openrouter_something_new", "resets_at": "soon"},
    {"reason": 42, "limit_source": ["x"], "resets_at": {"at": 1}},
    {"limit_source": None, "resets_at": True},
])
@pytest.mark.parametrize("status", [402, 403])
def test_unknown_budget_values_parse(metadata: dict[str, Any], status: int) -> None:
    err = parsed(status, {"code": status, "message": "refused", "metadata": metadata})
    assert err.kind is (FailureKind.PAYMENT if status == 402 else FailureKind.MODERATION)
    assert err.resets_at is None


def test_resets_at_as_epoch_milliseconds_or_seconds() -> None:
    for value in (1_796_170_261_000, 1_796_170_261):
        err = parsed(403, {"code": 403, "message": "x", "metadata": {
            "limit_source": "openrouter_guardrail_budget", "resets_at": value}})
        assert err.resets_at == 1_796_170_261
