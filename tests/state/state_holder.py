"""Reserve once and hang, as a process whose upstream call is in flight: the kill tests SIGKILL it.

As a script: python state_holder.py KIND TARGET CAP LIMIT AMOUNT TTL
(KIND sqlite with TARGET a file, or redis with TARGET "url prefix"); prints the reservation id
once it is held, then sleeps until killed.
"""

from __future__ import annotations

import asyncio
import sys
import uuid

from state_hammer import open_target

from lyra.state import Charge


async def _main(argv: list[str]) -> None:
    kind, target, cap, limit, amount, ttl = argv
    backend = open_target(kind, target)
    reservation = uuid.uuid4().hex
    refusal = await backend.reserve(reservation, [Charge(cap, int(limit), int(amount))], ttl_s=float(ttl))
    if refusal is not None:
        raise SystemExit(f"refused: {refusal}")
    sys.stdout.write(f"{reservation}\n")
    sys.stdout.flush()
    await asyncio.sleep(3600)  # the upstream call, which never ends: the test kills us meanwhile


if __name__ == "__main__":
    asyncio.run(_main(sys.argv[1:]))
