"""`lyra live`: the task schedule run on a replayed (or live) market, on an injectable clock.

Each symbol trades a paper account (`live:<symbol>`, kept in the ledger) with the backtest's fill
rules: every bar of the market runs through the account once and in order, so the emergency stop
and the drawdown halt act on the bar they are crossed, and a decision's order fills at the next
bar's open.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from lyra.consensus.panel import Consensus
from lyra.engine import Lyra
from lyra.errors import LyraError
from lyra.log import get_logger
from lyra.ops.clock import Clock, ReplayClock, SimulatedClock
from lyra.ops.market import CcxtMarket, Market, ReplayMarket, load_replay
from lyra.ops.monitoring import HealthMonitor
from lyra.ops.schedule import Job, periodic_jobs, session_length_s
from lyra.ops.shadow import ShadowExperiments
from lyra.routing.retry import CircuitBreaker
from lyra.trading import prompts
from lyra.trading.account import AccountEvent, BarPrices, PaperAccount
from lyra.trading.data import Bars
from lyra.trading.features import features_at
from lyra.trading.paper import ROAS_DEFINITION, PaperBook, results
from lyra.trading.pipeline import (
    DecisionContext,
    StageResult,
    TradeDecision,
    TradingAIOrchestrator,
    run_stage,
    single_signal,
)
from lyra.trading.risk import AccountState
from lyra.types import Completion

log = get_logger("lyra.ops.live")
ACCOUNT_TASK = "paper_account"  # the per-bar step that runs each new bar through a symbol's account


@dataclass(slots=True)
class JobState:
    """One job's run counts, next run and what it last did."""

    job: Job
    next_at: float
    fired: int = 0
    skipped: int = 0
    errors: int = 0
    last_error: str = ""
    running: asyncio.Task[None] | None = None


@dataclass(slots=True)
class LiveStatus:
    """What the status panel shows."""

    jobs: list[JobState]
    decisions: dict[str, TradeDecision] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    now_s: float = 0.0
    accounts: dict[str, PaperAccount] = field(default_factory=dict)  # by symbol
    bars: dict[str, int] = field(default_factory=dict)  # bars run through each account by this run
    events: list[str] = field(default_factory=list)  # emergency stops and drawdown halts, latest last
    shadow: dict[str, Any] = field(default_factory=dict)  # the shadow experiments' calls and verdicts


class LiveOrchestrator(TradingAIOrchestrator):
    """The decision pipeline fed by the schedule: market analysis comes from its own 5-minute task,
    and the signal is one call of the signal_generation task (its models, keys and cadence)."""

    def __init__(self, lyra: Lyra, **kwargs: Any) -> None:
        super().__init__(lyra, **kwargs)
        self.analysis: dict[str, StageResult] = {}

    async def analyze_market_conditions(self, features: dict[str, Any],
                                        context: DecisionContext | None = None) -> list[StageResult]:
        """The symbol's latest market analysis. Its call is paid once: the first decision that uses
        it carries its cost, later ones reuse it at no cost, so that what the decisions (and the
        account) say they cost adds up to what was billed, never more."""
        if context is None or context.symbol not in self.analysis:
            return [StageResult(stage="technical_analysis", status="skipped",
                                output="no market analysis yet")]
        found = self.analysis[context.symbol]
        if found.cost_nanos:
            self.analysis[context.symbol] = replace(found, cost_nanos=0)
        return [found]

    async def generate_trading_signals(
        self, features: dict[str, Any], news: Sequence[str] = (), context: DecisionContext | None = None
    ) -> tuple[StageResult, Consensus | None]:
        variant = context.variant if context is not None else None
        asked = variant.signal(features, news) if variant is not None else prompts.signal(features, news)
        return await single_signal(self.lyra, asked, models=variant.models if variant is not None else ())

    async def decide_for(self, symbol: str, bars: Bars, *, at: Any, notional: float,
                         account: AccountState | None = None) -> TradeDecision:
        """Decide for one symbol on its own account (ticks of several symbols run at once: each
        decision carries its own symbol and account to the stages)."""
        return await self.decide(symbol, bars, proposed_notional=notional, at=at, account=account)


class LiveRunner:
    """Fires each job at its cadence on the clock; a job still running when it is due again is skipped.

    Every time reading comes from `clock` (the schedule, circuit cool-downs, the session's end), so a
    SimulatedClock runs the same session the same way on any machine. Each symbol's paper account
    (`live:<symbol>` in `book`) gets every new bar once and in order, from a per-bar step and before
    each decision; a decision's order is queued on it and filled at the next bar's open.
    """

    def __init__(
        self,
        lyra: Lyra,
        market: Market,
        clock: Clock,
        *,
        session_s: float | None = None,
        monitor: HealthMonitor | None = None,
        drain_s: float = 10.0,
        book: PaperBook | None = None,
        session_breaker: bool = True,
    ) -> None:
        self.lyra = lyra
        self.market = market
        self.clock = clock
        self.settings = lyra.settings
        self.session_s = session_s if session_s is not None else session_length_s(self.settings)
        self.stop = asyncio.Event()
        self.drain_s = drain_s  # real seconds granted to ticks in flight when stopped early
        self.session_breaker = session_breaker  # circuits cool down in session time
        self.orchestrator = LiveOrchestrator(lyra, final_panel=self.settings.schedule.final_panel)
        self.shadow = ShadowExperiments(lyra, self.orchestrator)  # never trades (lyra.ops.shadow)
        self.monitor = monitor or HealthMonitor(lyra)
        ledger = lyra.ledger
        self._traded: dict[str, pd.Timestamp | None] = {}  # the last bar a decision traded on, by symbol
        self.book = book or PaperBook(self.settings, ledger.accounts if ledger is not None else None)
        start = clock.now()
        jobs = periodic_jobs(self.settings)
        symbols = sorted({j.symbol for j in jobs if j.symbol})
        every = max(1, round(market.bar_s))
        jobs += [Job(ACCOUNT_TASK, symbol, every) for symbol in symbols]
        self.status = LiveStatus([JobState(job, start) for job in jobs])
        self.actions: dict[str, Callable[[Job, float], Awaitable[None]]] = {
            "market_analysis": self._market_analysis,
            "signal_generation": self._signal,
            "news_sentiment": self._news,
            "health_monitoring": self._health,
            ACCOUNT_TASK: self._mark,
        }
        for symbol in symbols:
            self.account(symbol)

    async def run(self) -> LiveStatus:
        """Run until the session ends or `stop` is set, then let in-flight ticks finish (or cancel them)."""
        with self._breaker_on_clock():
            while not self.stop.is_set():
                now = self.clock.now()
                self.status.now_s = now
                if now >= self.session_s:
                    break
                for state in self.status.jobs:
                    while state.next_at <= now and state.next_at < self.session_s:
                        self._fire(state, state.next_at)
                        state.next_at += state.job.every_s
                wake = min(s.next_at for s in self.status.jobs)
                await self.clock.sleep_until(min(wake, self.session_s), stop=self.stop)
            await self._drain()
        return self.status

    @contextlib.contextmanager
    def _breaker_on_clock(self) -> Iterator[None]:
        """For the run, the router's circuits open and cool down in session time, not the machine's."""
        if not self.session_breaker:
            yield
            return
        router, retry = self.lyra.router, self.settings.retry
        previous = router.breaker
        router.breaker = CircuitBreaker(failures=retry.breaker_failures, cooldown_s=retry.breaker_cooldown_s,
                                        clock=self.clock.now)
        try:
            yield
        finally:
            router.breaker = previous

    def _fire(self, state: JobState, at_s: float) -> None:
        if state.running is not None and not state.running.done():
            state.skipped += 1  # never stack a tick on one still in flight
            return
        state.fired += 1
        state.running = asyncio.create_task(self._tick(state, at_s), name=f"lyra-live:{state.job.name}")
        self.clock.watch(state.running)

    async def _tick(self, state: JobState, at_s: float) -> None:
        action = self.actions.get(state.job.task, self._generic)
        try:
            await action(state.job, at_s)
        except LyraError as exc:  # an outage or a budget refusal marks this tick; the schedule goes on
            self._error(state, f"{type(exc).__name__}: {exc}")
        except Exception as exc:
            log.exception("live: %s raised", state.job.name)
            self._error(state, f"{type(exc).__name__}: {exc}")

    def _error(self, state: JobState, message: str) -> None:
        state.errors += 1
        state.last_error = message[:200]
        self.status.errors.append(f"{state.job.name}: {state.last_error}")
        del self.status.errors[:-50]
        log.warning("live: %s failed: %s", state.job.name, state.last_error)

    def _state(self, job: Job) -> JobState:
        return next(s for s in self.status.jobs if s.job == job)

    async def _drain(self) -> None:
        """At the session's end on a simulated clock, in-flight ticks finish (they take no session time
        but by sleeping on the clock, which moves freely now); when stopped early, or on a paced
        clock, they get `drain_s` real seconds and are then cancelled."""
        running = [s.running for s in self.status.jobs if s.running is not None and not s.running.done()]
        if not running:
            return
        timeout = None if self.clock.simulated and not self.stop.is_set() else self.drain_s
        _, pending = await asyncio.wait(running, timeout=timeout)
        for task in pending:  # cancelling releases their budget reservations
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    # -- the paper accounts ----------------------------------------------------------------

    @property
    def accounts(self) -> dict[str, PaperAccount]:
        """Each symbol's paper account, as this run keeps it."""
        return self.status.accounts

    def account(self, symbol: str) -> PaperAccount:
        """The symbol's paper account, resumed from the ledger the first time it is asked for."""
        found = self.status.accounts.get(symbol)
        if found is None:
            found = self.status.accounts[symbol] = self.book.open(account_name(symbol))
            self.status.bars.setdefault(symbol, 0)
            self._traded[symbol] = found.last_time  # a resumed account's last bar counts as decided
        return found

    def _tradable(self, symbol: str, account: PaperAccount, at: Any) -> bool:
        """True when a decision on the bar at `at` may trade: it is the account's last bar (the tape and
        the window agree) and no decision has traded on that bar yet."""
        if account.last_time is None or pd.Timestamp(at) != account.last_time:
            return False
        done = self._traded.get(symbol)
        return done is None or account.last_time > done

    async def _tape(self, symbol: str, at_s: float, after: pd.Timestamp | None) -> list[BarPrices]:
        if self.market.fetches:  # a network fetch: keep it off the event loop
            return await asyncio.to_thread(self.market.tape, symbol, at_s, after)
        return self.market.tape(symbol, at_s, after)

    async def catch_up(self, symbol: str, at_s: float) -> PaperAccount:
        """Run every bar known at `at_s` that the account has not seen through it, in order, and save it."""
        account = self.account(symbol)
        tape = await self._tape(symbol, at_s, account.last_time)
        seen = 0
        for prices in tape:  # no await in here: two catch-ups of one symbol never interleave
            if account.last_time is not None and prices.time <= account.last_time:
                continue  # another tick ran this bar while the tape was being fetched
            self._note(symbol, account.bar(prices))
            seen += 1
        if seen:
            self.status.bars[symbol] = self.status.bars.get(symbol, 0) + seen
            self.book.save(account_name(symbol), account)
        return account

    def _note(self, symbol: str, events: list[AccountEvent]) -> None:
        for event in events:
            line = f"{symbol} {event.time.isoformat()} {event.kind}: {event.detail}"
            self.status.events.append(line)
            log.warning("live: %s", line)
        del self.status.events[:-50]

    def _trade(self, symbol: str, account: PaperAccount, decision: TradeDecision) -> None:
        """Queue the decision's order on the account (filled at the next bar's open) and save it."""
        account.record_decision(decision.cost_nanos)
        self._traded[symbol] = account.last_time
        entry = decision.action in ("BUY", "SELL")
        if entry and account.halted:  # the halt latched while this decision was being made
            log.warning("live: %s %s not placed: new entries are halted for the day", symbol, decision.action)
        else:
            account.order(decision.action, decision.notional_usd)
        self.book.save(account_name(symbol), account)

    async def _mark(self, job: Job, at_s: float) -> None:
        """The per-bar step: new bars through the account (stops and halt), no model call."""
        await self.catch_up(job.symbol or "", at_s)

    # -- the tasks -------------------------------------------------------------------------

    async def _features(self, symbol: str, at_s: float) -> tuple[Bars, Any, dict[str, Any]]:
        if self.market.fetches:  # a network fetch: keep it off the event loop
            bars, at = await asyncio.to_thread(self.market.window, symbol, at_s)
        else:
            bars, at = self.market.window(symbol, at_s)
        return bars, at, features_at(bars, at)

    async def _market_analysis(self, job: Job, at_s: float) -> None:
        symbol = job.symbol or ""
        _, _, features = await self._features(symbol, at_s)
        messages = prompts.technical_analysis(features)
        stage = await run_stage(
            "technical_analysis",
            lambda: self.lyra.complete(task="market_analysis", messages=messages), messages=messages,
        )
        self._check(job, stage)
        if stage.status == "ok":
            self.orchestrator.analysis[symbol] = stage

    async def _signal(self, job: Job, at_s: float) -> None:
        """Catch the account up, decide on its state, and queue the order when the decision's bar is
        the account's last bar and new to decisions (a replay that wrapped, or that replays bars a
        resumed account has already seen, decides but trades nothing)."""
        symbol = job.symbol or ""
        account = await self.catch_up(symbol, at_s)
        bars, at, _ = await self._features(symbol, at_s)
        on_tape = self._tradable(symbol, account, at)
        notional = self.settings.schedule.proposed_notional_usd
        decision = await self.orchestrator.decide_for(symbol, bars, at=at, notional=notional,
                                                      account=account.state())
        self.status.decisions[symbol] = decision
        if on_tape:
            self._trade(symbol, account, decision)
        if self.shadow:  # after the live decision and its order: the shadow arm never reaches the account
            await self.shadow.after_decision(symbol, bars, at, decision, account.state())
            self.status.shadow = self.shadow.report()
        if decision.errors:
            self._error(self._state(job), "; ".join(decision.errors))

    async def _news(self, job: Job, at_s: float) -> None:
        _, _, features = await self._features(job.symbol or "", at_s)
        stage = await run_stage(
            "news_sentiment",
            lambda: self.lyra.complete(
                task="news_sentiment", messages=prompts.news_sentiment(_headlines(job.symbol or "", features))
            ),
        )
        self._check(job, stage)

    async def _health(self, job: Job, at_s: float) -> None:
        await self.monitor.run_once(window_sim_s=job.every_s)

    async def _generic(self, job: Job, at_s: float) -> None:
        completion: Completion = await self.lyra.complete(
            task=job.task,
            messages=[
                {"role": "user", "content": f"Scheduled run of {job.task} for {job.symbol or 'all symbols'}."}
            ],
        )
        del completion

    def _check(self, job: Job, stage: StageResult) -> None:
        if stage.status == "error":
            self._error(self._state(job), stage.error)


def account_name(symbol: str) -> str:
    """The ledger name of a symbol's live paper account."""
    return f"live:{symbol}"


def _headlines(symbol: str, features: dict[str, Any]) -> list[str]:
    """Replays carry no news; these lines describe the tape so that the task has something to rate."""
    lines = [f"{symbol} last at {features.get('close')}"]
    for name, label in (("ret_5", "5-bar"), ("ret_20", "20-bar")):
        if isinstance(features.get(name), float):
            lines.append(f"{symbol} {label} return {features[name]:+.2%}")
    return lines


def install_signal_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)


def summary(status: LiveStatus) -> dict[str, Any]:
    """Fired, skipped and failed ticks per task."""
    out: dict[str, dict[str, int]] = {}
    for state in status.jobs:
        line = out.setdefault(state.job.task, {"fired": 0, "skipped": 0, "errors": 0})
        line["fired"] += state.fired
        line["skipped"] += state.skipped
        line["errors"] += state.errors
    return out


def account_report(status: LiveStatus) -> dict[str, Any]:
    """Each symbol's paper account measured live: the origin document's business metrics (share of
    profitable trades, daily drawdown, P&L against AI spend) beside buy-and-hold over the same bars."""
    return {
        symbol: {"account": account_name(symbol), **results(account), "return_on_ai_spend_definition":
                 ROAS_DEFINITION, "bars_this_run": status.bars.get(symbol, 0)}
        for symbol, account in sorted(status.accounts.items())
    }


async def run_replay_day(
    lyra: Lyra,
    source: str,
    *,
    speed: float = 60.0,
    clock: Clock | None = None,
    session_s: float | None = None,
    stop: asyncio.Event | None = None,
    panel: Callable[[LiveRunner], Any] | None = None,
    book: PaperBook | None = None,
) -> LiveStatus:
    """Run one simulated session of the schedule on a replay (the in-process entry point).

    The session is paced at `speed` simulated seconds per real second, unless `clock` is given
    (a SimulatedClock runs it as fast as its work allows, the same way on any machine).
    """
    symbols = sorted({s for t in lyra.settings.tasks.values() for s in t.symbols})
    clock = clock if clock is not None else ReplayClock(speed)
    runner = LiveRunner(lyra, load_replay(source, symbols), clock, session_s=session_s, book=book)
    if stop is not None:
        runner.stop = stop
    if panel is None:
        return await runner.run()
    with panel(runner):
        return await runner.run()


__all__ = [
    "ACCOUNT_TASK",
    "CcxtMarket",
    "Clock",
    "JobState",
    "LiveOrchestrator",
    "LiveRunner",
    "LiveStatus",
    "Market",
    "ReplayClock",
    "ReplayMarket",
    "SimulatedClock",
    "account_name",
    "account_report",
    "install_signal_handlers",
    "load_replay",
    "run_replay_day",
    "summary",
]
