"""The usage table's `profile` column: a request row's fingerprint, and an older ledger migrated to it."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from lyra.ledger import Ledger, LedgerRow


def test_an_older_ledger_gains_the_profile_column_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    url = f"sqlite:///{path}"
    old = Ledger(url)
    old.start()
    old.write(LedgerRow(ts=1.0, request_id="r-old", kind="request", tier="premium"))
    old.flush()
    old.close()
    db = sqlite3.connect(path)
    db.execute("ALTER TABLE lyra_usage DROP COLUMN profile")  # as a ledger from before profiles
    db.commit()
    db.close()

    ledger = Ledger(url)
    ledger.start()
    ledger.write(LedgerRow(ts=2.0, request_id="r-new", kind="request", tier="premium", profile="0123456789ab"))
    ledger.flush()
    rows = ledger.rows(kind="request")
    ledger.close()
    assert [(r.request_id, r.profile) for r in rows] == [("r-old", None), ("r-new", "0123456789ab")]
