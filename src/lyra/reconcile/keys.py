"""Each key's ledger total for the UTC day against OpenRouter's own count (`GET /key` usage_daily).

Only meaningful when this ledger is the key's only user: another program on the same key, or the
OpenRouter web chat, adds to usage_daily and not to the ledger. Both numbers and the difference
are reported; nothing is corrected.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from lyra.days import budget_day, day_bounds
from lyra.errors import UpstreamError
from lyra.ledger import Ledger
from lyra.openrouter.transport import OpenRouterTransport
from lyra.reconcile.billed import key_daily_nanos
from lyra.reconcile.worker import SecretOf


@dataclass(frozen=True, slots=True)
class KeyDay:
    """One key's spend on one UTC day: the ledger's booked total and what /key says."""

    key_name: str
    day: str
    ledger_nanos: int
    openrouter_nanos: int | None
    error: str | None = None

    @property
    def difference_nanos(self) -> int | None:
        """OpenRouter's count minus the ledger's (positive: billed more than this ledger booked)."""
        return None if self.openrouter_nanos is None else self.openrouter_nanos - self.ledger_nanos

    def to_dict(self) -> dict[str, object]:
        return {"key": self.key_name, "day": self.day, "ledger_nanos": self.ledger_nanos,
                "openrouter_nanos": self.openrouter_nanos, "difference_nanos": self.difference_nanos,
                "error": self.error}


async def compare_keys(ledger: Ledger, transport: OpenRouterTransport, names: Iterable[str],
                       secret_of: SecretOf, *, clock: Callable[[], float] = time.time) -> list[KeyDay]:
    """Today's (UTC) ledger total per key beside /key usage_daily, for every named key."""
    now = clock()
    compact = budget_day(now)  # UTC: usage_daily resets at 00:00 UTC
    start, _ = day_bounds(compact)
    today = f"{compact[:4]}-{compact[4:6]}-{compact[6:]}"
    booked = await asyncio.to_thread(ledger.spend_by_key_day, since_ts=start)
    found: list[KeyDay] = []
    for name in sorted(names):
        secret = secret_of(name)
        ours = booked.get((name, today), 0)
        if secret is None:
            found.append(KeyDay(name, today, ours, None, "the key has no secret here"))
            continue
        try:
            payload = await transport.get_json("/key", api_key=secret)
        except UpstreamError as exc:
            found.append(KeyDay(name, today, ours, None, f"GET /key failed: {exc.kind} ({exc.status})"))
            continue
        data = payload.get("data")
        theirs = key_daily_nanos(data) if isinstance(data, dict) else None
        found.append(KeyDay(name, today, ours, theirs, None if theirs is not None else "no usage_daily"))
    return found


__all__ = ["KeyDay", "compare_keys"]
