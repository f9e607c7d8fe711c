"""State in one SQLite file, shared by several processes on one host.

Every write is one `BEGIN IMMEDIATE` transaction: SQLite then holds the file's write lock from the
first read, so the check and the update of a reservation cannot interleave with another process.
Calls are synchronous on purpose: each takes tens of microseconds, less than handing it to a thread.

A reservation whose ttl passed moves from `reservations` to `expired` and its holds from
caps.reserved to caps.committed; its row stays there `expired_keep_s` so a late settle can correct.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from lyra.errors import StateReset, StateUnavailable
from lyra.sqlite_wal import Checkpointer, enable_wal, hand_off_checkpoints
from lyra.state.base import EXPIRED_KEEP_S, BucketLevel, CapUsage, Charge, Refusal, StateBackend
from lyra.state.memory import bucket_refill, bucket_wait, check_actual, merge_charges

_SCHEMA = """
CREATE TABLE IF NOT EXISTS caps (
    cap TEXT PRIMARY KEY,
    committed INTEGER NOT NULL DEFAULT 0,
    reserved INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS reservations (
    id TEXT PRIMARY KEY,
    expires_at REAL NOT NULL,
    holds TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS reservations_expiry ON reservations (expires_at);
CREATE TABLE IF NOT EXISTS expired (
    id TEXT PRIMARY KEY,
    forget_at REAL NOT NULL,
    holds TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS expired_forget ON expired (forget_at);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS buckets (
    name TEXT PRIMARY KEY,
    tokens REAL NOT NULL,
    updated_at REAL NOT NULL
) WITHOUT ROWID;
"""

# caps.reserved is the sum of the holds of the rows in reservations, and caps.committed includes
# the holds of the rows in expired: every statement that adds or removes such a row adjusts the
# caps in the same transaction.
_ADJUST = (
    "INSERT INTO caps (cap, committed, reserved) VALUES (?1, ?2, ?3)"
    " ON CONFLICT (cap) DO UPDATE SET committed = committed + ?2, reserved = reserved + ?3"
)
_SEED_COMMITTED = (
    "INSERT INTO caps (cap, committed) VALUES (?, ?)"
    " ON CONFLICT (cap) DO UPDATE SET committed = max(committed, excluded.committed)"
)


class SqliteBackend(StateBackend):
    """Caps, reservations and buckets in a SQLite file (WAL), atomic across processes on one host.

    One connection per backend, guarded by a lock so that threads sharing the backend take turns.
    """

    name = "sqlite"

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout_s: float = 10.0,
        clock: Callable[[], float] = time.time,
        expired_keep_s: float = EXPIRED_KEEP_S,
    ) -> None:
        self.path = str(path)
        self._clock = clock
        self._keep = expired_keep_s
        if self.path != ":memory:" and not self.path.startswith("file:"):
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: the module opens no transactions of its own; ours are explicit.
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
        enable_wal(self._db)
        hand_off_checkpoints(self._db)
        self._checkpointer = Checkpointer(self.path) if Path(self.path).exists() else None
        # NORMAL loses nothing on a process crash in WAL mode, only on power loss, and the budget
        # can be rebuilt from the ledger with seed_committed.
        self._db.execute("PRAGMA synchronous = NORMAL")
        with self._write() as db:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            db = self._db
            try:
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise self._unavailable(exc) from exc
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            try:
                db.execute("COMMIT")
            except sqlite3.OperationalError as exc:
                db.execute("ROLLBACK")
                raise self._unavailable(exc) from exc

    def _unavailable(self, exc: sqlite3.OperationalError) -> StateUnavailable:
        return StateUnavailable(f"the budget state file {self.path} cannot be written ({exc})")

    async def epoch(self) -> str | None:
        """The marker stored in the file, or None for a new file."""
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()
        return None if row is None else str(row[0])

    async def install_epoch(self, epoch: str, committed: Mapping[str, int]) -> str:
        """Add `committed` and store `epoch`, unless a marker is stored already."""
        with self._write() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()
            if row is not None:
                return str(row[0])
            db.executemany(_ADJUST, [(cap, value, 0) for cap, value in committed.items()])
            db.execute("INSERT INTO meta (key, value) VALUES ('epoch', ?)", (epoch,))
        return epoch

    def _purge(self, db: sqlite3.Connection, now: float) -> None:
        """Expire reservations whose ttl passed, and forget expired ones kept long enough."""
        db.execute("DELETE FROM expired WHERE forget_at <= ?", (now,))
        expired = db.execute(
            "SELECT id, expires_at, holds FROM reservations WHERE expires_at <= ?", (now,)
        ).fetchall()
        for reservation_id, expires_at, holds in expired:
            # The holder may have been served and billed before it died: count the hold as spent.
            db.execute("DELETE FROM reservations WHERE id = ?", (reservation_id,))
            db.execute(
                "INSERT OR REPLACE INTO expired (id, forget_at, holds) VALUES (?, ?, ?)",
                (reservation_id, expires_at + self._keep, holds),
            )
            held: dict[str, int] = json.loads(holds)
            db.executemany(_ADJUST, [(cap, amount, -amount) for cap, amount in held.items()])

    async def reserve(self, reservation_id: str, charges: Sequence[Charge], ttl_s: float) -> Refusal | None:
        """All or nothing: hold every charge, or none and say which cap refused."""
        merged = merge_charges(charges)
        caps = list(merged)
        with self._write() as db:
            if self.expected_epoch is not None:
                row = db.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()
                if row is None or row[0] != self.expected_epoch:
                    raise StateReset("the budget state was reset; it is being rebuilt from the ledger")
            # Read the clock once the write lock is ours: waiting for it must not shorten the ttl.
            now = self._clock()
            if db.execute("SELECT 1 FROM reservations WHERE expires_at <= ? LIMIT 1", (now,)).fetchone():
                self._purge(db, now)
            held = "SELECT 1 FROM reservations WHERE id = ?1 UNION ALL SELECT 1 FROM expired WHERE id = ?1"
            if db.execute(held, (reservation_id,)).fetchone():
                raise ValueError(f"reservation {reservation_id!r} is already held")
            marks = ",".join("?" * len(caps))
            rows = db.execute(f"SELECT cap, committed + reserved FROM caps WHERE cap IN ({marks})", caps)
            used_by_cap = dict(rows.fetchall())
            for cap, (limit, amount) in merged.items():
                used = used_by_cap.get(cap, 0)
                if used + amount > limit:
                    return Refusal(cap=cap, limit=limit, used=used, amount=amount)
            holds = json.dumps({cap: amount for cap, (_, amount) in merged.items()})
            try:
                db.execute(
                    "INSERT INTO reservations (id, expires_at, holds) VALUES (?, ?, ?)",
                    (reservation_id, now + ttl_s, holds),
                )
            except sqlite3.IntegrityError as exc:
                raise ValueError(f"reservation {reservation_id!r} is already held") from exc
            db.executemany(_ADJUST, [(cap, 0, amount) for cap, (_, amount) in merged.items()])
        return None

    async def commit(self, reservation_id: str, actual: Mapping[str, int]) -> None:
        """Replace the reservation by what was really spent."""
        check_actual(actual)
        self._settle(reservation_id, actual)

    async def release(self, reservation_id: str) -> None:
        """Drop a reservation without spending anything."""
        self._settle(reservation_id, {})

    def _settle(self, reservation_id: str, actual: Mapping[str, int]) -> None:
        """Replace a reservation's holds by `actual`, wherever they are counted, in one transaction."""
        with self._write() as db:
            row = db.execute("SELECT holds FROM reservations WHERE id = ?", (reservation_id,)).fetchone()
            if row is not None:  # live (or past its ttl but not yet expired): free its holds
                db.execute("DELETE FROM reservations WHERE id = ?", (reservation_id,))
                held: dict[str, int] = json.loads(row[0])
                changes = [(cap, actual.get(cap, 0), -amount) for cap, amount in held.items()]
            else:
                row = db.execute("SELECT holds FROM expired WHERE id = ?", (reservation_id,)).fetchone()
                held = {} if row is None else json.loads(row[0])
                if row is not None:  # expired into committed: correct the provisional charge
                    db.execute("DELETE FROM expired WHERE id = ?", (reservation_id,))
                # Unknown: its money still counts.
                changes = [(cap, actual.get(cap, 0) - amount, 0) for cap, amount in held.items()]
            changes += [(cap, amount, 0) for cap, amount in actual.items() if cap not in held]
            db.executemany(_ADJUST, changes)

    async def usage(self, caps: Sequence[str]) -> dict[str, CapUsage]:
        """Committed (with expired holds) and reserved (live holds only) amounts of each cap."""
        # A write transaction, because counting only live reservations means expiring the rest.
        with self._write() as db:
            self._purge(db, self._clock())
            marks = ",".join("?" * len(caps))
            rows = db.execute(f"SELECT cap, committed, reserved FROM caps WHERE cap IN ({marks})", list(caps))
            found = {cap: CapUsage(committed=done, reserved=held) for cap, done, held in rows}
        return {cap: found.get(cap, CapUsage()) for cap in caps}

    async def seed_committed(self, values: Mapping[str, int]) -> None:
        """Raise each cap's committed amount to at least the given value."""
        with self._write() as db:
            db.executemany(_SEED_COMMITTED, list(values.items()))

    async def take_level(self, bucket: str, capacity: float, refill_per_s: float,
                         amount: float) -> BucketLevel:
        """Token bucket: take `amount` (wait 0.0) or nothing (the wait in seconds), and the level after."""
        with self._write() as db:
            now = self._clock()
            row = db.execute("SELECT tokens, updated_at FROM buckets WHERE name = ?", (bucket,)).fetchone()
            tokens = capacity if row is None else bucket_refill(row[0], row[1], now, capacity, refill_per_s)
            if amount > capacity:
                return BucketLevel(math.inf, tokens)
            taken = tokens >= amount
            left = min(capacity, tokens - amount) if taken else tokens
            db.execute("INSERT OR REPLACE INTO buckets (name, tokens, updated_at) VALUES (?, ?, ?)",
                       (bucket, left, now))
        return BucketLevel(0.0 if taken else bucket_wait(tokens, amount, refill_per_s), left)

    async def close(self) -> None:
        """Close the connection."""
        if self._checkpointer is not None:
            self._checkpointer.stop()
        with self._lock:
            self._db.close()
