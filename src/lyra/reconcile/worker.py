"""The reconciler: asks /generation what each attempt was billed and stores it beside the booking.

It runs in the engine's background (a bounded queue fed by the router's attempts, never blocking a
call) and as `lyra reconcile`, which catches up the rows a crash or a full queue left. OpenRouter
answers 404 for a while after a call, so each generation is asked again with backoff, on a sleep
function the caller may replace (tests pass one that does not wait).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from lyra.errors import LyraError, UpstreamError
from lyra.ledger import Ledger, PendingAttempt
from lyra.log import get_logger
from lyra.openrouter.transport import OpenRouterTransport
from lyra.reconcile.billed import generation_cost_nanos
from lyra.reconcile.drift import DriftWatch
from lyra.routing.policy import RoutePlan
from lyra.types import Attempt, Completion, CompletionRequest

log = get_logger("lyra.reconcile")
Sleep = Callable[[float], Awaitable[None]]
SecretOf = Callable[[str], "str | None"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ReconcileOptions:
    """How often and how patiently /generation is asked (see `[reconcile]` in lyra.toml)."""

    first_delay_s: float = 1.0
    max_delay_s: float = 60.0
    lookups: int = 8
    queue_size: int = 10_000
    workers: int = 4
    warn_drift_share: Decimal = Decimal("0.02")


@dataclass(frozen=True, slots=True)
class Reconciled:
    """What came of reconciling one generation: its billed cost, or why there is none yet."""

    generation_id: str
    key_name: str | None
    model: str | None
    booked_nanos: int
    billed_nanos: int | None = None
    rows: int = 0
    lookups: int = 0
    error: str | None = None

    @property
    def drift_nanos(self) -> int | None:
        return None if self.billed_nanos is None else self.billed_nanos - self.booked_nanos

    def to_dict(self) -> dict[str, object]:
        return {"generation_id": self.generation_id, "key": self.key_name, "model": self.model,
                "booked_nanos": self.booked_nanos, "billed_nanos": self.billed_nanos,
                "drift_nanos": self.drift_nanos, "rows": self.rows, "lookups": self.lookups,
                "error": self.error}


Observer = Callable[[Reconciled], None]


class Reconciler:
    """Reconciles attempts with OpenRouter's /generation, in the background or on demand.

    `secret_of(key_name)` gives the secret of the key that made the call (the ledger stores names
    only), or None when that key is no longer configured. It is also a router Recorder: every
    attempt with a generation id is queued as it is recorded.
    """

    def __init__(self, ledger: Ledger, transport: OpenRouterTransport, secret_of: SecretOf, *,
                 options: ReconcileOptions | None = None, sleep: Sleep = asyncio.sleep,
                 clock: Callable[[], float] = time.time, observers: Sequence[Observer] = ()) -> None:
        self.ledger = ledger
        self.options = options or ReconcileOptions()
        self.watch = DriftWatch(self.options.warn_drift_share)
        self.dropped = 0  # attempts the full queue refused: left for `lyra reconcile`
        self._transport = transport
        self._secret_of = secret_of
        self._sleep = sleep
        self._clock = clock
        self._observers = list(observers)
        self._queue: asyncio.Queue[PendingAttempt] = asyncio.Queue(self.options.queue_size)
        self._workers: list[asyncio.Task[None]] = []

    def __repr__(self) -> str:
        return f"Reconciler(queued={self._queue.qsize()}, workers={len(self._workers)})"

    # --- the router's Recorder protocol ---------------------------------------------------------

    def attempt(self, request_id: str, request: CompletionRequest, plan: RoutePlan, attempt: Attempt) -> None:
        if attempt.generation_id and attempt.outcome != "skipped":
            self.submit(PendingAttempt(attempt.generation_id, attempt.key_name, attempt.model,
                                       attempt.cost_nanos, self._clock()))

    def completion(self, request_id: str, request: CompletionRequest, completion: Completion) -> None:
        return None

    def failure(self, request_id: str, request: CompletionRequest, plan: RoutePlan, error: LyraError) -> None:
        return None

    # --- background ------------------------------------------------------------------------------

    def submit(self, pending: PendingAttempt) -> bool:
        """Queue one attempt without waiting; False (and counted) when the queue is full."""
        try:
            self._queue.put_nowait(pending)
        except asyncio.QueueFull:
            self.dropped += 1
            return False
        return True

    def start(self) -> None:
        """Start the workers on the running event loop; idempotent."""
        if self._workers:
            return
        self._workers = [asyncio.create_task(self._work(), name=f"lyra-reconcile-{i}")
                         for i in range(self.options.workers)]

    async def stop(self) -> None:
        """Stop the workers; what is still queued stays unreconciled in the ledger for `lyra reconcile`."""
        workers, self._workers = self._workers, []
        for task in workers:
            task.cancel()
        for task in workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def drain(self) -> None:
        """Wait until every queued attempt has been reconciled or given up on."""
        await self._queue.join()

    async def _work(self) -> None:
        while True:
            pending = await self._queue.get()
            try:
                await self.reconcile(pending)
            except Exception as exc:  # one bad row must not stop the worker
                log.error("reconcile: generation %s failed (%s)", pending.generation_id, type(exc).__name__)
            finally:
                self._queue.task_done()

    # --- one generation ----------------------------------------------------------------------------

    async def reconcile(self, pending: PendingAttempt) -> Reconciled:
        """Ask /generation (through its 404 lag) and store the billed cost; never raises an upstream error."""
        billed, lookups, error = await self._billed(pending)
        if billed is None:
            return Reconciled(pending.generation_id, pending.key_name, pending.model, pending.cost_nanos,
                              lookups=lookups, error=error)
        with contextlib.suppress(LyraError):
            await self.ledger.durable()  # the attempt's own row may still be queued
        rows = await asyncio.to_thread(self.ledger.record_billed, pending.generation_id, billed,
                                       self._clock())
        done = Reconciled(pending.generation_id, pending.key_name, pending.model, pending.cost_nanos,
                          billed_nanos=billed, rows=rows, lookups=lookups)
        if rows:
            self.watch.add(pending.cost_nanos * rows, billed * rows)
            for observe in self._observers:
                observe(done)
        return done

    async def _billed(self, pending: PendingAttempt) -> tuple[int | None, int, str | None]:
        if pending.key_name is None:
            return None, 0, "the attempt has no key name"
        secret = self._secret_of(pending.key_name)
        if secret is None:
            return None, 0, f"key {pending.key_name!r} is not configured"
        options = self.options
        delay = options.first_delay_s
        error = "no answer"
        for lookup in range(1, options.lookups + 1):
            await self._sleep(delay)  # the first look too: /generation lags behind the call
            delay = min(delay * 2, options.max_delay_s)
            try:
                payload = await self._transport.get_json("/generation", api_key=secret,
                                                         params={"id": pending.generation_id})
            except UpstreamError as exc:
                error = f"{exc.kind} ({exc.status})" if exc.status else str(exc.kind)
                if exc.status == 404 or exc.retryable:
                    continue
                return None, lookup, error
            data = payload.get("data")
            billed = generation_cost_nanos(data) if isinstance(data, dict) else None
            if billed is None:
                return None, lookup, "the /generation answer has no total_cost"
            return billed, lookup, None
        return None, options.lookups, f"still {error} after {options.lookups} lookups"

    async def catch_up(self, *, since_ts: float = 0.0, limit: int | None = None) -> list[Reconciled]:
        """Reconcile the ledger's unreconciled attempt rows (a crash, a full queue), a few at a time."""
        rows = await asyncio.to_thread(self.ledger.unreconciled, since_ts=since_ts, limit=limit)
        gate = asyncio.Semaphore(self.options.workers)

        async def one(pending: PendingAttempt) -> Reconciled:
            async with gate:
                return await self.reconcile(pending)

        return list(await asyncio.gather(*(one(p) for p in _distinct(rows))))


def _distinct(rows: Sequence[PendingAttempt]) -> list[PendingAttempt]:
    """One entry per generation id (a generation has one row; never ask twice)."""
    seen: set[str] = set()
    found: list[PendingAttempt] = []
    for row in rows:
        if row.generation_id not in seen:
            seen.add(row.generation_id)
            found.append(row)
    return found


__all__ = ["Observer", "ReconcileOptions", "Reconciled", "Reconciler", "Sleep"]
