"""A separate process that appends rows through a Ledger (run by the ledger tests, not collected).

    writer_proc.py URL count N PREFIX GO_FILE   create GO_FILE.PREFIX once started, wait for GO_FILE,
                                                 write N attempt rows over about half a second, close
    writer_proc.py URL forever SIDE_FILE        write rows without end; after each flush, record
                                                 in SIDE_FILE how many rows are known committed
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from lyra.ledger import Ledger, LedgerRow


def make_row(prefix: str, i: int) -> LedgerRow:
    return LedgerRow(
        ts=time.time(), request_id=f"{prefix}-{i}", kind="attempt", tier="fast", key_name="xai",
        served_model="openai/gpt-4o-mini", prompt_tokens=10, completion_tokens=2,
        cost_nanos=i % 997 + 1, latency_ms=1.5,
    )


def write_count(url: str, n: int, prefix: str, go_file: Path) -> None:
    ledger = Ledger(url, flush_interval_s=0.02, batch_size=50)
    ledger.start()
    go_file.with_name(f"{go_file.name}.{prefix}").touch()
    while not go_file.exists():
        time.sleep(0.005)
    for i in range(n):
        ledger.write(make_row(prefix, i))
        if i % 10 == 0:
            time.sleep(0.002)  # spread the load so that both processes commit while the other does
    ledger.close()


def write_forever(url: str, side_file: Path) -> None:
    ledger = Ledger(url, flush_interval_s=0.05, batch_size=200)
    ledger.start()
    written = 0
    while True:
        for _ in range(250):
            ledger.write(make_row("k", written))
            written += 1
        ledger.flush()
        tmp = side_file.with_suffix(".tmp")
        tmp.write_text(str(written))
        os.replace(tmp, side_file)  # atomic, so the parent never reads a torn number


def main(argv: list[str]) -> None:
    url, mode = argv[1], argv[2]
    if mode == "count":
        write_count(url, int(argv[3]), argv[4], Path(argv[5]))
    elif mode == "forever":
        write_forever(url, Path(argv[3]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv)
