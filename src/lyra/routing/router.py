"""The attempt loop: for each candidate model and key, guard, call, classify, retry or fall back."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import math
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from lyra.caps import Cap, CapScope
from lyra.catalog.estimate import (
    PromptShape,
    WorstCase,
    estimate_text_tokens,
    measure_prompt,
    reasoning_bound,
    worst_case,
)
from lyra.catalog.models import ModelInfo
from lyra.catalog.usage_cost import usage_cost_nanos
from lyra.errors import (
    BudgetExceeded,
    ConfigError,
    FailureKind,
    LyraError,
    NoModelAvailable,
    RateLimited,
    Unavailable,
    UpstreamError,
)
from lyra.failures import FailureAction, FailurePolicy
from lyra.ids import new_id
from lyra.log import get_logger
from lyra.money import usd_to_nanos
from lyra.openrouter.transport import OpenRouterTransport
from lyra.openrouter.wire import ChatRequest, Usage
from lyra.routing.choices import ChoiceBuilder
from lyra.routing.hedge import Hedger, Lane, Race, admit_now
from lyra.routing.keys import KeyPool, limit_period_end
from lyra.routing.policy import RoutePlan, RoutePolicy
from lyra.routing.profiles import for_wire, profile_record
from lyra.routing.retry import Backoff, CircuitBreaker
from lyra.types import Attempt, Choice, ChoiceDelta, Completion, CompletionRequest
from lyra.upstreams import Upstreams, UpstreamTransport

log = get_logger("lyra.routing.router")

# Failures that say something about the key, not the model: they never count against a model.


@dataclass(slots=True, kw_only=True)
class AttemptContext:
    """Everything a guard needs to admit one attempt: who, what and the worst case."""

    request: CompletionRequest
    plan: RoutePlan
    model: ModelInfo
    key_name: str
    number: int
    prompt_tokens: int
    max_tokens: int
    prompt: PromptShape
    n: int = 1  # choices asked for: each may produce max_tokens (and its reasoning) billed as output
    reasoning_tokens: int = 0  # the most reasoning can add beside max_tokens (reasoning_bound)
    kind: Literal["primary", "hedge"] = "primary"  # a hedge races a slow primary (lyra.routing.hedge)

    def worst(self) -> WorstCase:
        """The most this attempt can use and cost: the prompt once, n choices of output each."""
        one = worst_case(self.model, self.prompt, max_tokens=self.max_tokens,
                         reasoning_max_tokens=self.reasoning_tokens)
        if self.n == 1:
            return one
        return WorstCase(prompt_tokens=one.prompt_tokens, completion_tokens=one.completion_tokens * self.n,
                         cost_nanos=one.cost_nanos * self.n)


@dataclass(slots=True, frozen=True)
class AttemptUsage:
    """What an attempt really used, for settling reservations."""

    prompt_tokens: int
    completion_tokens: int
    cost_nanos: int
    cost_estimated: bool


class Guard(Protocol):
    """Admits an attempt before the call (reserve, take a token) and settles it after."""

    async def acquire(self, ctx: AttemptContext, deadline: float) -> Any: ...

    async def release(self, ticket: Any, ctx: AttemptContext, usage: AttemptUsage | None) -> None: ...


class Recorder(Protocol):
    """Receives every attempt and the end of every request (ledger, metrics)."""

    def attempt(
        self, request_id: str, request: CompletionRequest, plan: RoutePlan, attempt: Attempt
    ) -> None: ...

    def completion(self, request_id: str, request: CompletionRequest, completion: Completion) -> None: ...

    def failure(
        self, request_id: str, request: CompletionRequest, plan: RoutePlan, error: LyraError
    ) -> None: ...


@runtime_checkable
class StreamRecorder(Protocol):
    """A recorder that also hears when a stream's first text reaches its caller (time to first token)."""

    def first_text(self, request_id: str, request: CompletionRequest, plan: RoutePlan, model: str,
                   seconds: float) -> None: ...


class Planner(Protocol):
    """Adjusts a route plan before the first attempt (budget step-down, adaptive preference)."""

    async def adjust(self, plan: RoutePlan, request: CompletionRequest) -> RoutePlan: ...


@dataclass(frozen=True, slots=True)
class Answer:
    """What one successful attempt returned, streamed or not."""

    text: str
    usage: Usage | None
    served: str | None
    provider: str | None
    generation_id: str | None
    finish_reason: str | None
    choices: tuple[Choice, ...] = ()
    service_tier: str | None = None


@dataclass(slots=True)
class StreamProgress:
    """What a stream's caller can know before it ends: the model serving the current attempt."""

    model: str | None = None


@dataclass(slots=True)
class AttemptRun:
    """One attempt in flight: when it began, whether text reached the caller, the generation id."""

    begun: float
    sent_text: bool = False
    generation_id: str | None = None


AttemptCall = Callable[[AttemptContext, float, AttemptRun], AsyncIterator["ChoiceDelta | Answer"]]


@dataclass(slots=True)
class _Loop:
    """State of one request's walk over models and keys."""

    request: CompletionRequest
    plan: RoutePlan
    deadline: float
    prompt: PromptShape
    prompt_tokens: int
    request_id: str
    attempts: list[Attempt] = field(default_factory=list)
    model_index: int = 0
    tries_on_model: int = 0
    avoid_keys: set[str] = field(default_factory=set)
    dead_keys: set[str] = field(default_factory=set)
    refusal: LyraError | None = None
    pending_delay: float = 0.0
    pin_key: str | None = None  # the key the next attempt must use (a wait for the same key's retry)
    weight_ceiling: int | None = None  # OpenRouter refused a request this heavy: only lighter ones now


class Router:
    """Routes a request to a served completion, visiting models and keys in policy order."""

    def __init__(
        self,
        *,
        policy: RoutePolicy,
        transport: OpenRouterTransport,
        keys: KeyPool,
        attempts_per_model: int = 3,
        deadline_s: float = 30.0,
        backoff: Backoff | None = None,
        breaker: CircuitBreaker | None = None,
        failure_policy: FailurePolicy | None = None,
        guards: Sequence[Guard] = (),
        recorders: Sequence[Recorder] = (),
        planners: Sequence[Planner] = (),
        barriers: Sequence[Callable[[], Awaitable[None]]] = (),
        sleep: Callable[[float], Awaitable[None]] | None = None,
        upstreams: Upstreams | None = None,
        hedger: Hedger | None = None,
    ) -> None:
        self.policy = policy
        self.transport = transport
        # The `[upstreams.*]` endpoints: a `NAME:model-id` goes there, every other id to `transport`.
        self.upstreams = upstreams or Upstreams()
        self.keys = keys
        self.breaker = breaker or CircuitBreaker()
        self.backoff = backoff or Backoff()
        self.failure_policy = failure_policy or FailurePolicy()
        self._attempts_per_model = attempts_per_model
        self._deadline_s = deadline_s
        self.guards: list[Guard] = list(guards)
        self.recorders: list[Recorder] = list(recorders)
        self.planners: list[Planner] = list(planners)
        # Awaited after a billed attempt is recorded and before its reservation is settled and its
        # answer returned: the ledger's group commit. Recording first means that a budget state
        # lost in between is rebuilt from a ledger that already holds the attempt.
        self.barriers = list(barriers)
        # How the loop waits between attempts (backoff, Retry-After): tests pass one that records.
        self.sleep: Callable[[float], Awaitable[None]] = sleep or asyncio.sleep
        self.hedger = hedger  # races a slow attempt of a hedging tier against a second one

    async def complete(self, request: CompletionRequest) -> Completion:
        """Run the attempt loop for a non-streamed completion."""
        sink: list[Completion] = []
        async for _ in self._drive(request, self._chat_attempt, sink):
            pass  # a non-streamed attempt yields no text
        return sink[0]

    def stream(self, request: CompletionRequest, sink: list[Completion],
               progress: StreamProgress | None = None) -> AsyncGenerator[ChoiceDelta, None]:
        """Yield each choice's pieces as they arrive; retries happen only before the first piece.

        The final Completion is appended to `sink` when the stream ends; `progress.model` names the
        model serving the attempt under way from its first chunk on, before any text is yielded.
        """
        watched = progress or StreamProgress()

        def call(ctx: AttemptContext, timeout_s: float,
                 run: AttemptRun) -> AsyncIterator[ChoiceDelta | Answer]:
            return self._stream_attempt(ctx, timeout_s, run, watched)

        return self._drive(request, call, sink)

    async def _drive(self, request: CompletionRequest, call: AttemptCall,
                     sink: list[Completion]) -> AsyncGenerator[ChoiceDelta, None]:
        """The one attempt loop: admit, call, then settle a failure or a success, or give up.

        `call` runs one attempt, yielding text pieces (a stream) and finally its `Answer`. Once text
        has reached the caller a failure is final: a retry would repeat it.
        """
        loop, started = await self._start(request), time.monotonic()
        while (ctx := await self._next(loop)) is not None:
            ticket = await self._admit(loop, ctx)
            if ticket is None:
                continue
            run = AttemptRun(begun=time.monotonic())
            answer: Answer | None = None
            race = Race(Lane(ctx, ticket, run))
            items = self._raced(loop, race, call)
            try:
                async for item in items:
                    ctx, ticket, run = race.parts()  # a hedge that answered first serves the rest
                    if isinstance(item, Answer):
                        answer = item
                    else:
                        if not run.sent_text:
                            self._first_text(loop, ctx, time.monotonic() - started)
                        run.sent_text = True
                        yield item
            except UpstreamError as exc:
                ctx, ticket, run = race.parts()
                charged = self._ambiguous_usage(ctx, exc)
                try:
                    self._failed(loop, ctx, exc, time.monotonic() - run.begun, charged, run.generation_id)
                    if run.sent_text:
                        self._notify_failure(loop, exc)
                        raise
                finally:
                    await self._settle(ticket, ctx, charged)
                continue
            except BaseException:  # the caller hung up or was cancelled mid-call
                await _close(items)
                ctx, ticket, run = race.parts()
                await self._abandoned(loop, ctx, ticket, run.begun, run.generation_id)
                raise
            ctx, ticket, run = race.parts()
            assert answer is not None, "an attempt ends with its answer"
            usage = self._usage(ctx, answer.usage, _generated(answer))
            sink.append(self._succeeded(loop, ctx, usage, answer, begun=run.begun, started=started))
            await self._finish(ticket, ctx, usage)
            return
        raise self._give_up(loop)

    def _raced(self, loop: _Loop, race: Race, call: AttemptCall) -> AsyncIterator[ChoiceDelta | Answer]:
        """The attempt's pieces; raced against a hedge when its tier hedges (lyra.routing.hedge)."""
        lane = race.lane
        lane.items = call(lane.ctx, self._attempt_timeout(loop), lane.run)
        if self.hedger is None or loop.plan.tier is None or not self.hedger.hedges(loop.plan.tier):
            return lane.items

        async def launch() -> Lane | None:
            return await self._hedge(loop, race.lane.ctx, call)

        async def lost(loser: Lane, error_kind: str) -> None:
            await self._abandoned(loop, loser.ctx, loser.tickets, loser.run.begun, loser.run.generation_id,
                                  error_kind=error_kind)

        async def failed(lane: Lane, exc: UpstreamError) -> None:  # the other lane races on
            charged = self._ambiguous_usage(lane.ctx, exc)
            self._failed(loop, lane.ctx, exc, time.monotonic() - lane.run.begun, charged,
                         lane.run.generation_id, act=False)
            await self._settle(lane.tickets, lane.ctx, charged)

        return self.hedger.race(race, tier=loop.plan.tier, streamed=call != self._chat_attempt,
                                launch=launch, lost=lost, failed=failed)

    async def _hedge(self, loop: _Loop, ctx: AttemptContext, call: AttemptCall) -> Lane | None:
        """A second attempt racing `ctx`: the next model of the plan (else the same one), on another key
        if one is usable; admitted without waiting, or None when a guard or no key says no."""
        later = [m for m in loop.plan.models[loop.model_index + 1:] if self.breaker.allows(m.id)]
        model = later[0] if later else ctx.model
        max_tokens = loop.plan.max_tokens or model.max_output
        allowed = self.upstreams.keys_for(model.id, loop.plan.keys)  # an upstream's model: its own keys
        order = [k for k in self.keys.order(allowed, round_robin=loop.plan.round_robin)
                 if k not in loop.dead_keys]
        key = self.keys.pick(order, avoid={ctx.key_name},
                             estimated_tokens=loop.prompt_tokens + max_tokens * loop.request.n)
        if key is None:
            return None
        hedge = dataclasses.replace(ctx, model=model, key_name=key, number=ctx.number + 1, kind="hedge",
                                    max_tokens=max_tokens,
                                    reasoning_tokens=reasoning_bound(loop.request.reasoning, max_tokens))
        tickets = await admit_now(self.guards, hedge)
        if tickets is None:
            return None
        run = AttemptRun(begun=time.monotonic())
        return Lane(hedge, tickets, run, items=call(hedge, self._attempt_timeout(loop), run))

    async def _chat_attempt(self, ctx: AttemptContext, timeout_s: float,
                            run: AttemptRun) -> AsyncIterator[ChoiceDelta | Answer]:
        result = await self._transport(ctx).chat(self._body(ctx, stream=False),
                                                 api_key=self.keys.secret(ctx.key_name), timeout_s=timeout_s)
        yield Answer(text=result.text, usage=result.usage, served=result.model, provider=result.provider,
                     generation_id=result.id or None, finish_reason=result.finish_reason,
                     choices=tuple(result.choices), service_tier=result.service_tier)

    async def _stream_attempt(self, ctx: AttemptContext, timeout_s: float, run: AttemptRun,
                              progress: StreamProgress) -> AsyncIterator[ChoiceDelta | Answer]:
        built = ChoiceBuilder()
        meta: dict[str, Any] = {}
        usage_seen: Usage | None = None

        def header_id(generation_id: str) -> None:  # X-Generation-Id arrives before the first token
            run.generation_id = run.generation_id or generation_id

        async for delta in self._transport(ctx).stream(self._body(ctx, stream=True),
                                                       api_key=self.keys.secret(ctx.key_name),
                                                       timeout_s=timeout_s, on_generation_id=header_id):
            if "model" not in meta:
                meta["model"] = delta.model
                progress.model = delta.model or ctx.model.id
            meta.setdefault("provider", delta.provider)
            if run.generation_id is None:
                run.generation_id = delta.id or None
            if delta.service_tier:
                meta["service_tier"] = delta.service_tier
            if delta.usage is not None:
                usage_seen = delta.usage
            for piece in delta.choices:
                built.add(piece)
                if not piece.empty:
                    yield piece
        choices = built.choices()
        yield Answer(text=choices[0].text, usage=usage_seen, served=meta.get("model") or ctx.model.id,
                     provider=meta.get("provider"), generation_id=run.generation_id,
                     finish_reason=choices[0].finish_reason, choices=tuple(choices),
                     service_tier=meta.get("service_tier"))

    # --- the loop ----------------------------------------------------------------------

    async def _start(self, request: CompletionRequest) -> _Loop:
        plan = self.policy.plan(request)
        for planner in self.planners:
            plan = await planner.adjust(plan, request)
        plan, over_priced = plan.within_ceiling()
        deadline_s = request.deadline_s or self._deadline_s
        if isinstance(request.n, bool) or not isinstance(request.n, int) or request.n < 1:
            raise ConfigError(f"n: {request.n!r} choices; ask for 1 or more")
        prompt = measure_prompt(request.messages, tools=request.tools,
                                response_format=request.response_format)
        loop = _Loop(request=request, plan=plan, deadline=time.monotonic() + deadline_s, prompt=prompt,
                     prompt_tokens=prompt.text_tokens, request_id=new_id())
        for model_id, why in over_priced:  # never tried: over the tier's max_price
            self._skip(loop, model_id, None, f"over the tier's price ceiling: {why}", kind="over_max_price")
        if over_priced and not plan.models and plan.profile is not None:
            error = NoModelAvailable(plan.profile.refusal(over_priced), attempts=list(loop.attempts))
            self._notify_failure(loop, error)
            raise error
        return loop

    async def _next(self, loop: _Loop) -> AttemptContext | None:
        """The next model and key to try, after any backoff; None when nothing is left."""
        while loop.model_index < len(loop.plan.models):
            model = loop.plan.models[loop.model_index]
            if loop.tries_on_model >= self._attempts_per_model:
                self._next_model(loop)
                continue
            if loop.tries_on_model == 0 and not self.breaker.allows(model.id):
                self._skip(loop, model.id, None, "circuit open after repeated failures")
                self._next_model(loop)
                continue
            max_tokens = loop.plan.max_tokens or model.max_output
            if loop.tries_on_model == 0 and loop.weight_ceiling is not None:
                weight = worst_case(model, loop.prompt, max_tokens=max_tokens).cost_nanos
                if weight >= loop.weight_ceiling:
                    self._skip(loop, model.id, None, "weight_exceeds_budget: its worst case is no lighter "
                               "than the request OpenRouter's in-flight budget refused")
                    self._next_model(loop)
                    continue
            allowed = self.upstreams.keys_for(model.id, loop.plan.keys)  # an upstream's model: its own keys
            order = [k for k in self.keys.order(allowed, round_robin=loop.plan.round_robin)
                     if k not in loop.dead_keys]
            key = self.keys.pick(order, avoid=loop.avoid_keys,
                                 estimated_tokens=loop.prompt_tokens + max_tokens * loop.request.n)
            if loop.pin_key in order and self.keys.usable(loop.pin_key) is None:
                key = loop.pin_key
            loop.pin_key = None
            if key is None:
                self._skip(loop, model.id, None, "no usable key: " + self._key_reasons(loop, allowed))
                self._next_model(loop)
                continue
            if loop.pending_delay:
                remaining = loop.deadline - time.monotonic()
                if loop.pending_delay >= remaining:
                    self._skip(loop, model.id, key, "deadline too close to wait for a retry")
                    self._next_model(loop)
                    continue
                await self.sleep(loop.pending_delay)
                loop.pending_delay = 0.0
            if loop.deadline <= time.monotonic():
                return None
            loop.tries_on_model += 1
            return AttemptContext(request=loop.request, plan=loop.plan, model=model, key_name=key,
                                  number=len(loop.attempts) + 1, prompt_tokens=loop.prompt_tokens,
                                  max_tokens=max_tokens, prompt=loop.prompt, n=loop.request.n,
                                  reasoning_tokens=reasoning_bound(loop.request.reasoning, max_tokens))
        return None

    def _next_model(self, loop: _Loop) -> None:
        loop.model_index += 1
        loop.tries_on_model = 0
        loop.avoid_keys.clear()
        loop.pending_delay = 0.0
        loop.pin_key = None

    def _key_reasons(self, loop: _Loop, allowed: Sequence[str]) -> str:
        names = self.keys.order(allowed, round_robin=False)
        reasons = {name: self.keys.usable(name)
                   or ("refused earlier in this request" if name in loop.dead_keys else "avoided")
                   for name in names}
        # "key NAME": the form a gateway's client view writes out of what a client is shown.
        return ", ".join(f"key {k} ({v})" for k, v in reasons.items()) or "none allowed"

    async def _admit(self, loop: _Loop, ctx: AttemptContext) -> list[Any] | None:
        """Acquire every guard in order; on refusal record it and steer the loop."""
        tickets: list[Any] = []
        for guard in self.guards:
            try:
                tickets.append(await guard.acquire(ctx, loop.deadline))
            except (BudgetExceeded, RateLimited) as exc:
                for done, ticket in zip(reversed(self.guards[: len(tickets)]), reversed(tickets),
                                        strict=True):
                    await done.release(ticket, ctx, None)
                loop.refusal = exc
                self._skip(loop, ctx.model.id, ctx.key_name, str(exc), kind=type(exc).__name__)
                loop.tries_on_model -= 1
                refused = Cap.find(exc.cap) if isinstance(exc, BudgetExceeded) else None
                if refused is not None and refused.scope is CapScope.KEY:
                    loop.dead_keys.add(ctx.key_name)
                else:
                    self._next_model(loop)
                return None
        return tickets

    async def _finish(self, tickets: list[Any], ctx: AttemptContext, usage: AttemptUsage) -> None:
        """Make a served attempt's rows durable, then settle it; raise what failed after doing both.

        The answer was billed: whatever fails, its row is kept (the ledger spools it) and its
        reservation settled or left to expire into spent, and the caller is told to retry later.
        """
        failure: Unavailable | None = None
        for barrier in self.barriers:
            try:
                await barrier()
            except Unavailable as exc:
                failure = failure or exc
        try:
            await self._settle(tickets, ctx, usage)
        except Unavailable as exc:
            failure = failure or exc
        if failure is not None:
            raise failure

    async def _abandoned(self, loop: _Loop, ctx: AttemptContext, tickets: list[Any], begun: float,
                         generation_id: str | None, *, error_kind: str = "cancelled") -> None:
        """Book an attempt whose caller went away after it was sent at its worst case.

        OpenRouter keeps billing a cancelled request for providers that do not support
        cancellation, so the attempt may have been billed in full; the row carries the generation
        id (when one arrived) so that it can be reconciled.
        """
        worst = self._worst_usage(ctx)
        self._record(loop, Attempt(
            number=ctx.number, model=ctx.model.id, key_name=ctx.key_name, outcome="error",
            error_kind=error_kind, message=_ABANDONED.get(error_kind, _ABANDONED["cancelled"]),
            latency_s=time.monotonic() - begun, cost_nanos=worst.cost_nanos, cost_estimated=True,
            prompt_tokens=worst.prompt_tokens, completion_tokens=worst.completion_tokens,
            generation_id=generation_id, kind=ctx.kind))
        # The caller's own exception (a cancellation, a hang-up) must go on; a hold that cannot be
        # settled now expires into spent at its worst case, which is what it is booked at anyway.
        with contextlib.suppress(Unavailable):
            await self._settle(tickets, ctx, worst)

    @staticmethod
    def _worst_usage(ctx: AttemptContext) -> AttemptUsage:
        """The most an attempt can have been billed, as booked for one that may have been."""
        worst = ctx.worst()
        return AttemptUsage(worst.prompt_tokens, worst.completion_tokens, worst.cost_nanos, True)

    async def _settle(self, tickets: list[Any], ctx: AttemptContext, usage: AttemptUsage | None) -> None:
        for guard, ticket in zip(reversed(self.guards), reversed(tickets), strict=True):
            await guard.release(ticket, ctx, usage)

    def _attempt_timeout(self, loop: _Loop) -> float:
        return max(0.001, min(loop.plan.attempt_timeout_s, loop.deadline - time.monotonic()))

    def _transport(self, ctx: AttemptContext) -> OpenRouterTransport | UpstreamTransport:
        upstream = self.upstreams.get(ctx.model.id)
        return self.transport if upstream is None else upstream.transport

    def _body(self, ctx: AttemptContext, *, stream: bool) -> bytes:
        r = ctx.request
        if (upstream := self.upstreams.get(ctx.model.id)) is not None:  # no OpenRouter-only field
            return upstream.body(r, model_id=ctx.model.id, max_tokens=ctx.max_tokens,
                                 temperature=ctx.plan.temperature, stream=stream)
        provider, service_tier = self._sent(ctx)
        return ChatRequest(
            model=ctx.model.id, messages=r.messages, max_tokens=ctx.max_tokens,
            temperature=ctx.plan.temperature, response_format=r.response_format,
            provider=for_wire(provider) if provider else None, seed=r.seed, stream=stream, user=r.user,
            tools=r.tools, tool_choice=r.tool_choice, parallel_tool_calls=r.parallel_tool_calls, n=r.n,
            logprobs=r.logprobs, top_logprobs=r.top_logprobs, reasoning=r.reasoning,
            service_tier=service_tier or r.service_tier, session_id=r.session_id,
        ).encode()

    @staticmethod
    def _sent(ctx: AttemptContext) -> tuple[Mapping[str, Any] | None, str | None]:
        """The provider object and service tier an attempt sends: the caller's under the tier's profile."""
        r, profile = ctx.request, ctx.plan.profile
        if profile is None:
            return r.provider, None
        structured = r.response_format is not None
        return profile.provider_for(r.provider, structured=structured), profile.service_tier

    def _usage(self, ctx: AttemptContext, usage: Usage | None, text: str) -> AttemptUsage:
        prompt = usage.prompt_tokens if usage else ctx.prompt_tokens
        completion = usage.completion_tokens if usage else estimate_text_tokens(text)
        if usage is not None and usage.cost_usd is not None:
            return AttemptUsage(prompt, completion, usd_to_nanos(usage.cost_usd, round_up=True), False)
        if usage is None:
            if self.upstreams.get(ctx.model.id) is not None:
                return self._worst_usage(ctx)  # nothing reconciles another upstream's call: its most
            return AttemptUsage(prompt, completion, ctx.model.cost_nanos(prompt, completion, round_up=True),
                                True)
        # No usage.cost: priced from the usage as OpenRouter prices it (cache reads, reasoning). On
        # another upstream that is the bill itself: its usage at the configured prices, not an estimate.
        cost = usage_cost_nanos(ctx.model, prompt_tokens=prompt, completion_tokens=completion,
                                cached_tokens=usage.cached_tokens, reasoning_tokens=usage.reasoning_tokens,
                                cache_write_tokens=usage.cache_write_tokens)
        return AttemptUsage(prompt, completion, cost, self.upstreams.get(ctx.model.id) is None)

    def _ambiguous_usage(self, ctx: AttemptContext, exc: UpstreamError) -> AttemptUsage | None:
        """The worst case, for a failure that may still have been billed; None if it was not.

        OpenRouter does not bill errors it reports, but a timed-out or dropped call may have been
        served and charged: counting the worst case keeps every cap safe.
        """
        if not exc.maybe_billed:
            return None
        return self._worst_usage(ctx)

    def _failed(self, loop: _Loop, ctx: AttemptContext, exc: UpstreamError, latency: float,
                charged: AttemptUsage | None = None, generation_id: str | None = None, *,
                act: bool = True) -> None:
        """Record a failed attempt, then act on it as the failure policy says (unless a race goes on)."""
        exc.model, exc.key_name = ctx.model.id, ctx.key_name
        message = str(exc)
        if exc.fallback_models:
            message += "; " + self._take_fallbacks(loop, exc.fallback_models)
        self._record(loop, Attempt(
            number=ctx.number, model=ctx.model.id, key_name=ctx.key_name, outcome="error",
            error_kind=exc.kind, status=exc.status, message=message, provider=exc.provider,
            latency_s=latency, retry_after_s=exc.retry_after,
            cost_nanos=charged.cost_nanos if charged else 0, cost_estimated=charged is not None,
            prompt_tokens=charged.prompt_tokens if charged else 0,
            completion_tokens=charged.completion_tokens if charged else 0,
            generation_id=generation_id if charged else None,  # a maybe-billed one is reconciled
            kind=ctx.kind))
        if act:
            self._act(self.failure_policy.action(exc), loop, ctx, exc)

    def _act(self, action: FailureAction, loop: _Loop, ctx: AttemptContext, exc: UpstreamError) -> None:
        """Carry out the failure policy's answer: retire or rest the key, skip the model, retry or raise."""
        if action in (FailureAction.RETIRE_KEY, FailureAction.COOL_KEY, FailureAction.RETIRE_KEY_AND_RAISE):
            loop.tries_on_model -= 1  # the model did nothing wrong
            loop.dead_keys.add(ctx.key_name)
            if action is FailureAction.COOL_KEY:
                self.keys.cool(ctx.key_name, self.keys.seconds_to_day_end(ctx.key_name), str(exc))
            else:
                self._retire(ctx.key_name, exc)
            if action is FailureAction.RETIRE_KEY_AND_RAISE:
                final = _restated(exc, f"{exc.kind} spent upstream: it covers every key of the workspace, "
                                       f"so no other key is tried{_until(exc)} ({exc})")
                self._notify_failure(loop, final)
                raise final
        elif action is FailureAction.WAIT_SAME_KEY:
            wait = exc.retry_after if exc.retry_after is not None else self.backoff.delay(loop.tries_on_model)
            left = loop.deadline - time.monotonic()
            if wait >= left:
                final = _restated(exc, f"{exc.kind}: OpenRouter asks to wait {wait:g}s before a retry, more "
                                       f"than the {max(0.0, left):.1f}s left before the deadline ({exc})")
                self._notify_failure(loop, final)
                raise final
            loop.pending_delay, loop.pin_key = wait, ctx.key_name
            log.info("attempt %d on %s: %s; retrying the same key in %gs", ctx.number, ctx.model.id,
                     exc.kind, wait)
        elif action is FailureAction.STEP_DOWN:
            weight = self._worst_usage(ctx).cost_nanos
            loop.weight_ceiling = weight if loop.weight_ceiling is None else min(weight, loop.weight_ceiling)
            self._next_model(loop)
        elif action is FailureAction.MODEL_DONE_TODAY:
            reset = exc.rate_limit_reset
            wait = reset - time.time() if reset else self.keys.seconds_to_day_end(ctx.key_name)
            self.breaker.open_for(ctx.model.id, max(60.0, wait))
            self._next_model(loop)
        elif action is FailureAction.NEXT_MODEL:
            self.breaker.open_for(ctx.model.id, 3600.0)
            self._next_model(loop)
        elif action is FailureAction.RAISE:
            self._notify_failure(loop, exc)
            raise exc
        else:
            self.breaker.failure(ctx.model.id)
            if action is FailureAction.RETRY_OTHER_KEY:
                loop.avoid_keys.add(ctx.key_name)
            loop.pending_delay = self.backoff.delay(loop.tries_on_model, exc.retry_after)
            log.info("attempt %d on %s failed (%s); retrying", ctx.number, ctx.model.id, exc.kind)

    def _retire(self, key_name: str, exc: UpstreamError) -> None:
        """Retire a key: until OpenRouter's limit resets (`resets_at`, else its period), else for the day."""
        reason = f"{exc.kind} ({exc.status})"
        if exc.resets_at is not None:
            self.keys.retire_until(key_name, exc.resets_at, reason)
        elif exc.limit_period is not None or exc.limit_source is not None or exc.kind in _OPENROUTER_LIMITS:
            self.keys.retire_until(key_name, limit_period_end(self.keys.now(), exc.limit_period), reason)
        else:
            self.keys.retire(key_name, reason)

    def _take_fallbacks(self, loop: _Loop, suggested: Sequence[str]) -> str:
        """Try OpenRouter's `fallback_models` next, those of them this request's route allows.

        Allowed means already a later candidate of the plan (the client's task or tier, after any
        budget step-down): a model outside it could be one the client may not use, or one the budget
        stepped away from. The rest are only named on the attempt.
        """
        later = loop.plan.models[loop.model_index + 1:]
        chosen = [m for wanted in dict.fromkeys(suggested) for m in later if m.id == wanted]
        if chosen:
            head = loop.plan.models[: loop.model_index + 1]
            rest = tuple(m for m in later if m not in chosen)
            loop.plan = dataclasses.replace(loop.plan, models=(*head, *chosen, *rest))
        outside = [m for m in suggested if m not in {c.id for c in chosen}]
        parts = [f"fallback_models tried next: {', '.join(m.id for m in chosen)}"] if chosen else []
        if outside:
            parts.append(f"fallback_models not candidates of this route: {', '.join(outside)}")
        return "; ".join(parts)

    def _succeeded(self, loop: _Loop, ctx: AttemptContext, usage: AttemptUsage, answer: Answer, *,
                   begun: float, started: float) -> Completion:
        now = time.monotonic()
        served, provider, generation_id = answer.served or ctx.model.id, answer.provider, answer.generation_id
        choices = list(answer.choices) or [Choice(text=answer.text, finish_reason=answer.finish_reason)]
        first = choices[0]
        self.breaker.success(ctx.model.id)
        self.keys.add_tokens(ctx.key_name, usage.prompt_tokens + usage.completion_tokens)
        self._record(loop, Attempt(
            number=ctx.number, model=served, key_name=ctx.key_name, outcome="ok",
            provider=provider, latency_s=now - begun, cost_nanos=usage.cost_nanos,
            cost_estimated=usage.cost_estimated, prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens, generation_id=generation_id, kind=ctx.kind))
        completion = Completion(
            text=answer.text, model=served, requested_model=ctx.model.id,
            provider=provider, key_name=ctx.key_name, tier=loop.plan.tier, task=loop.plan.task,
            cost_nanos=usage.cost_nanos, cost_estimated=usage.cost_estimated,
            prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
            latency_s=now - started, finish_reason=first.finish_reason, generation_id=generation_id,
            attempts=loop.attempts, tool_calls=first.tool_calls, logprobs=first.logprobs,
            reasoning=first.reasoning, reasoning_details=first.reasoning_details,
            reasoning_tokens=answer.usage.reasoning_tokens if answer.usage else 0,
            service_tier=answer.service_tier, choices=choices)
        provider_sent, service_tier = self._sent(ctx)
        completion.profile = profile_record(tier=loop.plan.tier, model=ctx.model.id, served_model=served,
                                            provider=provider_sent,
                                            service_tier=service_tier or loop.request.service_tier)
        for recorder in self.recorders:
            recorder.completion(loop.request_id, loop.request, completion)
        return completion

    def _skip(self, loop: _Loop, model: str, key: str | None, why: str, *, kind: str = "skipped") -> None:
        self._record(loop, Attempt(number=len(loop.attempts) + 1, model=model, key_name=key,
                                         outcome="skipped", error_kind=kind, message=why))

    def _record(self, loop: _Loop, attempt: Attempt) -> None:
        loop.attempts.append(attempt)
        if loop.request.spend is not None:
            loop.request.spend.nanos += attempt.cost_nanos
        for recorder in self.recorders:
            recorder.attempt(loop.request_id, loop.request, loop.plan, attempt)

    def _first_text(self, loop: _Loop, ctx: AttemptContext, seconds: float) -> None:
        for recorder in self.recorders:
            if isinstance(recorder, StreamRecorder):
                recorder.first_text(loop.request_id, loop.request, loop.plan, ctx.model.id, seconds)

    def _give_up(self, loop: _Loop) -> LyraError:
        error = self._exhausted(loop)
        self._notify_failure(loop, error)
        return error

    def _notify_failure(self, loop: _Loop, error: LyraError) -> None:
        for recorder in self.recorders:
            recorder.failure(loop.request_id, loop.request, loop.plan, error)

    def _exhausted(self, loop: _Loop) -> LyraError:
        if loop.refusal is not None and not any(a.outcome == "error" for a in loop.attempts):
            return loop.refusal
        tried = "; ".join(
            f"{a.model}{f' (key {a.key_name})' if a.key_name else ''}: "
            f"{a.error_kind if a.outcome == 'error' else a.message}"
            for a in loop.attempts[-6:]
        )
        if loop.deadline <= time.monotonic():
            why = "the request deadline passed"
        else:
            why = "every candidate model and key failed or was skipped"
        return NoModelAvailable(f"{why} ({tried})", attempts=list(loop.attempts),
                                retry_after=self._keys_back_in(loop))

    def _keys_back_in(self, loop: _Loop) -> float | None:
        """Seconds until the first of the route's keys comes back, when every one of them is retired
        (an OpenRouter limit until its reset); None when a key is usable or none will come back."""
        back = [self.keys.retired_until(name) for name in loop.plan.keys]
        if not back or any(until is None for until in back):
            return None
        first = min(until for until in back if until is not None)
        return None if math.isinf(first) else max(0.0, first - self.keys.now())


_ABANDONED = {"cancelled": "the caller went away after the request was sent",
              "hedge_lost": "cancelled: the other attempt of a hedged race answered first"}


async def _close(items: AsyncIterator[Any]) -> None:
    """Close an attempt's pieces now (its connection with them), not when it is collected."""
    aclose = getattr(items, "aclose", None)
    if aclose is not None:
        await aclose()


# Kinds that are OpenRouter's own limits: a retired key comes back when they reset (a UTC period).
_OPENROUTER_LIMITS = frozenset({FailureKind.KEY_LIMIT, FailureKind.GUARDRAIL_BUDGET,
                                FailureKind.WORKSPACE_BUDGET})


def _until(exc: UpstreamError) -> str:
    if exc.resets_at is None:
        return ""
    return f" until {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(exc.resets_at))}"


def _restated(exc: UpstreamError, line: str) -> UpstreamError:
    """The same error (class, kind, status, Retry-After) with a message that says what Lyra did."""
    final = copy.copy(exc)
    final.args = (line,)
    return final


def _generated(answer: Answer) -> str:
    """Everything an answer generated (every choice's text and tool-call arguments), for estimating
    its tokens when the body reported no usage."""
    if not answer.choices:
        return answer.text
    return "".join(c.text + "".join(str(t.get("function", {}).get("arguments", "")) for t in c.tool_calls)
                   for c in answer.choices)
