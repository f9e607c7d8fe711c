"""The Ledger: durable usage rows written off the request path, and the reads built on them."""

from __future__ import annotations

import asyncio
import atexit
import os
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import Engine

from lyra.errors import LedgerUnavailable
from lyra.ledger import queries, reconciliation
from lyra.ledger.accounts import AccountBook
from lyra.ledger.audit import AuditTrail
from lyra.ledger.reconciliation import DriftLine, PendingAttempt
from lyra.ledger.records import ROW_FIELDS, LedgerRow, SpendTotals, SummaryLine
from lyra.ledger.schema import (
    USAGE_TABLE,
    create_ledger_engine,
    create_tables,
    display_url,
    parse_url,
    retry_if_locked,
    sqlite_on_connect,
    sqlite_path,
    usage,
)
from lyra.ledger.spool import Spool, spool_prefix
from lyra.ledger.writer import BatchWriter, log
from lyra.paths import data_folder
from lyra.sqlite_wal import Checkpointer

ENV_URL = "LYRA_LEDGER_URL"
_INSERT_SQL = (f"INSERT INTO {USAGE_TABLE} ({', '.join(ROW_FIELDS)}) "
               f"VALUES ({', '.join('?' * len(ROW_FIELDS))})")
# How long a billed answer waits for its row to be durable before the caller is told to retry.
DURABLE_TIMEOUT_S = 5.0


def default_url(*, simulated: bool = False) -> str:
    """sqlite:/// URL of ledger.db (ledger-sim.db for simulator runs) in the user's data folder."""
    return f"sqlite:///{data_folder() / ('ledger-sim.db' if simulated else 'ledger.db')}"


class Ledger:
    """Durable usage records in SQLite (WAL) or Postgres, appended off the request path.

    `write` only enqueues; a daemon thread group-commits. `await durable()` returns once every
    row written before it is committed (a billed answer waits for this before it is returned);
    rows nobody waits on are committed within `flush_interval_s`. Through a database outage rows
    go to a local spool file and are retried with backoff; a later start commits spools that
    dead processes left. `close` (also run at exit) commits what is queued. Several processes
    may append to one SQLite file or one Postgres database at once.

    A simulated ledger (a simulator run's) writes rows marked simulated and reads only those; a
    real one never sees them, so simulated spend never counts against real caps.
    """

    def __init__(
        self,
        url: str,
        *,
        flush_interval_s: float = 0.5,
        batch_size: int = 500,
        close_timeout_s: float = 10.0,
        simulated: bool = False,
        spool_folder: Path | None = None,
        synchronous: str = "normal",
    ) -> None:
        if flush_interval_s <= 0:
            raise ValueError(f"flush_interval_s must be > 0, got {flush_interval_s}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self._url = parse_url(url)
        self.url_for_display: str = display_url(self._url)
        self._close_timeout_s = close_timeout_s
        self.simulated = simulated
        self._spool = Spool(spool_folder or data_folder() / "spool", spool_prefix(self.url_for_display))
        self._sqlite_file = sqlite_path(self._url)
        self._writer_db: sqlite3.Connection | None = None  # the writer thread's own, for SQLite
        self._inline_db: sqlite3.Connection | None = None  # the event loop's, for commit_inline
        self._synchronous = "FULL" if synchronous == "full" else "NORMAL"
        self._checkpointer: Checkpointer | None = None
        self._writer = BatchWriter(self._commit_batch, flush_interval_s=flush_interval_s,
                                   batch_size=batch_size, spool=self._spool)
        self._put = self._writer.put
        self._lock = threading.RLock()
        self._engine: Engine | None = None
        self._audit: AuditTrail | None = None
        self._accounts: AccountBook | None = None
        self._closed = False

    @classmethod
    def from_env(cls, configured_url: str | None = None, *, simulated: bool = False) -> Ledger:
        """A ledger at $LYRA_LEDGER_URL, else `configured_url`, else the default file in the data folder."""
        url = os.environ.get(ENV_URL) or configured_url or default_url(simulated=simulated)
        return cls(url, simulated=simulated)

    def __repr__(self) -> str:
        return f"Ledger({self.url_for_display!r})"

    def start(self) -> None:
        """Create missing tables and start the writer thread; idempotent, safe across processes."""
        with self._lock:
            if self._closed:
                raise RuntimeError("this ledger is closed; create a new Ledger")
            if self._writer.started:
                return
            self._connected()
            self._spool.recover(self._insert)
            if self._sqlite_file is not None:
                self._checkpointer = Checkpointer(str(self._sqlite_file))
            self._writer.start()
            atexit.register(self.close)

    def write(self, row: LedgerRow) -> None:
        """Queue a row for the writer thread: O(1), never blocks, never raises.

        Rows written before `start` wait in the queue; rows written after `close` are
        committed at once, on the caller's thread.
        """
        if self._closed:
            self._write_late(row)
            return
        self._put(row)

    async def durable(self, within_s: float = DURABLE_TIMEOUT_S) -> None:
        """Return once every row written so far is durable; LedgerUnavailable if it is not in time.

        Durable means committed, or fsync'd to the spool while the database fails. Concurrent
        callers share one commit. The rows are kept and written later either way.
        """
        if self._closed:
            return
        if not self._writer.started:
            self.start()
        if self._sqlite_file is not None and self._writer.commit_inline(self._commit_inline):
            return
        try:
            ok = await asyncio.wait_for(self._writer.durable(), within_s)
        except TimeoutError:
            ok = False
        if not ok:
            raise LedgerUnavailable("the ledger cannot record this call right now (its row is kept and "
                                    "will be written); retry later", retry_after=2.0)

    def flush(self, timeout: float | None = None) -> None:
        """Block until every row written so far is committed (TimeoutError after `timeout` s)."""
        with self._lock:
            if self._closed:
                return  # close() committed the queue; later writes commit synchronously
            self.start()
        self._writer.flush(timeout)

    def close(self) -> None:
        """Commit everything queued and stop the writer thread; idempotent."""
        with self._lock:
            if self._closed:
                return
            if not self._writer.started and self._writer.has_queued():
                self.start()  # rows written before start are still owed to the ledger
            self._closed = True
            if not self._writer.started:
                return
        if not self._writer.stop(self._close_timeout_s):
            log.error("ledger: the writer still retries after %.1f s; queued rows may be lost at exit",
                      self._close_timeout_s)
            return
        leftover = self._writer.drain()  # rows that raced with close, queued after the stop marker
        if leftover:
            self._write_late(*leftover)
        atexit.unregister(self.close)
        self._spool.close()
        if self._checkpointer is not None:
            self._checkpointer.stop()
        for db in (self._writer_db, self._inline_db):
            if db is not None:
                db.close()
        self._connected().dispose()

    def spend_between(self, start_ts: float, end_ts: float) -> SpendTotals:
        """Billed spend of attempt rows with start_ts <= ts < end_ts; tokens are prompt + completion."""
        with self._connected().connect() as conn:
            return queries.spend_between(conn, start_ts, end_ts, simulated=self.simulated)

    def summary(self, *, since_ts: float, by: str, until_ts: float | None = None,
                client: str | None = None) -> list[SummaryLine]:
        """One line per model, key, task, tier, client, user, tag or UTC day: counts, tokens, cost, latency.

        Each line has group, requests, attempts, errors (failed requests), attempt_errors,
        prompt_tokens, completion_tokens, cost_nanos (billed, from attempt rows), cached (hits),
        and avg/p50/p95_latency_ms over ok request rows (None without any). Model lines group by
        served model, or the requested one when nothing was served. Days come in order, the
        other groups by cost, highest first. With `client`, only that gateway client's rows count.
        A row with several tags counts in each tag's line (queries.summary).
        """
        with self._connected().connect() as conn:
            return queries.summary(conn, since_ts=since_ts, until_ts=until_ts, by=by,
                                   simulated=self.simulated, client=client)

    def rows(
        self, *, since_ts: float = 0, kind: str | None = None, limit: int | None = None
    ) -> list[LedgerRow]:
        """Committed rows with ts >= since_ts, oldest first."""
        with self._connected().connect() as conn:
            return queries.rows(conn, since_ts=since_ts, kind=kind, limit=limit, simulated=self.simulated)

    # --- reconciliation with OpenRouter's /generation (lyra.reconcile) -------------------------

    def unreconciled(self, *, since_ts: float = 0.0, limit: int | None = None) -> list[PendingAttempt]:
        """Committed attempt rows with a generation id and no billed cost yet, oldest first."""
        with self._connected().connect() as conn:
            return reconciliation.pending(conn, simulated=self.simulated, since_ts=since_ts, limit=limit)

    def record_billed(self, generation_id: str, billed_nanos: int, at: float) -> int:
        """Store what OpenRouter billed for a generation's attempt rows; how many rows took it."""
        def run() -> int:
            with self._connected().begin() as conn:
                return reconciliation.record(conn, generation_id, billed_nanos, at, simulated=self.simulated)
        return retry_if_locked(run)

    def drift(self, *, since_ts: float, by: str = "all", until_ts: float | None = None) -> list[DriftLine]:
        """Booked against billed spend of attempts with a generation id, per model, key or all."""
        with self._connected().connect() as conn:
            return reconciliation.drift(conn, since_ts=since_ts, until_ts=until_ts, by=by,
                                        simulated=self.simulated)

    def spend_by_key_day(self, *, since_ts: float,
                         until_ts: float | None = None) -> dict[tuple[str, str], int]:
        """Booked spend of attempt rows per (key name, UTC day)."""
        with self._connected().connect() as conn:
            return reconciliation.spend_by_key_day(conn, since_ts=since_ts, until_ts=until_ts,
                                                   simulated=self.simulated)

    def _connected(self) -> Engine:
        """The engine, creating it and any missing tables on first use."""
        engine = self._engine
        if engine is None:
            with self._lock:
                if self._engine is None:
                    created = create_ledger_engine(self._url)
                    create_tables(created)
                    self._engine = created
                engine = self._engine
        return engine

    @property
    def audit(self) -> AuditTrail:
        """The decision audit trail kept in the same database."""
        if self._audit is None:
            self._audit = AuditTrail(self._connected())
        return self._audit

    @property
    def accounts(self) -> AccountBook:
        """The paper accounts kept in the same database."""
        if self._accounts is None:
            self._accounts = AccountBook(self._connected())
        return self._accounts

    def _commit_batch(self, rows: Sequence[LedgerRow]) -> None:
        """The writer thread's commit: on SQLite through a connection of its own, with no ORM layer.

        A group commit is on every billed answer's path, so it must cost tens of microseconds,
        not hundreds; Postgres goes through SQLAlchemy's pool as everything else does.
        """
        if self._sqlite_file is None:
            self._insert(rows)
            return
        if self._writer_db is None:
            self._writer_db = self._raw_connection(busy_timeout_ms=30_000)
        _insert_raw(self._writer_db, rows)

    def _commit_inline(self, rows: Sequence[LedgerRow]) -> None:
        """A billed answer's commit on the event loop's thread (SQLite): no hop to the writer.

        Its busy timeout is short: when another process holds the file's write lock for more than
        a moment, this fails and the writer thread, which may wait, commits instead.
        """
        if self._inline_db is None:
            self._inline_db = self._raw_connection(busy_timeout_ms=5)
        _insert_raw(self._inline_db, rows)

    def _raw_connection(self, *, busy_timeout_ms: int) -> sqlite3.Connection:
        assert self._sqlite_file is not None
        db = sqlite3.connect(self._sqlite_file, isolation_level=None, check_same_thread=False)
        sqlite_on_connect(db, None)
        db.execute(f"PRAGMA synchronous = {self._synchronous}")
        db.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
        return db

    def _insert(self, rows: Sequence[LedgerRow]) -> None:
        params = [{name: getattr(row, name) for name in ROW_FIELDS} for row in rows]
        with self._connected().begin() as conn:
            conn.execute(usage.insert(), params)

    def _write_late(self, *rows: LedgerRow) -> None:
        try:
            self._insert(rows)
        except Exception as exc:  # write() must not raise into the request path
            log.error("ledger: %d rows written after close were lost (%s)", len(rows), type(exc).__name__)


def _insert_raw(db: sqlite3.Connection, rows: Sequence[LedgerRow]) -> None:
    db.execute("BEGIN")
    try:
        db.executemany(_INSERT_SQL, [tuple(getattr(row, name) for name in ROW_FIELDS) for row in rows])
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


__all__ = ["DURABLE_TIMEOUT_S", "ENV_URL", "Ledger", "data_folder", "default_url"]
