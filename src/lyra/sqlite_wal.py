"""Switching a SQLite file to WAL safely while other processes open it too."""

from __future__ import annotations

import sqlite3
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
