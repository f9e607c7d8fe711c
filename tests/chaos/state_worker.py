"""Random reserve / commit / release on one SQLite state file, as one of several processes.

    python state_worker.py PATH CAP LIMIT SEED OPERATIONS

Prints {"committed": <sum of the actual amounts it committed>} as JSON when done. Every actual is
at most what was held, so the cap can never be passed by anything this worker does.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import uuid

from lyra.state import Charge, SqliteBackend


async def main(path: str, cap: str, limit: int, seed: int, operations: int) -> None:
    rng = random.Random(seed)
    backend = SqliteBackend(path)
    committed = 0
    try:
        for _ in range(operations):
            rid, amount = uuid.uuid4().hex, rng.randint(1, limit // 10)
            if await backend.reserve(rid, [Charge(cap, limit, amount)], ttl_s=3600) is not None:
                continue
            if rng.random() < 0.6:
                actual = rng.randint(0, amount)
                await backend.commit(rid, {cap: actual})
                committed += actual
            else:
                await backend.release(rid)
    finally:
        await backend.close()
    sys.stdout.write(json.dumps({"committed": committed}) + "\n")


if __name__ == "__main__":
    path, cap, limit, seed, operations = sys.argv[1:]
    asyncio.run(main(path, cap, int(limit), int(seed), int(operations)))
