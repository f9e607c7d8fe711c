"""Config files for the chaos tests, built from the shipped example so its defaults stay in force."""

from __future__ import annotations

import re
from pathlib import Path

from gateway_support import gateway_config_text

# High-rate load from one client: the per-client rate limit must not be what binds.
DESK_REQUESTS_PER_MIN = 1_000_000
# A fault storm would open the circuit breaker, whose cooldown runs on the wall clock: how many
# calls then meet it open depends on the machine's speed. The storm tests money, not the breaker,
# so it stays closed.
STORM_BREAKER = "breaker_failures = 1000000\nbreaker_cooldown_s = 0\n"
# Hedging (on by default for the fast tier) books a cancelled non-streamed loser at its worst case,
# which no /generation can correct; the storm compares the ledger with what was billed to the
# nano-dollar, so it runs without hedges (tests/routing/test_hedge.py covers their booking).
STORM_NO_HEDGE = "\n[tiers.fast.hedge]\nenabled = false\n"


def gateway_config(folder: Path, *, desk_usd: float, state: str | None = None, timeout_s: float = 5.0,
                   storm: bool = False) -> Path:
    """lyra.toml in `folder`: the example's defaults (its [state] unless `state` replaces it) and
    the test clients, `desk` capped at `desk_usd` a day and not rate limited."""
    text = gateway_config_text(timeout_s=timeout_s, state=state, desk_usd=desk_usd)
    text, found = re.subn(r'(\[clients\.desk\]\n(?:.*\n)*?tiers = \[[^\]]*\]\n)',
                          rf"\g<1>requests_per_min = {DESK_REQUESTS_PER_MIN}\n", text, count=1)
    assert found, "no [clients.desk] in the gateway config"
    if storm:
        text, found = re.subn(r"breaker_failures = \d+\nbreaker_cooldown_s = [0-9.]+\n", STORM_BREAKER, text,
                              count=1)
        assert found, "no breaker settings in the [retry] section"
        text += STORM_NO_HEDGE
    path = folder / "lyra.toml"
    path.write_text(text)
    return path


def redis_state(prefix: str = "lyra:") -> str:
    """The body of a [state] section on Redis (its URL comes from LYRA_REDIS_URL)."""
    return f'backend = "redis"\nprefix = "{prefix}"'
