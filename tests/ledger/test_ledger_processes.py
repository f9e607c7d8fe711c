"""Several processes on one SQLite file, and a writer killed with SIGKILL in the middle of its load."""

from __future__ import annotations

import itertools
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lyra.ledger import Ledger

WRITER = Path(__file__).with_name("writer_proc.py")


def spawn(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, str(WRITER), *args], stderr=subprocess.PIPE)


def test_two_processes_appending_to_one_file_lose_nothing(sqlite_url: str, tmp_path: Path) -> None:
    n = 3000
    go = tmp_path / "go"
    procs = [spawn(sqlite_url, "count", str(n), prefix, str(go)) for prefix in ("a", "b")]
    deadline = time.monotonic() + 30
    while not all((tmp_path / f"go.{p}").exists() for p in "ab"):  # both started, so their loads overlap
        assert time.monotonic() < deadline and all(proc.poll() is None for proc in procs)
        time.sleep(0.01)
    go.touch()
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()

    ledger = Ledger(sqlite_url)
    rows = ledger.rows()
    ledger.close()
    assert len(rows) == 2 * n
    assert {r.request_id for r in rows} == {f"{p}-{i}" for p in "ab" for i in range(n)}
    # Not a timing assertion: this only shows the test did exercise two concurrent appenders.
    switches = sum(1 for x, y in itertools.pairwise(rows) if x.request_id[0] != y.request_id[0])
    assert switches > 2


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_kill_9_mid_load_keeps_the_file_sound_and_every_flushed_row(sqlite_url: str, tmp_path: Path) -> None:
    side = tmp_path / "committed"
    proc = spawn(sqlite_url, "forever", str(side))
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and proc.poll() is None:
            if side.exists() and int(side.read_text()) >= 5000:
                break
            time.sleep(0.01)
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        time.sleep(0.013)  # land somewhere inside the next batch rather than right after a flush
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    known_committed = int(side.read_text())
    assert known_committed >= 5000

    path = sqlite_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        count, cost = conn.execute("SELECT count(*), sum(cost_nanos) FROM lyra_usage").fetchone()
        # The writer's rows go in order, so the committed ones are exactly a prefix k-0 .. k-(count-1).
        ids = {r[0] for r in conn.execute("SELECT request_id FROM lyra_usage")}
    conn.close()
    assert count >= known_committed
    assert ids == {f"k-{i}" for i in range(count)}

    ledger = Ledger(sqlite_url)  # reopens, recovers the WAL, and still appends
    assert ledger.spend_between(0, math.inf).total_nanos == cost
    assert sum(r.cost_nanos for r in ledger.rows()) == cost
    ledger.write(ledger.rows(limit=1)[0])
    ledger.close()
    reader = Ledger(sqlite_url)
    assert len(reader.rows()) == count + 1
    reader.close()


def test_rows_queued_at_exit_are_committed_without_close(sqlite_url: str) -> None:
    script = (
        "import sys\n"
        "from lyra.ledger import Ledger, LedgerRow\n"
        "ledger = Ledger(sys.argv[1], flush_interval_s=60)\n"  # no timed commit: only the exit hook writes
        "ledger.start()\n"
        "for i in range(100):\n"
        "    ledger.write(LedgerRow(ts=1.0, request_id=f'x-{i}', kind='attempt', cost_nanos=2))\n"
    )
    subprocess.run([sys.executable, "-c", script, sqlite_url], check=True, timeout=60)
    ledger = Ledger(sqlite_url)
    assert ledger.spend_between(0, 2).total_nanos == 200
    ledger.close()
