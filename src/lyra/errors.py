"""One exception tree for everything Lyra raises."""

from __future__ import annotations

from enum import StrEnum


class LyraError(Exception):
    """Base class of every error Lyra raises on purpose."""


class ConfigError(LyraError):
    """The configuration is invalid; the message names the file, the field and the fix."""


class BudgetExceeded(LyraError):
    """A request cannot fit under a spending cap; raised before any upstream call.

    `cap` names the cap (`client:desk`, `key:primary`, `tier:fast`, `global`); `unit` is "usd"
    (amounts in nano-dollars) or "tokens"; `limit`, `used` (spent or held) and `needed` (this
    request's worst case) are in that unit; `resets_at` is when the cap's day rolls over (epoch s).
    The message is for an operator: it names the key. A gateway tells a client only what is its own.
    """

    def __init__(self, message: str, *, cap: str = "", unit: str = "usd", limit: int | None = None,
                 used: int | None = None, needed: int | None = None, resets_at: float | None = None) -> None:
        super().__init__(message)
        self.cap = cap
        self.unit = unit
        self.limit = limit
        self.used = used
        self.needed = needed
        self.resets_at = resets_at


class Unavailable(LyraError):
    """Lyra cannot know that going on is safe right now, so it refuses; retry after `retry_after` s.

    Raised when the budget state cannot be read or written, or was lost and is being rebuilt
    from the ledger, and when a billed answer's ledger row could not be made durable. The
    message is one line saying which.
    """

    def __init__(self, message: str, *, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StateUnavailable(Unavailable):
    """The budget state backend failed, hangs, or was reset and is being rebuilt."""


class StateReset(StateUnavailable):
    """The shared budget state lost its epoch marker (restarted empty, flushed, failed over)."""


class LedgerUnavailable(Unavailable):
    """A billed answer's ledger row is not durable yet (it is kept and written later)."""

class CostUnbounded(BudgetExceeded):
    """The worst-case cost of a request cannot be bounded on a model (a part it cannot price).

    A refusal before any upstream call, like any BudgetExceeded: the router moves to the next
    candidate model, which may be able to price the part.
    """


class RateLimited(LyraError):
    """No rate-limit token could be had before the caller's deadline."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NoModelAvailable(LyraError):
    """Every candidate model and key was tried or skipped; `attempts` says what happened."""

    def __init__(self, message: str, *, attempts: list[object] | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.attempts: list[object] = list(attempts or [])
        # Seconds until the first of the route's keys comes back, when every one is retired (else None).
        self.retry_after = retry_after


class FailureKind(StrEnum):
    """Lyra's classification of a failed upstream attempt; the router acts on it (routing.failures)."""

    AUTH = "auth"  # 401: the key is bad or revoked
    KEY_LIMIT = "key_limit"  # 403 key limit: the key is done until the limit resets
    PAYMENT = "payment"  # 402: not enough credit for this max_tokens
    RATE_LIMIT = "rate_limit"  # 429: wait and retry
    RATE_LIMIT_DAILY = "rate_limit_daily"  # 429 free-models-per-day: this model is done until the reset
    TIMEOUT = "timeout"  # 408, 504, 524 or our own deadline
    SERVER = "server"  # 5xx and provider errors
    NETWORK = "network"  # connection refused, reset, dropped mid-stream
    MALFORMED = "malformed"  # a body that is not what the wire format promises
    MODEL_UNAVAILABLE = "model_unavailable"  # unknown, retired or unroutable model
    MODERATION = "moderation"  # 403 flagged input: retrying will not help
    BAD_REQUEST = "bad_request"  # 400 and friends: the request itself is wrong
    IN_FLIGHT_BUDGET = "in_flight_budget"  # 402 in_flight_budget_exhausted: wait Retry-After, same key
    WEIGHT_EXCEEDS_BUDGET = "weight_exceeds_budget"  # 402: this request alone is too big: a cheaper model
    GUARDRAIL_BUDGET = "guardrail_budget"  # 403 guardrail budget spent: this key is done until resets_at
    WORKSPACE_BUDGET = "workspace_budget"  # 403 workspace budget spent: every key of it is, so give up


class UpstreamError(LyraError):
    """OpenRouter (or the provider behind it) answered with an error, or could not be reached.

    Carries what retry and routing act on: the HTTP-like status, Lyra's classification
    (`kind`, a FailureKind), OpenRouter's own code and type, how long to wait, which
    provider failed and whether a retry can succeed.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        kind: FailureKind | str = FailureKind.SERVER,
        code: int | str | None = None,
        error_type: str | None = None,
        retry_after: float | None = None,
        provider: str | None = None,
        retryable: bool = False,
        model: str | None = None,
        key_name: str | None = None,
        rate_limit_reset: float | None = None,
        maybe_billed: bool = False,
        limit_source: str | None = None,
        limit_period: str | None = None,
        resets_at: float | None = None,
        availability_code: str | None = None,
        fallback_models: tuple[str, ...] = (),
        provider_code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.kind = FailureKind(kind)  # ValueError for a kind no policy knows
        self.code = code
        self.error_type = error_type
        self.retry_after = retry_after
        self.provider = provider
        self.retryable = retryable
        self.model = model
        self.key_name = key_name
        self.rate_limit_reset = rate_limit_reset
        # True when the request may have reached the provider and been billed (timeouts, drops).
        self.maybe_billed = maybe_billed
        # OpenRouter's budgets: which one refused (`metadata.limit_source`, e.g. "openrouter_key_limit"),
        # its period ("daily", "weekly", "monthly", "total" or "lifetime") and when it resets (epoch s).
        self.limit_source = limit_source
        self.limit_period = limit_period
        self.resets_at = resets_at
        # `error.availability`: its code (any string, known or not) and the models it suggests instead.
        self.availability_code = availability_code
        self.fallback_models = fallback_models
        self.provider_code = provider_code

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status}, kind={self.kind.value!r}, code={self.code!r}, "
            f"error_type={self.error_type!r}, retryable={self.retryable}, message={str(self)!r})"
        )


class UpstreamTimeout(UpstreamError):
    """The attempt ran past its deadline."""


class StreamInterrupted(UpstreamError):
    """A stream ended with an error event or closed before its end."""
