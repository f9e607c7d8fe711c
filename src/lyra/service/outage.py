"""Telling a backing store's outage (ledger database, budget state) from a bug, by the error's type.

The engine converts the store failures it expects into Unavailable; a driver error that escapes it
anyway (a query on /v1/usage, a snapshot of the caps on /metrics) still means "the store is down",
which a client should retry, not "the gateway is broken".
"""

from __future__ import annotations

import sqlite3
from types import TracebackType

import redis.exceptions
import sqlalchemy.exc

_SQL_OUTAGES: tuple[type[BaseException], ...] = (
    sqlite3.OperationalError,  # locked, disk I/O error, unable to open, disk full
    sqlite3.InterfaceError,
    sqlalchemy.exc.OperationalError,
    sqlalchemy.exc.InterfaceError,
    sqlalchemy.exc.DisconnectionError,
    sqlalchemy.exc.TimeoutError,  # no pooled connection in time
)
try:  # psycopg is optional (the postgres extra); SQLAlchemy wraps its errors, but not on every path
    import psycopg

    _SQL_OUTAGES += (psycopg.OperationalError, psycopg.InterfaceError)
except ImportError:  # pragma: no cover - without the extra
    pass
_REDIS_OUTAGES: tuple[type[BaseException], ...] = (redis.exceptions.ConnectionError,
                                                   redis.exceptions.TimeoutError)
_MAX_CHAIN = 8


def store_outage(exc: BaseException) -> str | None:
    """"ledger" or "state" (or "store" when it cannot tell) if `exc`, or what caused it, is a store
    being unreachable; None for anything else."""
    seen: BaseException | None = exc
    for _ in range(_MAX_CHAIN):
        if seen is None:
            return None
        if isinstance(seen, _SQL_OUTAGES + _REDIS_OUTAGES):
            fallback = "state" if isinstance(seen, _REDIS_OUTAGES) else "store"
            return _raised_in(seen.__traceback__) or fallback
        seen = seen.__cause__ or seen.__context__
    return None


def _raised_in(tb: TracebackType | None) -> str | None:
    """Which of Lyra's store packages the error passed through, nearest the raise first."""
    found = None
    while tb is not None:
        module = str(tb.tb_frame.f_globals.get("__name__", ""))
        if module.startswith("lyra.ledger"):
            found = "ledger"
        elif module.startswith("lyra.state"):
            found = "state"
        tb = tb.tb_next
    return found
