"""A daemon thread that group-commits queued rows, keeping them in a spool file through outages.

Rows that someone waits on (a billed answer about to be returned) are committed at once, together
with everything queued meanwhile: many concurrent calls share one transaction. Rows nobody waits
on are batched for up to the flush interval. A commit that fails keeps its rows: they go to the
spool (an append-only local file, fsync'd) so that a crash during a database outage loses
nothing, and are retried with backoff until the database takes them.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence

from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError

from lyra.ledger.records import LedgerRow
from lyra.ledger.spool import Spool
from lyra.log import get_logger

log = get_logger("lyra.ledger")

_FIRST_RETRY_S = 0.05
_MAX_RETRY_S = 5.0
_FLUSH_POLL_S = 0.1


class _Flush:
    """A marker in the queue: set `done` once every row queued before it is in the database."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


class _Durable:
    """A marker in the queue: resolve `future` once every row queued before it is durable.

    Durable means committed to the database, or (while the database fails) fsync'd to the spool.
    """

    __slots__ = ("future", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.future: asyncio.Future[bool] = loop.create_future()


class _Stop:
    """A marker in the queue: commit what came before it, then end the thread."""

    __slots__ = ()


_STOP = _Stop()
_Item = LedgerRow | _Flush | _Durable | _Stop


def _is_poison(exc: BaseException) -> bool:
    """True when retrying the same rows cannot succeed (bad values), as opposed to a database outage."""
    if isinstance(exc, DataError | IntegrityError | TypeError | ValueError):
        return True
    if isinstance(exc, sqlite3.IntegrityError | sqlite3.InterfaceError | sqlite3.DataError):
        return True
    # A StatementError that is not a DBAPIError failed while binding values, before any I/O.
    return isinstance(exc, StatementError) and not isinstance(exc, DBAPIError)


def _resolve(waiters: Sequence[_Durable], durable: bool) -> None:
    """Wake the waiting coroutines, one hop per event loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[asyncio.Future[bool]]] = {}
    for waiter in waiters:
        by_loop.setdefault(waiter.loop, []).append(waiter.future)
    for loop, futures in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            loop.call_soon_threadsafe(_set_all, futures, durable)


def _set_all(futures: list[asyncio.Future[bool]], durable: bool) -> None:
    for future in futures:
        if not future.done():
            future.set_result(durable)


class BatchWriter:
    """Group-commits queued rows in chunks of at most `batch_size`; never drops a batch it can keep.

    `put` is the queue's own put: O(1), lock-free for the caller and never blocking. A failed
    commit goes to the spool and is retried with exponential backoff until it succeeds; only rows
    whose values the database rejects are logged and dropped, one by one, so that one bad row
    cannot block the rest.
    """

    def __init__(
        self,
        insert: Callable[[Sequence[LedgerRow]], None],
        *,
        flush_interval_s: float,
        batch_size: int,
        spool: Spool | None = None,
    ) -> None:
        self._insert = insert
        self._interval = flush_interval_s
        self._batch_size = batch_size
        self._spool = spool
        # A deque, not a queue: appending a row wakes nobody (rows wait for the interval or for the
        # next waiter), so a billed answer costs the writer one wake-up, not one per row.
        self._queue: collections.deque[_Item] = collections.deque()
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        self._failing = False  # the last commit failed: rows are in the spool, waiting
        self._held_flushes: list[_Flush] = []  # answered once the database has every row again
        self._unspooled: list[LedgerRow] = []  # rows of an outage the spool could not take either
        # Held while queued items are taken and committed, by the writer or by commit_inline, so
        # that a marker is never answered while rows queued before it are still being committed.
        self.turn = threading.Lock()

    @property
    def started(self) -> bool:
        """Whether `start` was called."""
        return self._thread is not None

    def put(self, item: _Item) -> None:
        """Queue a row (or marker); O(1), never blocks. A full batch wakes the writer early."""
        self._queue.append(item)
        if len(self._queue) >= self._batch_size:
            self._wake.set()

    def has_queued(self) -> bool:
        """Whether anything waits in the queue."""
        return bool(self._queue)

    def start(self) -> None:
        """Start the daemon thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="lyra-ledger-writer", daemon=True)
            self._thread.start()

    def durable(self) -> asyncio.Future[bool]:
        """A future that is True once every row put before this call is durable, False if it cannot be."""
        marker = _Durable(asyncio.get_running_loop())
        self._queue.append(marker)
        self._wake.set()
        if self._thread is None or not self._thread.is_alive():
            marker.future.set_result(False)
        return marker.future

    def flush(self, timeout: float | None = None) -> None:
        """Block until every row put before this call is committed; TimeoutError after `timeout` s."""
        marker = _Flush()
        self._queue.append(marker)
        self._wake.set()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait_s = _FLUSH_POLL_S if deadline is None else min(_FLUSH_POLL_S, deadline - time.monotonic())
            if marker.done.wait(max(0.0, wait_s)):
                return
            # A flush that raced with stop() must not wait for a thread that is gone.
            if self._thread is None or not self._thread.is_alive():
                return
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"the ledger did not commit its queued rows within {timeout} s")

    def stop(self, timeout: float | None) -> bool:
        """Commit everything queued and end the thread; False if it is still busy after `timeout` s."""
        if self._thread is None:
            return True
        self._queue.append(_STOP)
        self._wake.set()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def drain(self) -> list[LedgerRow]:
        """Take the rows left in the queue (after `stop`), releasing any waiting flush."""
        rows: list[LedgerRow] = []
        waiters: list[_Durable] = []
        while True:
            try:
                item = self._queue.popleft()
            except IndexError:
                _resolve(waiters, False)
                return rows
            if isinstance(item, LedgerRow):
                rows.append(item)
            elif isinstance(item, _Flush):
                item.done.set()
            elif isinstance(item, _Durable):
                waiters.append(item)

    def _run(self) -> None:
        last_commit = 0.0
        stopping = False
        while not stopping:
            # Rows nobody waits on are batched for the rest of the interval; a waiter, a flush or
            # a stop wakes the thread at once and everything queued so far shares one commit.
            self._wake.wait(max(0.0, last_commit + self._interval - time.monotonic()))
            self._wake.clear()
            last_commit = time.monotonic()
            with self.turn:
                stopping = self._serve_queue()

    def _serve_queue(self) -> bool:
        """Commit (or spool) what is queued and answer its markers; True when a stop was among them."""
        items = self._take_all()
        rows = [i for i in items if isinstance(i, LedgerRow)]
        waiters = [i for i in items if isinstance(i, _Durable)]
        flushes = [i for i in items if isinstance(i, _Flush)]
        stopping = any(isinstance(i, _Stop) for i in items)
        if rows or waiters or self._failing:  # in an outage, every wake-up retries the spool
            self._commit_or_spool(rows, waiters)
        self._held_flushes += flushes
        if not self._failing or stopping:
            for marker in self._held_flushes:
                marker.done.set()
            self._held_flushes.clear()
        return stopping

    def commit_inline(self, commit: Callable[[Sequence[LedgerRow]], None]) -> bool:
        """Commit every queued row on the caller's thread, if that is safe now; False if not done.

        Safe means: the writer is not busy and not in an outage, and only rows are queued (a
        marker behind them must see them committed first, so then the writer does it). A billed
        answer on SQLite saves the hop to the writer thread this way; rows of every request that
        reached this point together share the commit.
        """
        if self._failing or not self.turn.acquire(blocking=False):
            return False
        try:
            rows: list[LedgerRow] = []
            while self._queue:
                item = self._queue.popleft()
                if not isinstance(item, LedgerRow):
                    self._queue.appendleft(item)
                    self._queue.extendleft(reversed(rows))
                    return False
                rows.append(item)
            try:
                commit(rows)
            except Exception:  # an outage or a bad row: the writer retries, spools or drops them
                self._queue.extendleft(reversed(rows))
                return False
            return True
        finally:
            self.turn.release()

    def _take_all(self) -> list[_Item]:
        items: list[_Item] = []
        while True:
            try:
                items.append(self._queue.popleft())
            except IndexError:
                return items

    def _commit_or_spool(self, rows: list[LedgerRow], waiters: list[_Durable]) -> None:
        """Commit `rows` now; if the database fails, spool them, answer the waiters, then retry."""
        # In an outage with a spool, new rows join the spool behind the others, to keep their order.
        if not (self._failing and self._spool is not None):
            try:
                self._commit_chunks(rows)
                _resolve(waiters, True)
                return
            except Exception as exc:  # the writer thread must outlive any error and keep the rows
                log.warning("ledger: committing %d rows failed (%s: %s); keeping them and retrying",
                            len(rows), type(exc).__name__, _first_line(exc))
                self._failing = True
        durable = self._spool is not None and self._spool.append(rows)
        _resolve(waiters, durable)
        self._retry_spooled([] if durable else rows)

    def _retry_spooled(self, unspooled: list[LedgerRow]) -> None:
        """Retry the spooled rows (and any that could not be spooled) until the database takes them."""
        self._unspooled += unspooled
        delay = _FIRST_RETRY_S
        while True:
            try:
                self._commit_chunks([*(self._spool.read() if self._spool else []), *self._unspooled])
                self._unspooled.clear()
                if self._spool is not None:
                    self._spool.clear()
                self._failing = False
                log.warning("ledger: the database is back; spooled rows are committed")
                return
            except Exception as exc:  # keep the rows, whatever went wrong
                log.warning("ledger: retrying in %.2f s (%s: %s)", delay, type(exc).__name__,
                            _first_line(exc))
            if self._spool is not None:
                # Serve new rows (into the spool) between retries: a put wakes this wait.
                self._wake.wait(delay)
                if self._queue:
                    return
            else:
                time.sleep(delay)
            delay = min(delay * 2, _MAX_RETRY_S)

    def _commit_chunks(self, rows: Sequence[LedgerRow]) -> None:
        for start in range(0, len(rows), self._batch_size):
            self._commit(rows[start:start + self._batch_size])

    def _commit(self, rows: Sequence[LedgerRow]) -> None:
        try:
            self._insert(rows)
        except Exception as exc:
            if not _is_poison(exc):
                raise
            self._commit_one_by_one(rows, exc)

    def _commit_one_by_one(self, rows: Sequence[LedgerRow], exc: BaseException) -> None:
        if len(rows) == 1:
            log.error(
                "ledger: dropping row of request %s (%s %s): the database rejects its values (%s: %s)",
                rows[0].request_id, rows[0].kind, rows[0].attempt, type(exc).__name__, _first_line(exc),
            )
            return
        for row in rows:
            self._commit([row])


def _first_line(exc: BaseException) -> str:
    return str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ""


__all__ = ["BatchWriter"]
