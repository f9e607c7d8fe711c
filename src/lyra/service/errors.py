"""Errors in OpenAI's body shape, and the mapping from Lyra's exception tree to HTTP statuses.

Statuses: 400 bad request (param names the field), 401 missing or unknown token, 402 a budget
cap, or a spending limit on OpenRouter's side (a key limit, a guardrail or workspace budget),
refused the request (retrying will not help before it resets, and OpenAI's SDKs retry 429 but not
402), 403 a tier the client may not use, 404 no such route, 408 a body that did not arrive in
time, 413 body too large, 429 rate limited, or OpenRouter's in-flight budget full for now (with
Retry-After), 500 a bug (its type is logged, never its text), 502 the upstream failed, 503 no
model could serve the request in time, the engine is not ready, or the budget state or the ledger
cannot be trusted or reached right now (with Retry-After; a billed answer's row is kept either
way), 504 an upstream timeout that cannot be retried.
"""

from __future__ import annotations

import math
import time

import orjson
from starlette.responses import Response

from lyra.errors import (
    BudgetExceeded,
    ConfigError,
    LedgerUnavailable,
    LyraError,
    NoModelAvailable,
    RateLimited,
    Unavailable,
    UpstreamError,
)
from lyra.log import get_logger, mask_secrets
from lyra.service.outage import store_outage

log = get_logger("lyra.service")


class ApiError(Exception):
    """An error the gateway answers with: status, OpenAI's type, the field at fault and a code."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
        extra: dict[str, object] | None = None,
        close: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.retry_after = retry_after
        self.extra = extra or {}  # fields beside OpenAI's four, e.g. a budget refusal's numbers
        self.close = close  # end the connection after answering: what is left of the request is unread

    def body(self) -> dict[str, object]:
        return {"error": {"message": mask_secrets(self.message), "type": self.type, "param": self.param,
                          "code": self.code, **self.extra}}

    def response(self) -> Response:
        headers = {}
        if self.retry_after is not None:
            headers["Retry-After"] = str(max(1, math.ceil(self.retry_after)))
        if self.status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        if self.close:
            headers["Connection"] = "close"
        return Response(orjson.dumps(self.body()), status_code=self.status, headers=headers,
                        media_type="application/json")


def bad_request(param: str, message: str, *, code: str = "invalid_value") -> ApiError:
    """400 naming the field at fault."""
    return ApiError(400, message, param=param, code=code)


def from_lyra_error(exc: LyraError) -> ApiError:
    """The HTTP answer for an engine error; the message never carries a key (they never hold one)."""
    if isinstance(exc, BudgetExceeded):
        return ApiError(402, str(exc), type="insufficient_quota", code="budget_exceeded")
    if isinstance(exc, RateLimited):
        return ApiError(429, str(exc), type="rate_limit_error", code="rate_limited",
                        retry_after=exc.retry_after or 1.0)
    if isinstance(exc, Unavailable):
        return ApiError(503, str(exc), type="service_unavailable", code=_unavailable_code(exc),
                        retry_after=exc.retry_after)
    if isinstance(exc, UpstreamError):
        return _from_upstream(exc)
    if isinstance(exc, NoModelAvailable):
        return ApiError(503, str(exc), type="service_unavailable", code="no_model_available",
                        retry_after=exc.retry_after)
    if isinstance(exc, ConfigError):
        return ApiError(400, str(exc), param="model", code="invalid_value")
    return ApiError(500, "internal error", type="server_error", code="internal_error")


def _unavailable_code(exc: Unavailable) -> str:
    return "ledger_unavailable" if isinstance(exc, LedgerUnavailable) else "state_unavailable"


def _from_upstream(exc: UpstreamError) -> ApiError:
    message = f"upstream error ({exc.kind}, status {exc.status}): {exc}"
    if exc.kind == "bad_request":
        return ApiError(400, message, code="upstream_bad_request")
    if exc.kind == "moderation":
        return ApiError(400, message, code="content_filter")
    if exc.kind == "timeout":
        return ApiError(504, message, type="timeout_error", code="upstream_timeout")
    if exc.kind in ("rate_limit", "rate_limit_daily"):
        return ApiError(429, message, type="rate_limit_error", code="upstream_rate_limited",
                        retry_after=exc.retry_after or 1.0)
    if exc.kind == "in_flight_budget":
        # OpenRouter's in-flight spending budget is full for a while: a 429 that OpenAI's SDKs retry.
        return ApiError(429, message, type="rate_limit_error", code="upstream_in_flight_budget",
                        retry_after=exc.retry_after or 1.0)
    if exc.kind == "weight_exceeds_budget":
        return ApiError(400, message, param="max_tokens", code="upstream_request_too_large")
    if exc.kind in ("workspace_budget", "guardrail_budget", "key_limit", "payment"):
        # A spending limit on OpenRouter's side: like a cap of Lyra's own, retrying will not help before
        # it resets. The answer names the kind and the reset, never a key or the account's amounts.
        wait = None if exc.resets_at is None else max(1.0, exc.resets_at - time.time())
        until = "" if exc.resets_at is None else f" until {_iso(exc.resets_at)}"
        return ApiError(402, f"upstream spending limit reached ({exc.kind}){until}; retrying will not help "
                             "before it resets", type="insufficient_quota", code=f"upstream_{exc.kind}",
                        retry_after=wait)
    return ApiError(502, message, type="upstream_error", code=f"upstream_{exc.kind}")


_STORES = {"ledger": "the ledger", "state": "the budget state",
           "store": "a backing store (database or Redis)"}


def from_unexpected(exc: Exception, where: str) -> ApiError:
    """503 with Retry-After for a backing store's outage, else 500; `where` is "METHOD /path".

    Only the exception's type is logged and nothing of its text is answered: a driver's message
    can carry a database URL with its password, an exception's text request content.
    """
    store = store_outage(exc)
    if store is not None:
        log.warning("%s unavailable (%s) while serving %s", store, type(exc).__name__, where)
        return ApiError(503, f"{_STORES[store]} cannot be reached right now; retry shortly",
                        type="service_unavailable", code=f"{store}_unavailable", retry_after=1.0)
    log.error("unexpected %s while serving %s", type(exc).__name__, where)
    return ApiError(500, "internal error", type="server_error", code="internal_error")


def _iso(epoch_s: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_s))
