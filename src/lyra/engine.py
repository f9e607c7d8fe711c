"""The Lyra facade: configuration in, routed completions out."""

from __future__ import annotations

import asyncio
import secrets as _secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Unpack
from urllib.parse import unquote, urlsplit

from lyra.budget.forecast import SpendForecast
from lyra.budget.governor import BudgetGovernor, tier_caps
from lyra.catalog.models import Catalog, load_catalog
from lyra.config import ConfigChoice, LoadedConfig, Secret, load_config
from lyra.config.priority import PriorityTable
from lyra.config.upstreams import catalog_models
from lyra.consensus.panel import Consensus, ConsensusEngine
from lyra.consensus.tuned import SEED_RECORDS, any_tuned, seed_engine
from lyra.errors import LedgerUnavailable, LyraError, StateUnavailable
from lyra.failures import FailurePolicy
from lyra.ids import new_id
from lyra.ledger import Ledger, data_folder, default_url
from lyra.log import get_logger
from lyra.observe.recording import LedgerRecorder
from lyra.openrouter.transport import OpenRouterTransport
from lyra.reconcile import Reconciler, reconciler_for
from lyra.redact import mask_url
from lyra.routing.cache import CacheStore, MemoryCache, RedisCache, ResponseCache
from lyra.routing.hedge import Hedger
from lyra.routing.keys import KeyPool
from lyra.routing.limits import RateLimiter
from lyra.routing.policy import RoutePolicy
from lyra.routing.retry import Backoff, CircuitBreaker
from lyra.routing.router import Recorder, Router, StreamProgress
from lyra.state import StateBackend, open_backend
from lyra.types import CacheMode, ChoiceDelta, Completion, CompletionRequest, Message, RequestOptions
from lyra.upstreams import Upstreams, listed_models

if TYPE_CHECKING:
    from lyra.simulator import Simulator, SimulatorOptions

log = get_logger("lyra")

UpstreamCall = Callable[[CompletionRequest], Awaitable[Completion]]
Interceptor = Callable[[CompletionRequest, UpstreamCall], Awaitable[Completion]]


@dataclass(slots=True)
class Opened:
    """The stores (and simulator) a start has opened so far: closed in reverse, whatever failed."""

    simulator: Simulator | None = None
    state: StateBackend | None = None
    ledger: Ledger | None = None
    budget: BudgetGovernor | None = None

    async def close(self) -> None:
        if self.ledger is not None:
            self.ledger.close()
        if self.state is not None:
            await self.state.close()
        if self.simulator is not None:
            await self.simulator.stop()


@dataclass(frozen=True, slots=True)
class Running:
    """What a started engine serves with, built once by `start()` from the opened stores."""

    router: Router
    cache: ResponseCache
    consensus: ConsensusEngine
    reconciler: Reconciler | None = None  # asks /generation what each attempt was billed

    async def close(self) -> None:
        if self.reconciler is not None:
            await self.reconciler.stop()
        await self.router.transport.close()
        await self.router.upstreams.close()
        if isinstance(self.cache.store, RedisCache):
            await self.cache.store.close()


class Lyra:
    """One engine: keys, tiers, tasks and budget from a config, talking to one OpenRouter.

    Use it as an async context manager; with no key in the environment it starts the built-in
    simulator on a free loopback port.
    """

    def __init__(
        self,
        config: LoadedConfig,
        *,
        catalog: Catalog | None = None,
        simulator_options: SimulatorOptions | None = None,
    ) -> None:
        self.config = config
        self.settings = config.settings
        # The `[upstreams.*]` models are catalogued like any other (prices, context): routing,
        # budgets, the ledger and the panels then treat `NAME:model-id` like any model id.
        self.catalog = (catalog or load_catalog()).merged(catalog_models(self.settings.upstreams))
        self.settings.check_models(self.catalog, config.source)
        self._simulator_options = simulator_options
        self._opened = Opened()  # what a start has opened so far
        self._running: Running | None = None  # what a finished start serves with
        self._extra_recorders: list[Recorder] = []
        self._interceptor: Interceptor | None = None
        self._offline = False  # started with no upstream: every answer comes from the interceptor

    @classmethod
    def from_config(
        cls,
        path: str | Path | ConfigChoice | None = None,
        *,
        environ: Mapping[str, str] | None = None,
        simulator_options: SimulatorOptions | None = None,
    ) -> Lyra:
        """Load lyra.toml and build an engine.

        With no path the file is found as the `lyra` command finds it: $LYRA_CONFIG, then
        ./lyra.toml, then the shipped example.
        """
        catalog = load_catalog()
        config = load_config(path, environ=environ, catalog=catalog)
        return cls(config, catalog=catalog, simulator_options=simulator_options)

    def __repr__(self) -> str:
        mode = "simulator" if self.config.simulated else "openrouter"
        return f"Lyra(source={self.config.source!r}, mode={mode!r}, keys={sorted(self.settings.keys)})"

    @property
    def running(self) -> Running:
        """The started engine's parts; RuntimeError before `start`."""
        if self._running is None:
            raise RuntimeError("Lyra is not started; use `async with Lyra.from_config() as lyra:`")
        return self._running

    @property
    def router(self) -> Router:
        return self.running.router

    @property
    def simulator(self) -> Simulator | None:
        """The built-in simulator this engine started (no key set), if any."""
        return self._opened.simulator

    @property
    def ledger(self) -> Ledger | None:
        return self._opened.ledger

    @property
    def state(self) -> StateBackend | None:
        return self._opened.state

    @property
    def budget(self) -> BudgetGovernor | None:
        return self._opened.budget

    def add_recorder(self, recorder: Recorder) -> None:
        """Send every attempt and outcome to `recorder` too (metrics); call it before `start`."""
        if self._running is not None:
            raise RuntimeError("add recorders before the engine starts")
        self._extra_recorders.append(recorder)

    def set_interceptor(self, interceptor: Interceptor | None) -> None:
        """Send every request through `interceptor(request, call)` before the cache and the router.

        A cassette uses it to record answers or to replay them with no upstream call; `call`
        serves the request as usual (cache, then router). `None` removes it.
        """
        self._interceptor = interceptor

    async def start(self) -> None:
        """Open the HTTP session and, with no keys, start the simulator.

        A start that fails (the budget state cannot be reached, say) closes what it had opened.
        """
        if self._running is not None:
            return
        try:
            self._running = await self._start()
        except BaseException:
            await self.aclose()
            raise

    async def open_stores(self) -> None:
        """Open the ledger and the budget state only: no simulator, no router, no model call.

        For the commands that read what is recorded (`lyra report`, `lyra budget`): with no key set
        they must not start the simulator. `aclose()` closes what this opened.
        """
        try:
            await self._open_stores(simulated=self.config.simulated)
        except BaseException:
            await self.aclose()
            raise

    async def start_offline(self) -> None:
        """Start with no upstream: the stores, the cache and the panels, but no simulator and no key.

        For a replaying cassette (`lyra backtest --replay`), which answers every request itself; a
        request that reaches the router instead is refused with one line, never sent anywhere.
        """
        if self._running is not None:
            return
        self._offline = True
        try:
            _state, budget = await self._open_stores(simulated=self.config.simulated)
            router = self._build_router(self.settings.openrouter.base_url, {}, [], budget, _state)
            cache = ResponseCache(MemoryCache(), self._cache_ttl)
            self._running = Running(router=router, cache=cache,
                                    consensus=ConsensusEngine(self.settings, self.run))
        except BaseException:
            await self.aclose()
            raise

    async def _start(self) -> Running:
        base_url = self.settings.openrouter.base_url
        secrets: Mapping[str, Secret] = self.config.secrets
        if self.config.simulated:
            from lyra.simulator import Simulator

            simulator = Simulator(catalog=self.catalog, options=self._simulator_options)
            self._opened.simulator = simulator
            await simulator.start()
            base_url = simulator.base_url
            secrets = {name: Secret(f"sk-or-sim-{name}-{_secrets.token_hex(8)}")
                       for name in self.settings.keys if name not in self.config.upstream_secrets}
            log.warning("no OpenRouter key set; using the built-in simulator at %s", base_url)
        secrets = {**secrets, **self.config.upstream_secrets}
        upstreams = Upstreams.of(self.settings)
        if any(u.prices_from_models for u in self.settings.upstreams.values()):
            self.catalog = self.catalog.merged(await listed_models(upstreams, secrets))
        state, budget = await self._open_stores(simulated=self.config.simulated)
        recorders: list[Recorder] = []
        if self.ledger is not None:
            recorders.append(LedgerRecorder(self.ledger, tier_of=budget.charged_tier))
        recorders.extend(self._extra_recorders)
        router = self._build_router(base_url, secrets, recorders, budget, state, upstreams)
        cache = ResponseCache(self._cache_store(), self._cache_ttl, on_hit=self._record_hit)
        consensus = ConsensusEngine(self.settings, self.run)
        if self.ledger is not None and any_tuned(self.settings):
            # A tuned cascade goes on from the decisions on record instead of paying for a new record.
            recent = self.ledger.audit.recent(SEED_RECORDS)
            seed_engine(consensus, self.settings, [r.payload for r in reversed(recent)])
        return Running(router=router, cache=cache, consensus=consensus,
                       reconciler=reconciler_for(self.settings, self.ledger, router))

    async def check_stores(self) -> None:
        """Open the budget state and the ledger once, then close them: can they be reached?

        `lyra serve` runs this before it starts its workers, so that a database that cannot be
        reached is one line from the parent rather than a traceback from every worker. Raises
        StateUnavailable or LedgerUnavailable, whose one line names the URL (masked) and the fix.
        """
        try:
            await self._open_stores(simulated=self.config.simulated)
        finally:
            await self.aclose()

    async def _open_stores(self, *, simulated: bool) -> tuple[StateBackend, BudgetGovernor]:
        """The budget state and the ledger, opened, with today's spend joined or rebuilt."""
        opened = self._opened
        try:
            opened.state = state = self._open_state(simulated=simulated)
        except _store_errors() as exc:
            raise self._state_unreachable(exc) from exc
        if self.settings.ledger.enabled:
            url = self.config.ledger_url or default_url(simulated=simulated)
            opened.ledger = ledger = Ledger(url, simulated=simulated,
                                            synchronous=self.settings.ledger.synchronous)
            try:
                ledger.start()
            except _store_errors() as exc:
                raise self._ledger_unreachable(ledger, exc) from exc
        day_hour = self.settings.budget.day_starts_utc_hour
        forecast = None if opened.ledger is None else SpendForecast(
            opened.ledger, tier_caps(self.settings), day_starts_utc_hour=day_hour)
        opened.budget = budget = BudgetGovernor(
            self.settings, self.catalog, state, forecast=forecast,
            day_spend=opened.ledger.spend_between if opened.ledger is not None else None)
        state_errors: tuple[type[BaseException], ...] = (StateUnavailable, *_store_errors())
        try:
            await budget.open_state()
        except state_errors as exc:
            raise self._state_unreachable(exc) from exc
        return state, budget

    def _ledger_unreachable(self, ledger: Ledger, exc: BaseException) -> LedgerUnavailable:
        """One line naming the ledger's URL (masked), where it was set and the fix."""
        origin = self.config.ledger_url_origin or "the default ledger file"
        return LedgerUnavailable(f"the ledger database {ledger.url_for_display} ({origin}) cannot be "
                                 f"reached: {_cause(exc, self.config.ledger_url)}; start it or fix "
                                 f"{origin.rpartition(': ')[2]}")

    def _state_unreachable(self, exc: BaseException) -> StateUnavailable:
        """One line naming the budget state's backend, where it is configured and the fix."""
        state = self.settings.state
        source = self.config.source
        if state.backend == "redis" and self.config.redis_url:
            where = (f"Redis at {mask_url(self.config.redis_url)} ({self.config.redis_url_origin}, "
                     f'[state] backend = "redis" in {source})')
            fix = f"start Redis or fix {self.config.redis_url_origin}"
        else:
            where = f'the {state.backend} file ([state] in {source})'
            fix = "fix [state] path or the folder's permissions"
        if isinstance(exc, StateUnavailable):
            detail = str(exc).removesuffix("; refusing until it is back")
        else:
            detail = f"the budget state cannot be reached: {_cause(exc, self.config.redis_url)}"
        return StateUnavailable(f"{detail}: {where}; {fix}", retry_after=getattr(exc, "retry_after", 1.0))

    def _cache_store(self) -> CacheStore:
        if self.settings.state.backend == "redis" and self.config.redis_url:
            return RedisCache(self.config.redis_url, prefix=self.settings.state.prefix)
        return MemoryCache()

    def _cache_ttl(self, request: CompletionRequest) -> float:
        task = self.settings.tasks.get(request.task) if request.task else None
        return task.cache_ttl_s if task is not None else 0.0

    def _record_hit(self, request: CompletionRequest, completion: Completion) -> None:
        request_id = new_id()
        for recorder in self.router.recorders:
            recorder.completion(request_id, request, completion)

    def _open_state(self, *, simulated: bool) -> StateBackend:
        """The configured backend; a simulator run gets a state of its own, apart from real money."""
        state = self.settings.state
        path, prefix = state.path, state.prefix
        if state.backend == "sqlite":
            path = simulated_path(path, simulated) if path else str(
                data_folder() / ("state-sim.db" if simulated else "state.db"))
        if simulated:
            prefix += "sim:"
        return open_backend(state.backend, path=path, redis_url=self.config.redis_url, prefix=prefix)

    def _build_router(self, base_url: str, secrets: Mapping[str, Secret], recorders: Sequence[Recorder],
                      budget: BudgetGovernor, state: StateBackend,
                      upstreams: Upstreams | None = None) -> Router:
        s = self.settings
        upstreams = upstreams or Upstreams()
        transport = OpenRouterTransport(base_url=base_url, app_title=s.openrouter.app_title,
                                        app_url=s.openrouter.app_url)
        keys = KeyPool(s.keys, secrets, day_starts_utc_hour=s.budget.day_starts_utc_hour,
                       keyless=upstreams.keyless())
        limiter = RateLimiter(s.limits, state, day_starts_utc_hour=s.budget.day_starts_utc_hour,
                              priorities=PriorityTable.of_settings(s))
        return Router(
            policy=RoutePolicy(s, self.catalog),
            transport=transport,
            keys=keys,
            attempts_per_model=s.retry.attempts_per_model,
            deadline_s=s.retry.deadline_s,
            backoff=Backoff(base_s=s.retry.base_delay_s, max_s=s.retry.max_delay_s),
            failure_policy=FailurePolicy(s.retry.on_failure),
            breaker=CircuitBreaker(failures=s.retry.breaker_failures,
                                   cooldown_s=s.retry.breaker_cooldown_s),
            guards=[budget, limiter],
            planners=[budget],
            recorders=recorders,
            barriers=[self.ledger.durable] if self.ledger is not None else [],
            upstreams=upstreams,
            hedger=Hedger.from_settings(s.tiers),
        )

    async def aclose(self) -> None:
        """Close the session and the stores, and stop the simulator if this engine started it."""
        running, self._running = self._running, None
        self._offline = False
        if running is not None:
            await running.close()
        opened, self._opened = self._opened, Opened()
        await opened.close()

    async def __aenter__(self) -> Lyra:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def complete(self, *, messages: Sequence[Message], **options: Unpack[RequestOptions]) -> Completion:
        """Route one chat completion by task, tier or model and return the served answer."""
        return await self.run(CompletionRequest(messages=messages, **options))

    async def run(self, request: CompletionRequest) -> Completion:
        """Answer a typed request: from the cache when its task allows, else through the router."""
        if self._interceptor is not None:
            return await self._interceptor(request, self._serve)
        return await self._serve(request)

    async def _serve(self, request: CompletionRequest) -> Completion:
        running = self.running
        if self._offline:
            route = request.task or request.model or request.tier or "-"
            raise LyraError(f"this engine was started offline (a replay) and calls no model: the request "
                            f"({route}) was not answered")
        return await running.cache.complete(request, running.router.complete)

    async def consensus(
        self,
        *,
        messages: Sequence[Message],
        panel: str = "trade",
        notional: float | None = None,
        cache: CacheMode = "use",
        cascade: bool = True,
        client: str | None = None,
    ) -> Consensus:
        """Ask a configured panel for a trading decision, through its escalation cascade by default."""
        panels = self.running.consensus
        run = panels.decide if cascade else panels.ask
        return await run(messages, panel=panel, notional=notional, cache=cache, client=client)

    def stream(self, *, messages: Sequence[Message], **options: Unpack[RequestOptions]) -> CompletionStream:
        """Stream one chat completion: iterate for text, then read `.completion`.

        Takes `complete`'s options; a stream is never answered from the cache.
        """
        options["cache"] = "bypass"
        request = CompletionRequest(messages=messages, **options)
        return CompletionStream(self.router, request)

    def complete_sync(self, **kwargs: Any) -> Completion:
        """Blocking `complete` for scripts: starts, calls once and closes."""

        async def once() -> Completion:
            async with self:
                return await self.complete(**kwargs)

        return asyncio.run(once())


def _store_errors() -> tuple[type[BaseException], ...]:
    """What opening the ledger or the budget state raises when its database cannot be reached."""
    import sqlite3

    from redis import RedisError
    from sqlalchemy.exc import SQLAlchemyError

    return OSError, sqlite3.Error, SQLAlchemyError, RedisError


def _cause(exc: BaseException, url: str | None) -> str:
    """The first line of a driver's error, with the URL's password (if any) masked out of it."""
    original = getattr(exc, "orig", None) or exc
    lines = str(original).strip().splitlines()
    text = f"{type(original).__name__}: {lines[0]}" if lines else type(original).__name__
    try:
        password = urlsplit(url).password if url else None
    except ValueError:
        password = None
    for secret in filter(None, {password, unquote(password or "")}):
        text = text.replace(secret, "***")
    return text


def simulated_path(path: str, simulated: bool) -> str:
    """A configured state file, or its `-sim` sibling for simulator runs (state.db -> state-sim.db)."""
    if not simulated or path == ":memory:" or path.startswith("file:"):
        return path
    file = Path(path)
    return str(file.with_name(f"{file.stem}-sim{file.suffix}"))


class CompletionStream:
    """Async iterator of text pieces; `completion` holds the final result once it ends.

    Iterating gives the first choice's text; `deltas()` gives every piece of every choice instead
    (tool-call fragments, reasoning, log-probabilities): iterate one or the other, not both.
    """

    def __init__(self, router: Router, request: CompletionRequest) -> None:
        self._sink: list[Completion] = []
        self._progress = StreamProgress()
        self._deltas = router.stream(request, self._sink, self._progress)
        self._pieces = self._texts()

    async def _texts(self) -> AsyncIterator[str]:
        try:
            async for delta in self._deltas:
                if delta.index == 0 and delta.text:
                    yield delta.text
        finally:
            await self._deltas.aclose()

    def deltas(self) -> AsyncIterator[ChoiceDelta]:
        """Every streamed piece of every choice, in arrival order."""
        return self._deltas

    @property
    def model(self) -> str | None:
        """The model serving the stream, known from its first chunk (before the first text)."""
        return self._progress.model

    def __aiter__(self) -> AsyncIterator[str]:
        return self._pieces

    @property
    def completion(self) -> Completion:
        if not self._sink:
            raise RuntimeError("the stream has not finished yet")
        return self._sink[0]
