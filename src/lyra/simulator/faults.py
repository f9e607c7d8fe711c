"""Fault injection: which failure a request meets, drawn from the seeded RNG."""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

FAULT_KINDS = frozenset(
    {
        "rate_limit",
        "server_error",
        "timeout",
        "malformed",
        "error_in_200",
        "midstream_error",
        "revoked_key",
        "key_limit",
        "payment_required",
        "free_per_day",
        "drop",
        # OpenRouter's budgets and availability errors (reference section 8)
        "in_flight_budget",
        "weight_exceeds_budget",
        "guardrail_budget",
        "workspace_budget",
        "unavailable",
        "stall",  # a stream stops after half its content until the client hangs up (or hang_s)
    }
)
# Provider-side failures before the first token: OpenRouter moves on to the next entry of a
# `models` list. The rest concern the key, or reach the client as they are.
FALLBACK_KINDS = frozenset({"rate_limit", "server_error"})
_SERVER_ERROR_STATUSES = (500, 502, 503)


@dataclass(frozen=True, kw_only=True)
class Fault:
    """One failure to inject into matching chat completions.

    `model` and `key` narrow which requests match (None matches any); `rate` is the chance a
    matching request meets it, `count` how many times it may fire in all.
    """

    kind: str
    model: str | None = None
    key: str | None = None
    rate: float = 1.0
    count: int | None = None
    status: int | None = None
    retry_after_s: float | None = None
    hang_s: float = 30.0
    # `stall`: the share of a stream's content sent before it stalls (0: headers only, no token yet).
    stall_share: float = 0.5
    # `unavailable`: the availability code (any string; default model_deprecated), whether it says a
    # retry can succeed (default: by code), and the fallback_models it suggests.
    code: str | None = None
    retryable: bool | None = None
    fallback_models: tuple[str, ...] = ()
    # `guardrail_budget`, `workspace_budget`: the budget's interval ("daily", ..., "lifetime") and
    # its reset (epoch s; None: the end of the interval, or never for a lifetime budget).
    interval: str = "daily"
    resets_at: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            known = ", ".join(sorted(FAULT_KINDS))
            raise ValueError(f"Fault.kind {self.kind!r} is unknown; use one of {known}")
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError("Fault.rate must be between 0 and 1")
        if self.count is not None and self.count < 0:
            raise ValueError("Fault.count must be >= 0")
        if self.kind == "server_error" and self.status not in (None, *_SERVER_ERROR_STATUSES):
            raise ValueError("Fault.status for server_error must be 500, 502 or 503")
        if self.kind == "rate_limit" and self.status not in (None, 429):
            raise ValueError("Fault.status for rate_limit can only be 429")
        if self.retry_after_s is not None and self.retry_after_s < 0:
            raise ValueError("Fault.retry_after_s must be >= 0")
        if not 0.0 <= self.stall_share < 1.0:
            raise ValueError("Fault.stall_share must be at least 0 and below 1")
        if self.hang_s < 0:
            raise ValueError("Fault.hang_s must be >= 0")
        if isinstance(self.fallback_models, list):
            object.__setattr__(self, "fallback_models", tuple(self.fallback_models))
        if not all(isinstance(m, str) for m in self.fallback_models):
            raise ValueError("Fault.fallback_models must be model ids")
        if self.interval not in ("daily", "weekly", "monthly", "lifetime"):
            raise ValueError("Fault.interval must be daily, weekly, monthly or lifetime")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Fault:
        """A Fault from a JSON object (the control endpoint); raises ValueError naming the field."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown Fault field(s): {', '.join(unknown)}")
        if "kind" not in data:
            raise ValueError("Fault field 'kind' is required")
        try:
            return cls(**dict(data))
        except TypeError as exc:
            raise ValueError(f"bad Fault fields: {exc}") from exc

    def as_dict(self) -> dict[str, Any]:
        """The fault's fields, without the key it is scoped to (a secret)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["key"] = None if self.key is None else "<set>"
        return out


@dataclass(slots=True)
class FiredFault:
    """A fault that fired, with its ordinal among faults of its kind (to vary body forms)."""

    fault: Fault
    ordinal: int


class FaultBook:
    """The armed faults, in the order added; the first that matches and fires wins."""

    def __init__(self, rng: random.Random, fired: Counter[str]) -> None:
        self._rng = rng
        self._fired = fired
        self._armed: list[list[Any]] = []  # [fault, times fired]
        # add_fault may be called from another thread than the server loop's.
        self._lock = threading.Lock()

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._armed.append([fault, 0])

    def clear(self) -> None:
        with self._lock:
            self._armed = []

    def armed(self) -> list[Fault]:
        return [entry[0] for entry in self._armed]

    def draw(self, requested: str, model_id: str, token: str) -> FiredFault | None:
        """The fault this attempt meets, if any; counts it as fired."""
        if not self._armed:
            return None
        with self._lock:
            for entry in self._armed:
                fault: Fault = entry[0]
                if fault.count is not None and entry[1] >= fault.count:
                    continue
                if fault.model is not None and fault.model not in (requested, model_id):
                    continue
                if fault.key is not None and fault.key != token:
                    continue
                if fault.rate < 1.0 and self._rng.random() >= fault.rate:
                    continue
                entry[1] += 1
                ordinal = self._fired[fault.kind]
                self._fired[fault.kind] += 1
                return FiredFault(fault, ordinal)
        return None
