"""Read a ledger file the way an auditor would: plain sqlite3, no Lyra code in between."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def query(db: Path, sql: str, params: Iterable[Any] = ()) -> list[tuple[Any, ...]]:
    """Rows of one query; no file or no table yet reads as no rows."""
    if not db.exists():
        return []
    with contextlib.closing(sqlite3.connect(db, timeout=30)) as conn:
        try:
            return conn.execute(sql, tuple(params)).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []
            raise


def attempt_cost_nanos(db: Path) -> int:
    """The sum of cost_nanos over every attempt row: what the ledger says upstream billed."""
    rows = query(db, "SELECT coalesce(sum(cost_nanos), 0) FROM lyra_usage WHERE kind = 'attempt'")
    return int(rows[0][0]) if rows else 0


def ok_attempt(db: Path, generation_id: str) -> dict[str, Any] | None:
    """The attempt row of a served generation, as a dict, or None if the ledger has none."""
    rows = query(db, "SELECT generation_id, kind, status, cost_nanos, simulated FROM lyra_usage"
                     " WHERE generation_id = ? AND kind = 'attempt' AND status = 'ok'", (generation_id,))
    if not rows:
        return None
    names = ("generation_id", "kind", "status", "cost_nanos", "simulated")
    return dict(zip(names, rows[0], strict=True))


def ok_generation_ids(db: Path) -> set[str]:
    """Generation ids of every attempt the ledger holds as served."""
    rows = query(db, "SELECT generation_id FROM lyra_usage WHERE kind = 'attempt' AND status = 'ok'"
                     " AND generation_id IS NOT NULL")
    return {row[0] for row in rows}


def integrity_ok(db: Path) -> bool:
    return query(db, "PRAGMA integrity_check") == [("ok",)]
