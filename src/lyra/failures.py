"""What the router does about each kind of failed attempt: one table, chosen by config.

In the spirit of tenacity's `stop` and `wait` objects, a `FailurePolicy` maps a `FailureKind`
to a `FailureAction`; the router only carries the action out. A retry the upstream marked as
hopeless (`retryable` false) is raised instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from lyra.errors import FailureKind, UpstreamError


class FailureAction(StrEnum):
    """The router's answer to a failed attempt."""

    RETIRE_KEY = "retire_key"  # the key is bad or done for the day: try another key
    COOL_KEY = "cool_key"  # the key lacks credit: rest it until its day ends, try another key
    MODEL_DONE_TODAY = "model_done_today"  # the model's daily limit: skip it until the reset
    NEXT_MODEL = "next_model"  # the model cannot serve: skip it for an hour
    RETRY = "retry"  # back off and try again (the same model, any key)
    RETRY_OTHER_KEY = "retry_other_key"  # back off and try again on another key if there is one
    RAISE = "raise"  # retrying cannot help: give up with this error
    WAIT_SAME_KEY = "wait_same_key"  # wait Retry-After, then the same key again (if the deadline allows)
    STEP_DOWN = "step_down"  # this request is too heavy here: only candidates with a smaller worst case
    RETIRE_KEY_AND_RAISE = "retire_key_and_raise"  # the key is done until the reset, so is every other


DEFAULT_ACTIONS: Mapping[FailureKind, FailureAction] = MappingProxyType({
    FailureKind.AUTH: FailureAction.RETIRE_KEY,
    FailureKind.KEY_LIMIT: FailureAction.RETIRE_KEY,
    FailureKind.PAYMENT: FailureAction.COOL_KEY,
    FailureKind.RATE_LIMIT: FailureAction.RETRY_OTHER_KEY,
    FailureKind.RATE_LIMIT_DAILY: FailureAction.MODEL_DONE_TODAY,
    FailureKind.MODEL_UNAVAILABLE: FailureAction.NEXT_MODEL,
    FailureKind.TIMEOUT: FailureAction.RETRY,
    FailureKind.SERVER: FailureAction.RETRY,
    FailureKind.NETWORK: FailureAction.RETRY,
    FailureKind.MALFORMED: FailureAction.RETRY,
    FailureKind.MODERATION: FailureAction.RAISE,
    FailureKind.BAD_REQUEST: FailureAction.RAISE,
    FailureKind.IN_FLIGHT_BUDGET: FailureAction.WAIT_SAME_KEY,
    FailureKind.WEIGHT_EXCEEDS_BUDGET: FailureAction.STEP_DOWN,
    FailureKind.GUARDRAIL_BUDGET: FailureAction.RETIRE_KEY,
    FailureKind.WORKSPACE_BUDGET: FailureAction.RETIRE_KEY_AND_RAISE,
})
_RETRIES = frozenset({FailureAction.RETRY, FailureAction.RETRY_OTHER_KEY, FailureAction.WAIT_SAME_KEY})


@dataclass(frozen=True, slots=True)
class FailurePolicy:
    """The failure -> action table; `overrides` (from `[retry] on_failure`) replace single rows."""

    overrides: Mapping[FailureKind, FailureAction] = field(default_factory=dict)

    def action(self, exc: UpstreamError) -> FailureAction:
        chosen = self.overrides.get(exc.kind, DEFAULT_ACTIONS[exc.kind])
        if chosen in _RETRIES and not exc.retryable:
            return FailureAction.RAISE
        return chosen


__all__ = ["DEFAULT_ACTIONS", "FailureAction", "FailurePolicy"]
