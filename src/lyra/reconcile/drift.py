"""A running comparison of booked and billed spend, and the one warning line when they part."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from lyra.log import get_logger
from lyra.money import format_usd

log = get_logger("lyra.reconcile")


@dataclass(slots=True)
class DriftWatch:
    """Sums booked and billed nano-dollars over reconciled attempts; warns once above the threshold.

    The warning re-arms when the drift falls back within the threshold, so a lasting problem is one
    line, not one per attempt.
    """

    warn_share: Decimal
    booked_nanos: int = 0
    billed_nanos: int = 0
    attempts: int = 0
    warned: bool = False

    @property
    def drift_nanos(self) -> int:
        return self.billed_nanos - self.booked_nanos

    def above(self) -> bool:
        """Whether |billed - booked| exceeds the threshold share of booked spend."""
        if self.attempts == 0:
            return False
        return Decimal(abs(self.drift_nanos)) > self.warn_share * Decimal(self.booked_nanos)

    def add(self, booked_nanos: int, billed_nanos: int) -> bool:
        """Count one reconciled attempt; True when this one raised the warning."""
        self.booked_nanos += booked_nanos
        self.billed_nanos += billed_nanos
        self.attempts += 1
        return self.check()

    def check(self) -> bool:
        if not self.above():
            self.warned = False
            return False
        if self.warned:
            return False
        self.warned = True
        share = (f"{Decimal(self.drift_nanos) * 100 / Decimal(self.booked_nanos):+.2f}%"
                 if self.booked_nanos else "n/a")
        log.warning("cost drift: OpenRouter billed %s against %s booked over %d reconciled attempts "
                    "(%s, threshold %s%%)", format_usd(self.billed_nanos), format_usd(self.booked_nanos),
                    self.attempts, share, f"{self.warn_share * 100:f}".rstrip("0").rstrip("."))
        return True


__all__ = ["DriftWatch"]
