"""Ledger fixtures: a SQLite file per test, and a Postgres schema per test (skipped, or failed, when absent).

Postgres comes from LYRA_TEST_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/test).
When it cannot be reached the Postgres tests skip and say why; with LYRA_REQUIRE_SERVICES=1
they fail instead. Each test gets its own schema, selected through the connection's
search_path, and the schema is dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url

from lyra.ledger import Ledger
from support import service_missing

DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _libpq_url(url: str) -> str:
    """The URL without a SQLAlchemy driver suffix, as psycopg wants it."""
    parsed = make_url(url)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def _postgres_server() -> str | None:
    """The base URL if the server answers, else the reason it does not (checked once per run)."""
    url = os.environ.get("LYRA_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    shown = make_url(url).render_as_string(hide_password=True)
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed: pip install -e '.[postgres]'"
    try:
        with psycopg.connect(_libpq_url(url), connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"Postgres at {shown} is not reachable (set LYRA_TEST_POSTGRES_URL): {first}"
    return None


@pytest.fixture
def postgres_url(_postgres_server: str | None) -> Iterator[str]:
    """A postgresql:// URL whose connections use a fresh schema, dropped after the test."""
    if _postgres_server is not None:
        service_missing(_postgres_server)
    import psycopg
    from psycopg import sql

    base = os.environ.get("LYRA_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    schema = f"lyra_test_{os.getpid()}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(_libpq_url(base), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        try:
            url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
            yield url.render_as_string(hide_password=False)
        finally:
            admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A sqlite:/// URL of a fresh file (in a folder that does not exist yet)."""
    return f"sqlite:///{tmp_path / 'data' / 'ledger.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def ledger_url(request: pytest.FixtureRequest) -> str:
    """Each test that takes this runs once on SQLite and once on Postgres."""
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


@pytest.fixture
def make_ledger(ledger_url: str) -> Iterator[Callable[..., Ledger]]:
    """Build ledgers on the test's database; every one is closed after the test."""
    made: list[Ledger] = []

    def make(**options: Any) -> Ledger:
        ledger = Ledger(ledger_url, **options)
        made.append(ledger)
        return ledger

    yield make
    for ledger in made:
        ledger.close()
