"""The budget governor: reserve the worst case before each attempt, settle the real cost after."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from lyra.caps import Cap
from lyra.catalog.models import Catalog, ModelInfo
from lyra.config import Settings
from lyra.config.priority import RANK, PriorityTable
from lyra.config.upstreams import keyless_key
from lyra.days import budget_day, day_bounds
from lyra.errors import BudgetExceeded, StateReset, StateUnavailable
from lyra.ids import new_id
from lyra.ledger import SpendTotals
from lyra.log import get_logger
from lyra.money import format_usd, usd_to_nanos
from lyra.routing.policy import RoutePlan
from lyra.routing.router import AttemptContext, AttemptUsage
from lyra.state.base import CapUsage, Charge, Refusal, StateBackend
from lyra.types import CompletionRequest

log = get_logger("lyra.budget.governor")

_SETTLE_POLL_S = 0.05


@dataclass(frozen=True, slots=True)
class Ticket:
    """A held reservation on a budget day's caps: settle it with commit or release."""

    reservation_id: str
    day: str
    caps: tuple[Cap, ...]


@dataclass(frozen=True, slots=True)
class CapLine:
    """One cap's state for `lyra budget` and the gateway; `name` is the cap's label."""

    name: str
    limit: int
    committed: int
    reserved: int
    unit: str = "usd"

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.committed - self.reserved)

    @property
    def cap(self) -> Cap:
        return Cap.parse(self.name)


def tier_caps(settings: Settings) -> dict[str, int]:
    """Each tier's daily cap in nano-dollars: its share of the global daily budget."""
    b = settings.budget
    return {n: usd_to_nanos(b.daily_usd * t.budget_share) for n, t in settings.tiers.items()}


class BudgetGovernor:
    """Holds every applicable cap for each attempt; refuses with BudgetExceeded before any call."""

    def __init__(
        self,
        settings: Settings,
        catalog: Catalog,
        backend: StateBackend,
        *,
        reservation_ttl_s: float = 300.0,
        clock: Callable[[], float] = time.time,
        day_spend: Callable[[float, float], SpendTotals] | None = None,
        forecast: PaceForecast | None = None,
    ) -> None:
        self._settings = settings
        self._catalog = catalog
        self.backend = backend
        self._ttl = reservation_ttl_s
        self._clock = clock
        self._settled = asyncio.Condition()
        self._waiting = 0
        # What the ledger says was spent between two instants: the source a lost state is rebuilt from.
        self._day_spend = day_spend
        self._recovering = asyncio.Lock()
        self._day, self._day_start, self._day_end = "", 0.0, 0.0
        # With a ledger: steps a tier down early when today's burn rate would pass its cap before
        # the day ends, instead of hitting the wall at 23:00.
        self.forecast = forecast
        b = settings.budget
        self.daily = usd_to_nanos(b.daily_usd)
        self.reserve_slice = usd_to_nanos(b.daily_usd * b.reserve_share)
        self.low_budget = usd_to_nanos(b.low_budget_usd)
        self.tier_caps = tier_caps(settings)
        self.key_caps = {n: usd_to_nanos(k.daily_usd) for n, k in settings.keys.items()}
        self.key_tokens = {n: k.daily_tokens for n, k in settings.keys.items()}
        self.client_caps = {n: usd_to_nanos(c.daily_usd) for n, c in settings.clients.items()}
        self.upstream_caps = {n: usd_to_nanos(u.daily_usd) for n, u in settings.upstreams.items()
                              if u.daily_usd is not None}
        # An upstream's spend in the ledger is its keys' (a keyless one's attempts carry its pseudo key).
        self._upstream_keys = {n: (*u.keys,) if u.keys else (keyless_key(n),)
                               for n, u in settings.upstreams.items() if n in self.upstream_caps}
        self.priorities = PriorityTable.of_settings(settings)
        self._tier_of_model: dict[str, str] = {}
        for tier_name, tier in settings.tiers.items():
            for model_id in tier.models:
                self._tier_of_model.setdefault(model_id, tier_name)

    def day(self) -> str:
        """Today's budget day id, recomputed only when the day rolls over."""
        now = self._clock()
        if now >= self._day_end or now < self._day_start:
            self._day = budget_day(now, self._settings.budget.day_starts_utc_hour)
            self._day_start, self._day_end = day_bounds(self._day, self._settings.budget.day_starts_utc_hour)
        return self._day

    async def open_state(self) -> None:
        """Join the shared state's epoch, or rebuild today's spend from the ledger into a new one.

        A state that already has an epoch is authoritative; the ledger only raises its caps to
        what it recorded (a state that lost its last writes). A state without one (new, restarted
        empty, flushed) gets today's spend from the ledger before anything is admitted.
        """
        epoch = await self.backend.epoch()
        values = await self._ledger_values()
        if epoch is None:
            epoch = await self.backend.install_epoch(new_id(), values)
        elif values:
            await self.backend.seed_committed(values)
        self.backend.expected_epoch = epoch

    async def _recover(self) -> None:
        """After StateReset: adopt the epoch another process rebuilt, or rebuild it from the ledger."""
        stale = self.backend.expected_epoch
        async with self._recovering:
            if self.backend.expected_epoch != stale:
                return  # another request of this process rebuilt it while this one waited
            current = await self.backend.epoch()
            if current is None:
                if self._day_spend is None:
                    raise StateUnavailable("the budget state was reset and there is no ledger to rebuild "
                                           "today's spend from; refusing every call")
                current = await self.backend.install_epoch(new_id(), await self._ledger_values())
                log.warning("the budget state was reset: today's spend was rebuilt from the ledger")
            self.backend.expected_epoch = current

    async def _ledger_values(self) -> dict[str, int]:
        if self._day_spend is None:
            return {}
        day = self.day()
        start, end = day_bounds(day, self._settings.budget.day_starts_utc_hour)
        try:
            totals = await asyncio.to_thread(self._day_spend, start, end)
        except Exception as exc:  # any database failure: the state cannot be rebuilt, so refuse
            raise StateUnavailable(f"today's spend cannot be read from the ledger ({type(exc).__name__}); "
                                   "refusing until it can") from exc
        return {cap: value for cap, value in self.seed_values(day, totals).items() if value}

    def privileged(self, request: CompletionRequest) -> bool:
        """Whether a call may spend the reserved slice: a configured privileged task, or an emergency
        (a request asking for "emergency", or a task whose priority is "emergency")."""
        return (request.task in self._settings.budget.privileged_tasks
                or self.priorities.level(request) == "emergency")

    def worst_case(self, model: ModelInfo, prompt_tokens: int, max_tokens: int) -> int:
        """The most this attempt can cost: the prompt estimate plus max_tokens, at list price."""
        return model.cost_nanos(prompt_tokens, max_tokens, round_up=True)

    def charged_tier(self, plan: RoutePlan, model: ModelInfo | str) -> str:
        """The tier whose share pays for `model`: the plan's, unless it stepped down to another tier."""
        model_id = model if isinstance(model, str) else model.id
        if plan.tier is not None and model_id in self._settings.tiers[plan.tier].models:
            return plan.tier
        fallback = plan.tier or (model.tier if isinstance(model, ModelInfo) else "")
        return self._tier_of_model.get(model_id) or fallback

    async def acquire(self, ctx: AttemptContext, deadline: float) -> Ticket:
        day = self.day()
        worst = ctx.worst()  # n choices, reasoning included; or CostUnbounded
        cost, tokens = worst.cost_nanos, worst.prompt_tokens + worst.completion_tokens
        privileged = self.privileged(ctx.request)
        tier = self.charged_tier(ctx.plan, ctx.model)
        tier_limit = self.tier_caps.get(tier, self.daily)
        limits = [
            (Cap.daily(), self.daily if privileged else self.daily - self.reserve_slice),
            (Cap.tier(tier), tier_limit + (self.reserve_slice if privileged else 0)),
        ]
        if ctx.key_name in self.key_caps:  # a keyless upstream's pseudo key has no caps of its own
            limits += [(Cap.key(ctx.key_name), self.key_caps[ctx.key_name]),
                       (Cap.key_tokens(ctx.key_name), self.key_tokens[ctx.key_name])]
        upstream = self._settings.upstream_of(ctx.model.id) if self.upstream_caps else None
        if upstream in self.upstream_caps:
            limits.append((Cap.upstream(upstream), self.upstream_caps[upstream]))
        client = ctx.request.client
        if client is not None and client in self.client_caps:
            limits.append((Cap.client(client), self.client_caps[client]))
        charges = [Charge(cap.storage_key(day), limit, tokens if cap.unit == "tokens" else cost)
                   for cap, limit in limits]
        reservation = new_id()
        while (refusal := await self._reserve(reservation, charges)) is not None:
            await self._wait_for_settlement(refusal, ctx, day, deadline)
        return Ticket(reservation, day, tuple(cap for cap, _ in limits))

    async def _reserve(self, reservation: str, charges: list[Charge]) -> Refusal | None:
        try:
            return await self.backend.reserve(reservation, charges, self._ttl)
        except StateReset:
            await self._recover()
        return await self.backend.reserve(reservation, charges, self._ttl)

    async def _wait_for_settlement(self, refusal: Refusal, ctx: AttemptContext, day: str,
                                   deadline: float) -> None:
        """Wait while other calls' reservations are what blocks; refuse when spend itself does.

        Worst-case reservations are several times the real cost, so a burst would otherwise be
        refused while most of the cap is only held, not spent.
        """
        committed = (await self.backend.usage([refusal.cap]))[refusal.cap].committed
        if committed + refusal.amount > refusal.limit or time.monotonic() >= deadline:
            raise self._refused(refusal, ctx, day)
        self._waiting += 1
        try:
            async with self._settled:
                timeout = min(_SETTLE_POLL_S, max(0.0, deadline - time.monotonic()))
                await asyncio.wait_for(self._settled.wait(), timeout)
        except TimeoutError:
            pass  # another process may have settled: look again
        finally:
            self._waiting -= 1

    def _refused(self, refusal: Refusal, ctx: AttemptContext, day: str) -> BudgetExceeded:
        _, cap = Cap.from_storage_key(refusal.cap)
        if cap.unit == "tokens":
            detail = f"{refusal.used:,} of {refusal.limit:,} tokens used, {refusal.amount:,} needed"
        else:
            detail = (f"{format_usd(refusal.used)} of {format_usd(refusal.limit)} used or held, "
                      f"worst case {format_usd(refusal.amount)} needed")
        _, resets_at = day_bounds(day, self._settings.budget.day_starts_utc_hour)
        return BudgetExceeded(f"budget cap {cap.label} reached for {ctx.model.id} via key {ctx.key_name}: "
                              f"{detail}", cap=cap.label, unit=cap.unit, limit=refusal.limit,
                              used=refusal.used, needed=refusal.amount, resets_at=resets_at)

    async def release(self, ticket: Ticket, ctx: AttemptContext, usage: AttemptUsage | None) -> None:
        if usage is None:
            await self.backend.release(ticket.reservation_id)
        else:
            tokens = usage.prompt_tokens + usage.completion_tokens
            actual = {cap.storage_key(ticket.day): tokens if cap.unit == "tokens" else usage.cost_nanos
                      for cap in ticket.caps}
            await self.backend.commit(ticket.reservation_id, actual)
        if self._waiting:
            async with self._settled:
                self._settled.notify_all()

    async def adjust(self, plan: RoutePlan, request: CompletionRequest) -> RoutePlan:
        """Step down to cheaper candidates as the day's or the tier's budget runs low."""
        if request.model is not None and request.task is None and request.tier is None:
            return plan  # an explicit model is the caller's choice; caps still apply
        day = self.day()
        tier = plan.tier
        caps = [Cap.daily().storage_key(day)] + ([Cap.tier(tier).storage_key(day)] if tier else [])
        used = await self.backend.usage(caps)
        global_left = self.daily - _used(used, caps[0])
        privileged = self.privileged(request)
        urgent = self.priorities.rank(request) <= RANK["high"]  # keeps its tier while the share lasts
        if global_left < self.low_budget and not privileged and not urgent:
            return self._free_plan(plan)
        if tier is None:
            return plan
        tier_left = self.tier_caps[tier] - _used(used, caps[1])
        on_pace_to_pass = self.forecast is not None and self.forecast.over_pace(tier)
        if tier_left < self.tier_caps[tier] // 4 or on_pace_to_pass:
            prompt = 1000
            by_price = sorted(plan.models, key=lambda m: self.worst_case(m, prompt, plan.max_tokens or 1000))
            models = tuple(by_price)
            lower = self._settings.budget.step_down.get(tier)
            if lower and lower in self._settings.tiers and tier_left < self.worst_case(
                by_price[0], prompt, plan.max_tokens or by_price[0].max_output
            ):
                extra = [self._catalog.get(m) for m in self._settings.tiers[lower].models]
                models += tuple(m for m in extra if m not in models)
            log.info("tier %s has %s left%s: stepping down to cheaper models", tier, format_usd(tier_left),
                     " and is on pace to pass its cap today" if on_pace_to_pass else "")
            return _replace_models(plan, models)
        return plan

    def _free_plan(self, plan: RoutePlan) -> RoutePlan:
        free = self._catalog.get(self._settings.budget.low_budget_model)
        keys = plan.keys
        fast = self._settings.tiers.get("fast")
        if fast is not None:
            keys = tuple(dict.fromkeys([*plan.keys, *fast.keys]))
        log.info("day budget below %s: using %s", format_usd(self.low_budget), free.id)
        return dataclasses.replace(plan, models=(free,), keys=keys)

    def caps(self) -> list[tuple[Cap, int]]:
        """Every cap the governor keeps, with its daily limit (nano-dollars or tokens)."""
        found: list[tuple[Cap, int]] = [(Cap.daily(), self.daily)]
        found += [(Cap.tier(n), c) for n, c in self.tier_caps.items()]
        found += [(Cap.key(n), c) for n, c in self.key_caps.items()]
        found += [(Cap.key_tokens(n), c) for n, c in self.key_tokens.items()]
        found += [(Cap.client(n), c) for n, c in self.client_caps.items()]
        found += [(Cap.upstream(n), c) for n, c in self.upstream_caps.items()]
        return found

    async def snapshot(self) -> list[CapLine]:
        """Every cap of today with its committed and reserved amounts."""
        day = self.day()
        named = self.caps()
        used = await self.backend.usage([cap.storage_key(day) for cap, _ in named])
        return [CapLine(cap.label, limit, used.get(cap.storage_key(day), CapUsage()).committed,
                        used.get(cap.storage_key(day), CapUsage()).reserved, cap.unit)
                for cap, limit in named]

    def seed_values(self, day: str, totals: SpendTotals) -> dict[str, int]:
        """Cap values for a day rebuilt from the ledger's totals."""
        values = {Cap.daily().storage_key(day): totals.total_nanos}
        values.update({Cap.tier(k).storage_key(day): v for k, v in totals.by_tier.items()})
        values.update({Cap.key(k).storage_key(day): v for k, v in totals.by_key.items()})
        values.update({Cap.key_tokens(k).storage_key(day): v for k, v in totals.tokens_by_key.items()})
        values.update({Cap.client(k).storage_key(day): v for k, v in totals.by_client.items()})
        values.update({Cap.upstream(n).storage_key(day): sum(totals.by_key.get(k, 0) for k in keys)
                       for n, keys in self._upstream_keys.items()})
        return values


class PaceForecast(Protocol):
    """Whether a tier is on course to pass its cap today (see lyra.forecast.SpendForecast)."""

    def over_pace(self, tier: str) -> bool: ...


def _used(usage: dict[str, CapUsage], cap: str) -> int:
    found = usage.get(cap)
    return found.committed + found.reserved if found else 0


def _replace_models(plan: RoutePlan, models: tuple[ModelInfo, ...]) -> RoutePlan:
    return dataclasses.replace(plan, models=models)  # the tier's profile goes with it
