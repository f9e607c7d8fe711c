"""The Lyra facade: configuration in, routed completions out."""

from __future__ import annotations

import asyncio
import secrets as _secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import unquote, urlsplit

from lyra.budget.forecast import SpendForecast
from lyra.budget.governor import BudgetGovernor
from lyra.catalog.models import Catalog, load_catalog
from lyra.config import ConfigChoice, LoadedConfig, Secret, load_config
from lyra.consensus.panel import Consensus, ConsensusEngine
from lyra.errors import LedgerUnavailable, StateUnavailable
from lyra.failures import FailurePolicy
from lyra.ids import new_id
from lyra.ledger import Ledger, data_folder, default_url
from lyra.log import get_logger
from lyra.observe.recording import LedgerRecorder
from lyra.openrouter.transport import OpenRouterTransport
from lyra.redact import mask_url
from lyra.routing.cache import CacheStore, MemoryCache, RedisCache, ResponseCache
from lyra.routing.keys import KeyPool
from lyra.routing.limits import RateLimiter
from lyra.routing.policy import RoutePolicy
from lyra.routing.retry import Backoff, CircuitBreaker
from lyra.routing.router import Recorder, Router
from lyra.state import StateBackend, open_backend
from lyra.types import CacheMode, Completion, CompletionRequest, Message

if TYPE_CHECKING:
    from lyra.simulator import Simulator, SimulatorOptions

log = get_logger("lyra")

UpstreamCall = Callable[[CompletionRequest], Awaitable[Completion]]
Interceptor = Callable[[CompletionRequest, UpstreamCall], Awaitable[Completion]]


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
        self.catalog = catalog or load_catalog()
        self.settings.check_models(self.catalog, config.source)
        self._simulator_options = simulator_options
        self.simulator: Simulator | None = None
        self._router: Router | None = None
        self._started = False
        self.ledger: Ledger | None = None
        self.state: StateBackend | None = None
        self.budget: BudgetGovernor | None = None
        self._cache: ResponseCache | None = None
        self._consensus: ConsensusEngine | None = None
        self._extra_recorders: list[Recorder] = []
        self._interceptor: Interceptor | None = None

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
    def router(self) -> Router:
        if self._router is None:
            raise RuntimeError("Lyra is not started; use `async with Lyra.from_config() as lyra:`")
        return self._router

    def add_recorder(self, recorder: Recorder) -> None:
        """Send every attempt and outcome to `recorder` too (metrics); call it before `start`."""
        if self._started:
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
        if self._started:
            return
        try:
            await self._start()
        except BaseException:
            await self.aclose()
            raise

    async def _start(self) -> None:
        base_url = self.settings.openrouter.base_url
        secrets: Mapping[str, Secret] = self.config.secrets
        if self.config.simulated:
            from lyra.simulator import Simulator

            self.simulator = Simulator(catalog=self.catalog, options=self._simulator_options)
            await self.simulator.start()
            base_url = self.simulator.base_url
            secrets = {name: Secret(f"sk-or-sim-{name}-{_secrets.token_hex(8)}")
                       for name in self.settings.keys}
            log.warning("no OpenRouter key set; using the built-in simulator at %s", base_url)
        state, budget = await self._open_stores(simulated=self.config.simulated)
        recorders: list[Recorder] = []
        if self.ledger is not None:
            budget.forecast = SpendForecast(self.ledger, budget.tier_caps,
                                            day_starts_utc_hour=self.settings.budget.day_starts_utc_hour)
            recorders.append(LedgerRecorder(self.ledger, tier_of=budget.charged_tier))
        recorders.extend(self._extra_recorders)
        self._router = self._build_router(base_url, secrets, recorders, budget, state)
        self._cache = ResponseCache(self._cache_store(), self._cache_ttl, on_hit=self._record_hit)
        self._consensus = ConsensusEngine(self.settings, self.run)
        self._started = True

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
        try:
            self.state = state = self._open_state(simulated=simulated)
        except _store_errors() as exc:
            raise self._state_unreachable(exc) from exc
        if self.settings.ledger.enabled:
            url = self.config.ledger_url or default_url(simulated=simulated)
            self.ledger = ledger = Ledger(url, simulated=simulated,
                                          synchronous=self.settings.ledger.synchronous)
            try:
                ledger.start()
            except _store_errors() as exc:
                raise self._ledger_unreachable(ledger, exc) from exc
        self.budget = budget = BudgetGovernor(
            self.settings, self.catalog, state,
            day_spend=self.ledger.spend_between if self.ledger is not None else None)
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
                      budget: BudgetGovernor, state: StateBackend) -> Router:
        s = self.settings
        transport = OpenRouterTransport(base_url=base_url, app_title=s.openrouter.app_title,
                                        app_url=s.openrouter.app_url)
        keys = KeyPool(s.keys, secrets, day_starts_utc_hour=s.budget.day_starts_utc_hour)
        limiter = RateLimiter(s.limits, state, day_starts_utc_hour=s.budget.day_starts_utc_hour)
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
        )

    async def aclose(self) -> None:
        """Close the session and stop the simulator if this engine started it."""
        if self._router is not None:
            await self._router.transport.close()
            self._router = None
        if isinstance(self._cache, ResponseCache) and isinstance(self._cache.store, RedisCache):
            await self._cache.store.close()
        self._cache = None
        self._consensus = None
        if self.ledger is not None:
            self.ledger.close()
            self.ledger = None
        if self.state is not None:
            await self.state.close()
            self.state = None
        if self.simulator is not None:
            await self.simulator.stop()
            self.simulator = None
        self._started = False

    async def __aenter__(self) -> Lyra:
        await self.start()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def complete(
        self,
        *,
        messages: Sequence[Message],
        task: str | None = None,
        model: str | None = None,
        tier: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        response_format: Mapping[str, Any] | None = None,
        provider: Mapping[str, Any] | None = None,
        seed: int | None = None,
        deadline_s: float | None = None,
        cache: CacheMode = "use",
        priority: Literal["normal", "high", "emergency"] = "normal",
        client: str | None = None,
    ) -> Completion:
        """Route one chat completion by task, tier or model and return the served answer."""
        request = CompletionRequest(
            messages=messages, task=task, model=model, tier=tier, max_tokens=max_tokens,
            temperature=temperature, response_format=response_format, provider=provider,
            seed=seed, deadline_s=deadline_s, cache=cache, priority=priority, client=client)
        return await self.run(request)

    async def run(self, request: CompletionRequest) -> Completion:
        """Answer a typed request: from the cache when its task allows, else through the router."""
        if self._interceptor is not None:
            return await self._interceptor(request, self._serve)
        return await self._serve(request)

    async def _serve(self, request: CompletionRequest) -> Completion:
        if self._cache is None:
            return await self.router.complete(request)
        return await self._cache.complete(request, self.router.complete)

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
        if self._consensus is None:
            raise RuntimeError("Lyra is not started; use `async with Lyra.from_config() as lyra:`")
        run = self._consensus.decide if cascade else self._consensus.ask
        return await run(messages, panel=panel, notional=notional, cache=cache, client=client)

    def stream(
        self,
        *,
        messages: Sequence[Message],
        task: str | None = None,
        model: str | None = None,
        tier: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        deadline_s: float | None = None,
        client: str | None = None,
    ) -> CompletionStream:
        """Stream one chat completion: iterate for text, then read `.completion`."""
        request = CompletionRequest(messages=messages, task=task, model=model, tier=tier,
                                    max_tokens=max_tokens, temperature=temperature,
                                    deadline_s=deadline_s, cache="bypass", client=client)
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
    """Async iterator of text pieces; `completion` holds the final result once it ends."""

    def __init__(self, router: Router, request: CompletionRequest) -> None:
        self._sink: list[Completion] = []
        self._pieces = router.stream(request, self._sink)

    def __aiter__(self) -> AsyncIterator[str]:
        return self._pieces

    @property
    def completion(self) -> Completion:
        if not self._sink:
            raise RuntimeError("the stream has not finished yet")
        return self._sink[0]
