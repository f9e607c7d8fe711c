"""SQLite in WAL mode for several processes: switching to WAL safely, checkpoints off the request path."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time


def enable_wal(cursor: sqlite3.Cursor | sqlite3.Connection, *, attempts: int = 200) -> None:
    """Switch a SQLite file to WAL, retrying while another process holds the lock it needs.

    The busy timeout does not cover a journal-mode change: two processes opening a new file at
    once would otherwise see `database is locked` from this pragma.
    """
    delay = 0.002
    for attempt in range(attempts):
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if ("locked" not in str(exc) and "busy" not in str(exc)) or attempt == attempts - 1:
                raise
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


class Checkpointer:
    """Copies a WAL file's frames back into its database from a daemon thread, off the request path.

    SQLite's automatic checkpoint runs inside whichever commit crosses 1,000 pages, and its fsync
    stalls that commit for milliseconds: the p99 of every request. Connections that hand the job to
    this thread set `PRAGMA wal_autocheckpoint = 0`; a PASSIVE checkpoint never blocks writers.
    """

    def __init__(self, path: str, *, interval_s: float = 1.0) -> None:
        self._path = path
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lyra-wal-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error:
            return
        try:
            db.execute("PRAGMA busy_timeout = 1000")
            while not self._stop.wait(self._interval):
                with contextlib.suppress(sqlite3.Error):  # busy, or the file went away: try again later
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            db.close()

    def stop(self) -> None:
        """End the thread (it finishes the checkpoint under way)."""
        self._stop.set()


def hand_off_checkpoints(cursor: sqlite3.Cursor | sqlite3.Connection) -> None:
    """Stop this connection from checkpointing inside its commits (a Checkpointer does it)."""
    cursor.execute("PRAGMA wal_autocheckpoint = 0")
