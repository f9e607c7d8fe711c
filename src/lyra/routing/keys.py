"""The key pool: which named key to use next, and which keys are retired or cooling down."""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from lyra.config import KeySettings, Secret
from lyra.config.upstreams import keyless_key
from lyra.log import get_logger

log = get_logger("lyra.routing.keys")


def next_day_start(now: float, day_starts_utc_hour: int = 0) -> float:
    """Epoch seconds at which the current budget day ends."""
    moment = datetime.fromtimestamp(now, UTC)
    start = moment.replace(hour=day_starts_utc_hour, minute=0, second=0, microsecond=0)
    if start <= moment:
        start += timedelta(days=1)
    return start.timestamp()


def limit_period_end(now: float, period: str | None) -> float:
    """When an OpenRouter limit of this period resets (UTC): the next midnight, Monday or 1st.

    OpenRouter's key limits and budgets reset at midnight UTC (`limit_reset` daily, weekly on
    Monday, monthly on the 1st); a total or lifetime one never does (infinity). A period Lyra does
    not know, or none, is taken as the UTC day.
    """
    if period in ("total", "lifetime"):
        return math.inf
    moment = datetime.fromtimestamp(now, UTC)
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "weekly":
        return (midnight + timedelta(days=7 - midnight.weekday())).timestamp()
    if period == "monthly":
        year, month = (midnight.year + 1, 1) if midnight.month == 12 else (midnight.year, midnight.month + 1)
        return midnight.replace(year=year, month=month, day=1).timestamp()
    return (midnight + timedelta(days=1)).timestamp()


_NO_TOKEN_CAP = 10**15


@dataclass(slots=True)
class KeyState:
    """What the pool knows about one key; the secret stays inside `Secret`."""

    name: str
    secret: Secret
    daily_tokens: int
    tokens_used: int = 0
    retired_until: float = 0.0
    cool_until: float = 0.0
    reason: str = ""
    day_end: float = 0.0


@dataclass(frozen=True, slots=True)
class KeyStatus:
    name: str
    available: bool
    reason: str
    tokens_used: int
    daily_tokens: int


class KeyPool:
    """Chooses keys in preference order (or round-robin) and skips unhealthy ones."""

    def __init__(
        self,
        keys: Mapping[str, KeySettings],
        secrets: Mapping[str, Secret],
        *,
        day_starts_utc_hour: int = 0,
        clock: Callable[[], float] = time.time,
        keyless: Sequence[str] = (),
    ) -> None:
        """`keyless`: upstreams called with no key; each gets a pseudo key (`keyless_key`) with no
        secret and no token cap (its upstream's `daily_usd` caps it)."""
        self._clock = clock
        self._day_hour = day_starts_utc_hour
        now = clock()
        self._states = {
            name: KeyState(name=name, secret=secrets[name], daily_tokens=cfg.daily_tokens,
                           day_end=next_day_start(now, day_starts_utc_hour))
            for name, cfg in keys.items() if name in secrets
        }
        for upstream in keyless:
            name = keyless_key(upstream)
            self._states[name] = KeyState(name=name, secret=Secret(""), daily_tokens=_NO_TOKEN_CAP,
                                          day_end=next_day_start(now, day_starts_utc_hour))
        self._round_robin: dict[tuple[str, ...], Iterator[int]] = {}

    def __repr__(self) -> str:
        return f"KeyPool(keys={sorted(self._states)})"

    def secret(self, name: str) -> str:
        return self._states[name].secret.reveal()

    def order(self, allowed: Sequence[str], *, round_robin: bool) -> list[str]:
        """The allowed keys in the order to try them: rotated for round-robin tiers."""
        names = [n for n in allowed if n in self._states]
        if round_robin and len(names) > 1:
            counter = self._round_robin.setdefault(tuple(names), itertools.count())
            start = next(counter) % len(names)
            names = names[start:] + names[:start]
        return names

    def usable(self, name: str, estimated_tokens: int = 0) -> str | None:
        """None if the key can take a call now, else why not."""
        state = self._states.get(name)
        if state is None:
            return "no secret"
        now = self._clock()
        self._roll_day(state, now)
        if state.retired_until > now:
            return f"retired: {state.reason}"
        if state.cool_until > now:
            return f"cooling down: {state.reason}"
        if state.tokens_used + estimated_tokens > state.daily_tokens:
            return "over its daily token cap"
        return None

    def pick(self, ordered: Sequence[str], *, avoid: set[str], estimated_tokens: int = 0) -> str | None:
        """The first usable key in `ordered`, preferring keys not in `avoid`."""
        fallback = None
        for name in ordered:
            if self.usable(name, estimated_tokens) is None:
                if name not in avoid:
                    return name
                fallback = fallback or name
        return fallback

    def retire(self, name: str, reason: str) -> None:
        """Take a key out of use until the budget day ends (bad, revoked or over its limit)."""
        state = self._states[name]
        state.retired_until, state.reason = state.day_end, reason
        log.warning("key %s retired for the day: %s", name, reason)

    def retire_until(self, name: str, until: float, reason: str) -> None:
        """Take a key out of use until `until` (epoch s; infinity: for as long as this process runs).

        For a limit of OpenRouter's own (the key's limit, a guardrail or workspace budget), which
        resets on its own clock rather than at the end of Lyra's budget day.
        """
        state = self._states[name]
        state.retired_until, state.reason = max(until, self._clock()), reason
        end = "for good" if math.isinf(until) else f"{datetime.fromtimestamp(until, UTC):%Y-%m-%dT%H:%M}Z"
        when = end if math.isinf(until) else f"until {end}"
        log.warning("key %s retired %s: %s", name, when, reason)

    def retired_until(self, name: str) -> float | None:
        """When a retired key comes back into use (epoch s; infinity: never), None if it is not retired."""
        state = self._states[name]
        return state.retired_until if state.retired_until > self._clock() else None

    def now(self) -> float:
        """The pool's clock (epoch s), which retirements are measured against."""
        return self._clock()

    def cool(self, name: str, seconds: float, reason: str) -> None:
        """Rest a key for a while (out of credit for this request size, rate-limited)."""
        state = self._states[name]
        state.cool_until, state.reason = self._clock() + seconds, reason
        log.info("key %s cooling for %.0fs: %s", name, seconds, reason)

    def seconds_to_day_end(self, name: str) -> float:
        return max(0.0, self._states[name].day_end - self._clock())

    def add_tokens(self, name: str, tokens: int) -> None:
        state = self._states.get(name)
        if state is not None:
            self._roll_day(state, self._clock())
            state.tokens_used += tokens

    def _roll_day(self, state: KeyState, now: float) -> None:
        if now >= state.day_end:
            state.day_end = next_day_start(now, self._day_hour)
            state.tokens_used = 0

    def status(self) -> list[KeyStatus]:
        return [
            KeyStatus(name=s.name, available=self.usable(s.name) is None,
                      reason=self.usable(s.name) or "", tokens_used=s.tokens_used,
                      daily_tokens=s.daily_tokens)
            for s in self._states.values()
        ]
