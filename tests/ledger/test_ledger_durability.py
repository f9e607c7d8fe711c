"""Durability: a billed answer's row is committed (or spooled) before `durable()` returns."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from lyra.errors import LedgerUnavailable
from lyra.ledger import Ledger, LedgerRow
from lyra.ledger.schema import parse_url

T0 = 1_750_000_000.0


def row(request_id: str, cost: int = 1) -> LedgerRow:
    return LedgerRow(ts=T0, request_id=request_id, kind="attempt", cost_nanos=cost, attempt=1)


def committed(url: str) -> int:
    reader = Ledger(url)
    try:
        return reader.spend_between(0, T0 + 1).total_nanos
    finally:
        reader.close()


async def test_durable_returns_once_the_rows_are_committed_even_with_a_long_flush_interval(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = Ledger(url, flush_interval_s=60, spool_folder=tmp_path / "spool")
    ledger.start()
    try:
        for i in range(50):
            ledger.write(row(f"r{i}", cost=i))
        await ledger.durable()
        assert committed(url) == sum(range(50))  # no timed commit could have written them
    finally:
        ledger.close()


async def test_concurrent_waiters_share_commits(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = Ledger(url, flush_interval_s=60, spool_folder=tmp_path / "spool")
    ledger.start()

    async def one(i: int) -> None:
        ledger.write(row(f"c{i}", cost=1))
        await ledger.durable()

    try:
        await asyncio.gather(*(one(i) for i in range(300)))
        assert committed(url) == 300
    finally:
        ledger.close()


def _drop_table(url: str) -> None:
    engine = create_engine(parse_url(url))
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE lyra_usage"))
    engine.dispose()


async def test_an_outage_spools_rows_durably_and_commits_them_when_the_database_is_back(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    spool = tmp_path / "spool"
    ledger = Ledger(url, flush_interval_s=60, spool_folder=spool)
    ledger.start()
    try:
        _drop_table(url)  # every insert now fails
        for i in range(5):
            ledger.write(row(f"o{i}", cost=7))
        await ledger.durable()  # durable in the spool, so the caller may have its answer
        spooled = list(spool.glob("*.jsonl"))
        assert len(spooled) == 1 and spooled[0].read_bytes().count(b"\n") == 5
        Ledger(url).start()  # the table comes back
        ledger.flush(timeout=30)
        assert committed(url) == 35
        assert spooled[0].stat().st_size == 0
    finally:
        ledger.close()


async def test_without_a_writable_spool_an_outage_is_a_one_line_unavailable(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the spool folder should be")
    ledger = Ledger(url, flush_interval_s=60, spool_folder=blocked)
    ledger.start()
    try:
        _drop_table(url)
        ledger.write(row("x", cost=3))
        with pytest.raises(LedgerUnavailable, match="retry later"):
            await ledger.durable(within_s=2)
        Ledger(url).start()
        ledger.flush(timeout=30)  # the row was kept in memory and written once the table came back
        assert committed(url) == 3
    finally:
        ledger.close()


_SPOOL_AND_DIE = """
import asyncio, os, sys
from sqlalchemy import create_engine, text
from lyra.ledger import Ledger, LedgerRow
from lyra.ledger.schema import parse_url
url, spool = sys.argv[1], sys.argv[2]
ledger = Ledger(url, flush_interval_s=60, spool_folder=__import__("pathlib").Path(spool))
ledger.start()
engine = create_engine(parse_url(url))
with engine.begin() as conn:
    conn.execute(text("DROP TABLE lyra_usage"))
async def main():
    for i in range(20):
        ledger.write(LedgerRow(ts=1_750_000_000.0, request_id=f"k{i}", kind="attempt", cost_nanos=5, attempt=1))
    await ledger.durable()
    print("durable", flush=True)
    os.kill(os.getpid(), 9)
asyncio.run(main())
"""


def test_rows_a_killed_process_left_in_its_spool_are_committed_by_the_next_start(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    spool = tmp_path / "spool"
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data")}
    done = subprocess.run([sys.executable, "-c", _SPOOL_AND_DIE, url, str(spool)], capture_output=True,
                          text=True, env=env, timeout=120)
    assert done.returncode == -9 and "durable" in done.stdout, done.stderr
    assert committed(url) == 0  # the database never had them
    survivor = Ledger(url, spool_folder=spool)
    survivor.start()  # finds the dead process's spool
    try:
        assert survivor.spend_between(0, T0 + 1).total_nanos == 100
        assert list(spool.glob("*.jsonl")) == []
    finally:
        survivor.close()
