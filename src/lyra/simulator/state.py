"""The simulator's mutable state: keys and their spend, generations, statistics, faults."""

from __future__ import annotations

import asyncio
import hashlib
import random
import string
import time
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from lyra.catalog.models import Catalog, ModelInfo
from lyra.simulator.faults import FaultBook
from lyra.simulator.options import SimulatorOptions
from lyra.simulator.prompt_cache import PromptCache

_ALNUM = string.ascii_letters + string.digits
_MAX_GENERATIONS = 50_000  # kept for /generation; older ones are forgotten
_PREFERRED_DEFAULT_MODEL = "openai/gpt-4o-mini"
_ZERO = Decimal(0)
_KEPT_REQUESTS = 256


def key_label(token: str) -> str:
    """A short, non-secret name for a bearer token: the first 12 hex digits of its sha256."""
    return hashlib.sha256(token.encode()).hexdigest()[:12]


def mask_token(token: str) -> str:
    """The token as OpenRouter labels keys ("sk-or-v1-au7...890"); never the whole of it."""
    prefix = "sk-or-v1-" if token.startswith("sk-or-v1-") else ""
    body = token[len(prefix) :]
    if len(body) < 10:  # too short to show any of it without giving most of it away
        return prefix + "..."
    return f"{prefix}{body[:3]}...{body[-3:]}"


def utc_today() -> date:
    return datetime.now(UTC).date()


@dataclass
class SimulatorStats:
    """What the simulator has seen; `by_key` is keyed by `key_label`, never by the token."""

    calls: int = 0
    by_model: Counter[str] = field(default_factory=Counter)
    by_key: Counter[str] = field(default_factory=Counter)
    faults_fired: Counter[str] = field(default_factory=Counter)
    total_cost_nanos: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "by_model": dict(self.by_model),
            "by_key": dict(self.by_key),
            "faults_fired": dict(self.faults_fired),
            "total_cost_nanos": self.total_cost_nanos,
        }


@dataclass(slots=True)
class KeyAccount:
    """One bearer token's credit limit and spend in exact USD; the limit resets at 00:00 UTC."""

    label: str
    limit_usd: Decimal | None
    usage_usd: Decimal = _ZERO
    daily_usd: Decimal = _ZERO
    day: date = field(default_factory=utc_today)
    revoked: bool = False
    free_window: deque[float] = field(default_factory=deque)  # monotonic times of :free calls

    def roll(self) -> None:
        today = utc_today()
        if today != self.day:
            self.day = today
            self.daily_usd = _ZERO

    def remaining_usd(self) -> Decimal | None:
        if self.limit_usd is None:
            return None
        self.roll()
        return self.limit_usd - self.daily_usd

    def charge(self, cost_usd: Decimal) -> None:
        self.roll()
        self.usage_usd += cost_usd
        self.daily_usd += cost_usd


@dataclass(slots=True)
class GenerationRecord:
    """What /generation reports about one completion."""

    id: str
    model: str
    provider: str
    created: float
    streamed: bool
    latency_ms: int
    generation_ms: int
    prompt_tokens: int
    completion_tokens: int
    cost: Decimal
    finish_reason: str
    native_finish_reason: str
    user: str | None
    ready_at: float  # monotonic time from which /generation answers
    cancelled: bool = False  # the client hung up mid-stream (billed as aborts.py says)
    cached_tokens: int = 0  # prompt tokens read from the provider's prompt cache
    cache_discount: Decimal | None = None  # what the cache saved (USD), as /generation reports it
    lookups: int = 0  # /generation lookups answered 404 so far (generation_lag_lookups)


class SimulatorState:
    """Everything the request handlers share."""

    def __init__(self, catalog: Catalog, options: SimulatorOptions) -> None:
        self.catalog = catalog
        self.options = options
        self.rng = random.Random(options.seed)
        # Ids must be unique across simulators that share a seed (a ledger may hold both).
        self._id_rng = random.Random()
        self.stats = SimulatorStats()
        self.faults = FaultBook(random.Random(options.seed + 1), self.stats.faults_fired)
        self.accounts: dict[str, KeyAccount] = {}
        self.generations: OrderedDict[str, GenerationRecord] = OrderedDict()
        self.stopping = asyncio.Event()
        self.default_model = _default_model(catalog)
        self._streams = 0
        self._default_limit = _usd(options.default_key_limit_usd)
        # The last chat request bodies as received (newest last), for tests that check the wire.
        self.received: deque[dict[str, Any]] = deque(maxlen=_KEPT_REQUESTS)
        self.prompt_cache = PromptCache() if options.prompt_caching else None

    def account(self, token: str) -> KeyAccount:
        found = self.accounts.get(token)
        if found is None:
            found = KeyAccount(label=key_label(token), limit_usd=self._default_limit)
            self.accounts[token] = found
        return found

    def set_key_limit(self, token: str, usd: float | None) -> None:
        self.account(token).limit_usd = _usd(usd)

    def revoke_key(self, token: str) -> None:
        self.account(token).revoked = True

    def new_generation_id(self) -> str:
        suffix = "".join(self._id_rng.choices(_ALNUM, k=20))
        return f"gen-{int(time.time())}-{suffix}"

    def next_usage_form(self) -> str:
        """Which final-usage-chunk form the next stream ends with."""
        form = self.options.final_usage_form
        if form != "alternate":
            return form
        self._streams += 1
        return "empty_choices" if self._streams % 2 else "empty_delta"

    def record(self, record: GenerationRecord) -> None:
        self.generations[record.id] = record
        if len(self.generations) > _MAX_GENERATIONS:
            self.generations.popitem(last=False)

    def generation(self, generation_id: str) -> GenerationRecord | None:
        """A finished generation, once its stats would be visible on the real service."""
        found = self.generations.get(generation_id)
        if found is None or time.monotonic() < found.ready_at:
            return None
        if found.lookups < self.options.generation_lag_lookups:
            found.lookups += 1
            return None
        return found


def _usd(amount: float | None) -> Decimal | None:
    # Through str() so that 0.01 stays 0.01 rather than its binary approximation.
    return None if amount is None else Decimal(str(amount))


def _default_model(catalog: Catalog) -> ModelInfo | None:
    """The model used when a request names none, as the account default would be."""
    preferred = catalog.find(_PREFERRED_DEFAULT_MODEL)
    if preferred is not None and not preferred.retired:
        return preferred
    return next((m for m in catalog if not m.retired), None)
