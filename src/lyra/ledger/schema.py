"""Tables, URLs and engines: the only place that knows SQLite and Postgres differ."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Double,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    inspect,
    text,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.schema import CreateIndex, CreateTable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from lyra.errors import ConfigError
from lyra.sqlite_wal import enable_wal, hand_off_checkpoints

T = TypeVar("T")
USAGE_TABLE = "lyra_usage"
DECISIONS_TABLE = "lyra_decisions"
ACCOUNTS_TABLE = "lyra_paper_accounts"

# Any fixed 64-bit number; it serialises table creation between processes sharing a Postgres.
_PG_DDL_LOCK = 0x6C797261_6C656467  # "lyraledg"
_SQLITE_BUSY_TIMEOUT_MS = 30_000

metadata = MetaData()
# Added after the first release: created with the table, or by `_migrate` on an older ledger.
RECONCILE_COLUMNS = (("reconciled_cost_nanos", "BIGINT"), ("reconciled_at", "DOUBLE PRECISION"),
                     ("drift_nanos", "BIGINT"))
# Attempt rows: "hedge" for a second attempt raced against a slow one (NULL: a primary attempt).
HEDGE_COLUMNS = (("attempt_kind", "VARCHAR"),)

usage = Table(
    USAGE_TABLE,
    metadata,
    # INTEGER (not BIGINT) on SQLite so that the column is the rowid and autoincrements.
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    Column("ts", Double(), nullable=False),
    Column("request_id", String(), nullable=False),
    Column("kind", String(), nullable=False),
    Column("task", String()),
    Column("tier", String()),
    Column("requested_model", String()),
    Column("served_model", String()),
    Column("provider", String()),
    Column("key_name", String()),
    Column("client", String()),
    Column("prompt_tokens", BigInteger(), nullable=False, default=0),
    Column("completion_tokens", BigInteger(), nullable=False, default=0),
    Column("cost_nanos", BigInteger(), nullable=False, default=0),
    Column("cost_estimated", Boolean(), nullable=False, default=False),
    Column("latency_ms", Double(), nullable=False, default=0.0),
    Column("status", String(), nullable=False),
    Column("error_kind", String()),
    Column("http_status", Integer()),
    Column("attempt", Integer(), nullable=False, default=0),
    Column("cached", Boolean(), nullable=False, default=False),
    Column("generation_id", String()),
    # Rows of simulator runs (no key set): kept apart from real money, never counted against real caps.
    Column("simulated", Boolean(), nullable=False, default=False, server_default="0"),
    # Attribution within a client: the request's `user` and its tags (see records.LedgerRow).
    Column("end_user", String()),
    Column("tags", Text()),
    # The 12-digit fingerprint of the exact model, provider preferences and service tier a request sent.
    Column("profile", String()),
    # The cap that refused a request before any upstream call (BudgetExceeded), by its label.
    Column("refused_cap", String()),
    # What OpenRouter's /generation says the attempt cost, when it was asked, and that minus the
    # booked cost_nanos (lyra.reconcile fills them; NULL until then).
    *(Column(name, BigInteger() if sql == "BIGINT" else Double()) for name, sql in RECONCILE_COLUMNS),
    *(Column(name, String()) for name, _sql in HEDGE_COLUMNS),
    Index(f"ix_{USAGE_TABLE}_ts", "ts"),
    Index(f"ix_{USAGE_TABLE}_request_id", "request_id"),
    Index(f"ix_{USAGE_TABLE}_generation_id", "generation_id"),
)


# The audit trail: an append-only hash chain of trading decisions. `lyra_audit_head` holds the
# chain's last sequence number and hash in one row, which every append locks first, so appends
# from several processes serialise on SQLite and on Postgres alike.
decisions = Table(
    DECISIONS_TABLE,
    metadata,
    Column("seq", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=False),
    Column("decision_id", String(), nullable=False, unique=True),
    Column("ts", Double(), nullable=False),
    Column("symbol", String()),
    Column("action", String()),
    Column("cost_nanos", BigInteger(), nullable=False, default=0),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Column("payload", Text(), nullable=False),
    Index(f"ix_{DECISIONS_TABLE}_ts", "ts"),
)

audit_head = Table(
    "lyra_audit_head",
    metadata,
    Column("id", Integer(), primary_key=True, autoincrement=False),
    Column("seq", BigInteger(), nullable=False),
    Column("hash", String(64), nullable=False),
)


# Paper accounts (`lyra live`, the gateway's /v1/decide): one row per account name, its state as
# JSON, replaced whole on every change, so that a restart resumes the book where it stood.
paper_accounts = Table(
    ACCOUNTS_TABLE,
    metadata,
    Column("name", String(), primary_key=True),
    Column("updated_ts", Double(), nullable=False),
    Column("state", Text(), nullable=False),
)


def parse_url(url: str) -> URL:
    """Parse a ledger URL, sending plain postgresql:// (and postgres://) to the psycopg 3 driver."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError("ledger.url: not a database URL; use sqlite:///path or postgresql://...") from exc
    except ValueError as exc:  # a port that is not a number; the message would echo the URL
        raise ConfigError("ledger.url: the port must be a number from 1 to 65535") from exc
    backend = parsed.get_backend_name()
    if parsed.drivername in ("postgres", "postgresql"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    elif backend not in ("sqlite", "postgresql"):
        raise ConfigError(f"ledger.url: use sqlite:///path or postgresql://..., not {backend}://")
    return parsed


def display_url(url: URL) -> str:
    """The URL as text with any password masked."""
    return url.render_as_string(hide_password=True)


def sqlite_path(url: URL) -> Path | None:
    """The file a SQLite URL points at, or None for in-memory databases and other backends."""
    if url.get_backend_name() != "sqlite":
        return None
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file:"):
        return None
    return Path(database).expanduser()


def create_ledger_engine(url: URL) -> Engine:
    """An engine with the settings each backend needs for durable, concurrent appends."""
    if url.get_backend_name() == "sqlite":
        path = sqlite_path(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url)
        event.listen(engine, "connect", sqlite_on_connect)
        # The driver's own transaction handling leaves DDL outside transactions; SQLAlchemy's
        # recipe: no implicit BEGIN from the driver, an explicit one from SQLAlchemy, so that a
        # migration's ALTER and UPDATE commit together or not at all.
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN"))
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=4)


def sqlite_on_connect(dbapi_connection: sqlite3.Connection, _record: Any) -> None:
    # busy_timeout first: switching to WAL takes a lock that another process may hold.
    # WAL + synchronous=NORMAL survives a killed process without corruption or loss of commits
    # (only an OS crash can cost the last transactions), and lets readers run beside the writer.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {_SQLITE_BUSY_TIMEOUT_MS}")
        enable_wal(cursor)
        cursor.execute("PRAGMA synchronous = NORMAL")
        hand_off_checkpoints(cursor)  # the ledger's Checkpointer thread does them
    finally:
        cursor.close()


def retry_if_locked(action: Callable[[], T], *, attempts: int = 50) -> T:
    """Run `action`, retrying while SQLite reports the database locked.

    A transaction that reads and then writes can be refused at once (no busy wait) when another
    connection holds the same shared lock: SQLite breaks the would-be deadlock by failing one side.
    """
    delay = 0.005
    for attempt in range(attempts):
        try:
            return action()
        except OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)
    raise AssertionError("unreachable")


def create_tables(engine: Engine) -> None:
    """Create the tables and indexes that are missing; safe to run from several processes at once."""
    retry_if_locked(lambda: _create_tables(engine))


def _create_tables(engine: Engine) -> None:
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # IF NOT EXISTS alone still races on Postgres' catalogue; the lock makes it serial.
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_DDL_LOCK})
        for table in metadata.sorted_tables:
            conn.execute(CreateTable(table, if_not_exists=True))
            for index in sorted(table.indexes, key=lambda i: str(i.name)):
                conn.execute(CreateIndex(index, if_not_exists=True))
        _migrate(conn)


def _migrate(conn: Connection) -> None:
    """Bring a ledger written by an older Lyra up to date, in the caller's transaction."""
    inspector = inspect(conn)
    for table in (USAGE_TABLE, DECISIONS_TABLE):
        columns = {column["name"] for column in inspector.get_columns(table)}
        if "cost_micros" in columns and "cost_nanos" not in columns:  # money moved to nano-dollars
            conn.execute(text(f"ALTER TABLE {table} RENAME COLUMN cost_micros TO cost_nanos"))
            conn.execute(text(f"UPDATE {table} SET cost_nanos = cost_nanos * 1000"))
        if table == USAGE_TABLE and "simulated" not in columns:
            conn.execute(text(f"ALTER TABLE {table} ADD COLUMN simulated BOOLEAN NOT NULL DEFAULT FALSE"))
        if table == USAGE_TABLE and "profile" not in columns:
            conn.execute(text(f"ALTER TABLE {table} ADD COLUMN profile VARCHAR"))
        if table == USAGE_TABLE and "refused_cap" not in columns:
            conn.execute(text(f"ALTER TABLE {table} ADD COLUMN refused_cap VARCHAR"))
        if table == USAGE_TABLE:
            _add_attribution(conn, columns)
            _add_reconcile_columns(conn, columns)
            for name, sql_type in HEDGE_COLUMNS:
                if name not in columns:
                    conn.execute(text(f"ALTER TABLE {USAGE_TABLE} ADD COLUMN {name} {sql_type}"))


def _add_attribution(conn: Connection, columns: set[str]) -> None:
    """The `end_user` and `tags` columns, added to a ledger written before attribution (NULL in old rows)."""
    for name, kind in (("end_user", "VARCHAR"), ("tags", "TEXT")):
        if name not in columns:
            conn.execute(text(f"ALTER TABLE {USAGE_TABLE} ADD COLUMN {name} {kind}"))


def _add_reconcile_columns(conn: Connection, columns: set[str]) -> None:
    for name, sql_type in RECONCILE_COLUMNS:
        if name not in columns:
            conn.execute(text(f"ALTER TABLE {USAGE_TABLE} ADD COLUMN {name} {sql_type}"))


class UtcDay(FunctionElement[str]):
    """The UTC calendar day, as 'YYYY-MM-DD', of an epoch-seconds column."""

    type = String()
    name = "utc_day"
    inherit_cache = True


@compiles(UtcDay, "sqlite")
def _utc_day_sqlite(element: UtcDay, compiler: SQLCompiler, **kw: Any) -> str:
    return f"date({compiler.process(element.clauses, **kw)}, 'unixepoch')"


@compiles(UtcDay, "postgresql")
def _utc_day_postgresql(element: UtcDay, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.clauses, **kw)
    return f"to_char(to_timestamp({column}) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"


class UtcHour(FunctionElement[str]):
    """The UTC hour, as 'YYYY-MM-DDTHH:00Z', of an epoch-seconds column (the intraday series)."""

    type = String()
    name = "utc_hour"
    inherit_cache = True


@compiles(UtcHour, "sqlite")
def _utc_hour_sqlite(element: UtcHour, compiler: SQLCompiler, **kw: Any) -> str:
    return f"strftime('%Y-%m-%dT%H:00Z', {compiler.process(element.clauses, **kw)}, 'unixepoch')"


@compiles(UtcHour, "postgresql")
def _utc_hour_postgresql(element: UtcHour, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.clauses, **kw)
    return f"""to_char(to_timestamp({column}) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:00"Z"')"""


class TextPosition(FunctionElement[int]):
    """Where a text first occurs in another, from 1, or 0 when it does not (NULL when either is NULL)."""

    type = Integer()
    name = "text_position"
    inherit_cache = True


@compiles(TextPosition, "sqlite")
def _text_position_sqlite(element: TextPosition, compiler: SQLCompiler, **kw: Any) -> str:
    return f"instr({compiler.process(element.clauses, **kw)})"


@compiles(TextPosition, "postgresql")
def _text_position_postgresql(element: TextPosition, compiler: SQLCompiler, **kw: Any) -> str:
    return f"strpos({compiler.process(element.clauses, **kw)})"


__all__ = [
    "DECISIONS_TABLE",
    "USAGE_TABLE",
    "TextPosition",
    "UtcDay",
    "UtcHour",
    "audit_head",
    "create_ledger_engine",
    "create_tables",
    "decisions",
    "display_url",
    "metadata",
    "parse_url",
    "sqlite_on_connect",
    "sqlite_path",
    "usage",
]
