"""Small retry policies: exponential backoff with full jitter, and a per-model circuit breaker."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(slots=True)
class Backoff:
    """Full-jitter exponential backoff that defers to the server's Retry-After."""

    base_s: float = 0.25
    max_s: float = 8.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, retry_number: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry `retry_number` (1 for the first retry)."""
        ceiling = min(self.max_s, self.base_s * (2 ** (retry_number - 1)))
        jittered = self.rng.uniform(0, ceiling)
        if retry_after is not None:
            return max(retry_after, jittered)
        return jittered


@dataclass(slots=True)
class _Circuit:
    failures: int = 0
    open_until: float = 0.0


class CircuitBreaker:
    """Opens a model's circuit after consecutive failures; one trial call after the cool-down."""

    def __init__(self, *, failures: int = 5, cooldown_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._threshold = failures
        self._cooldown = cooldown_s
        self._clock = clock
        self._circuits: dict[str, _Circuit] = {}

    def allows(self, model: str) -> bool:
        circuit = self._circuits.get(model)
        return circuit is None or circuit.open_until <= self._clock()

    def success(self, model: str) -> None:
        self._circuits.pop(model, None)

    def failure(self, model: str) -> None:
        circuit = self._circuits.setdefault(model, _Circuit())
        circuit.failures += 1
        if circuit.failures >= self._threshold:
            circuit.open_until = self._clock() + self._cooldown
            circuit.failures = self._threshold - 1  # half-open: one more failure re-opens it

    def open_for(self, model: str, seconds: float) -> None:
        """Open the circuit for a known time (a daily free-model limit until its reset)."""
        circuit = self._circuits.setdefault(model, _Circuit())
        circuit.open_until = self._clock() + seconds

    def state(self) -> dict[str, str]:
        now = self._clock()
        return {m: ("open" if c.open_until > now else "closed") for m, c in self._circuits.items()}

    def phases(self) -> dict[str, str]:
        """Each tracked model's circuit: "open" (refusing calls), "half-open" (cooled down, not yet
        proven by a success: the next calls are trials) or "closed" (failures below the threshold)."""
        now = self._clock()
        return {m: "open" if c.open_until > now else "half-open" if c.open_until else "closed"
                for m, c in self._circuits.items()}
