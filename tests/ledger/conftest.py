"""Ledger fixtures: a SQLite file per test, and each test run on SQLite and on Postgres.

The Postgres schema per test (`postgres_url`) is a fixture of tests/conftest.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lyra.ledger import Ledger


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
