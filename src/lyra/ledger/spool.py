"""The spool: an append-only local file that keeps ledger rows safe while the database fails.

Each process spools to a file of its own, locked (flock) for as long as the process lives. A
process that starts finds the spools of processes that died (their lock is free), commits their
rows to the database and deletes them, so that rows a crash left in a spool are not lost.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import IO

import orjson

from lyra.ledger.records import LedgerRow
from lyra.log import get_logger

log = get_logger("lyra.ledger")


def spool_prefix(url_for_display: str) -> str:
    """The file-name prefix of every spool of one ledger (by its URL without the password)."""
    return "ledger-" + hashlib.blake2b(url_for_display.encode(), digest_size=8).hexdigest()


class Spool:
    """Rows kept in `folder/<prefix>.<pid>.jsonl`, one JSON object a line, fsync'd on append."""

    def __init__(self, folder: Path, prefix: str) -> None:
        self.folder = folder
        self.prefix = prefix
        self.path = folder / f"{prefix}.{os.getpid()}.jsonl"
        self._file: IO[bytes] | None = None

    def append(self, rows: Sequence[LedgerRow]) -> bool:
        """Append rows durably; False when the file cannot be written (the rows stay in memory)."""
        if not rows:
            return True
        try:
            handle = self._open()
            handle.write(b"".join(orjson.dumps(asdict(row)) + b"\n" for row in rows))
            handle.flush()
            os.fsync(handle.fileno())
            return True
        except OSError as exc:
            log.error("ledger: cannot write the spool %s (%s)", self.path, exc.strerror)
            return False

    def read(self) -> list[LedgerRow]:
        """Every row in this process's spool."""
        return _read(self.path) if self.path.exists() else []

    def clear(self) -> None:
        """Empty this process's spool once its rows are in the database."""
        if self._file is not None:
            self._file.truncate(0)
            self._file.seek(0)
            os.fsync(self._file.fileno())

    def recover(self, insert: Callable[[Sequence[LedgerRow]], None]) -> int:
        """Commit and delete the spools that dead processes left; the number of rows recovered."""
        recovered = 0
        for path in sorted(self.folder.glob(f"{self.prefix}.*.jsonl")):
            if path == self.path:
                continue
            recovered += _recover_one(path, insert)
        return recovered

    def close(self) -> None:
        """Release the lock and delete the file if it is empty."""
        if self._file is None:
            return
        with contextlib.suppress(OSError):
            if self._file.tell() == 0 and self.path.stat().st_size == 0:
                self.path.unlink()
        self._file.close()
        self._file = None

    def _open(self) -> IO[bytes]:
        if self._file is None:
            self.folder.mkdir(parents=True, exist_ok=True)
            handle = open(self.path, "ab")  # noqa: SIM115 - held open (and locked) for the process's life
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            self._file = handle
        return self._file


def _recover_one(path: Path, insert: Callable[[Sequence[LedgerRow]], None]) -> int:
    try:
        handle = open(path, "r+b")  # noqa: SIM115 - closed below
    except OSError:
        return 0
    with handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return 0  # its process is alive and will commit its own rows
        rows = _read(path)
        if rows:
            insert(rows)
            log.warning("ledger: committed %d rows that a stopped process left in %s", len(rows), path)
        path.unlink()
        return len(rows)


def _read(path: Path) -> list[LedgerRow]:
    rows: list[LedgerRow] = []
    for line in path.read_bytes().splitlines():
        try:
            rows.append(LedgerRow(**orjson.loads(line)))
        except (orjson.JSONDecodeError, TypeError):
            continue  # a line cut short by a crash during its write: it was never acknowledged
    return rows


__all__ = ["Spool", "spool_prefix"]
