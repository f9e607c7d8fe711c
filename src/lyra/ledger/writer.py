"""A daemon thread that drains queued rows into the database in batches, never dropping a batch."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence

from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError

from lyra.ledger.records import LedgerRow
from lyra.log import get_logger

log = get_logger("lyra.ledger")

_FIRST_RETRY_S = 0.05
_MAX_RETRY_S = 5.0
_FLUSH_POLL_S = 0.1


class _Flush:
    """A marker in the queue: set `done` once every row queued before it is committed."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


class _Stop:
    """A marker in the queue: commit what came before it, then end the thread."""

    __slots__ = ()


_STOP = _Stop()
_Item = LedgerRow | _Flush | _Stop


def _is_poison(exc: BaseException) -> bool:
    """True when retrying the same rows cannot succeed (bad values), as opposed to a database outage."""
    if isinstance(exc, DataError | IntegrityError | TypeError | ValueError):
        return True
    # A StatementError that is not a DBAPIError failed while binding values, before any I/O.
    return isinstance(exc, StatementError) and not isinstance(exc, DBAPIError)


class BatchWriter:
    """Commits queued rows at least every `flush_interval_s`, in chunks of at most `batch_size`.

    `put` is the queue's own put: O(1), lock-free for the caller and never blocking. A failed
    commit is retried with exponential backoff until it succeeds; only rows whose values the
    database rejects are logged and dropped, one by one, so one bad row cannot block the rest.
    """

    def __init__(
        self,
        insert: Callable[[Sequence[LedgerRow]], None],
        *,
        flush_interval_s: float,
        batch_size: int,
    ) -> None:
        self._insert = insert
        self._interval = flush_interval_s
        self._batch_size = batch_size
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self.put: Callable[[_Item], None] = self._queue.put
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()

    @property
    def started(self) -> bool:
        """Whether `start` was called."""
        return self._thread is not None

    def has_queued(self) -> bool:
        """Whether anything waits in the queue."""
        return not self._queue.empty()

    def start(self) -> None:
        """Start the daemon thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="lyra-ledger-writer", daemon=True)
            self._thread.start()

    def flush(self, timeout: float | None = None) -> None:
        """Block until every row put before this call is committed; TimeoutError after `timeout` s."""
        marker = _Flush()
        self._queue.put(marker)
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
        self._queue.put(_STOP)
        self._wake.set()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def drain(self) -> list[LedgerRow]:
        """Take the rows left in the queue (after `stop`), releasing any waiting flush."""
        rows: list[LedgerRow] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return rows
            if isinstance(item, LedgerRow):
                rows.append(item)
            elif isinstance(item, _Flush):
                item.done.set()

    def _run(self) -> None:
        last_commit = 0.0
        stopping = False
        while not stopping:
            first = self._queue.get()
            # Sleep out the rest of the interval instead of waking per row: one wake-up per batch
            # keeps the writer off the request path's GIL. An idle writer commits at once; flush
            # and stop cut the wait short.
            self._wake.wait(max(0.0, last_commit + self._interval - time.monotonic()))
            self._wake.clear()
            rows: list[LedgerRow] = []
            flushes: list[_Flush] = []
            for item in self._take_all(first):
                if isinstance(item, LedgerRow):
                    rows.append(item)
                elif isinstance(item, _Flush):
                    flushes.append(item)
                else:
                    stopping = True
            last_commit = time.monotonic()
            for start in range(0, len(rows), self._batch_size):
                self._commit(rows[start:start + self._batch_size])
            for marker in flushes:
                marker.done.set()

    def _take_all(self, first: _Item) -> list[_Item]:
        items = [first]
        while True:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                return items

    def _commit(self, rows: Sequence[LedgerRow]) -> None:
        delay = _FIRST_RETRY_S
        while True:
            try:
                self._insert(rows)
                return
            except Exception as exc:  # the writer thread must outlive any error and keep the rows
                if _is_poison(exc):
                    self._commit_one_by_one(rows, exc)
                    return
                log.warning(
                    "ledger: committing %d rows failed (%s: %s); retrying in %.2f s",
                    len(rows), type(exc).__name__, _first_line(exc), delay,
                )
            time.sleep(delay)
            delay = min(delay * 2, _MAX_RETRY_S)

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
