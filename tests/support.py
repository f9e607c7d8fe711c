"""Test support: known test keys and configs wired to a simulator."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from typing import Any

import pytest
import redis

from lyra.config import example_config_text
from lyra.simulator import Simulator

KEY_NAMES = ("xai", "grok4", "codex", "deepseek1", "deepseek2", "premium", "microsoft", "universal")


def test_token(name: str) -> str:
    """A realistic-looking secret per key name, so leak tests have something to grep for."""
    return f"sk-or-v1-{name}-" + "7f3a9c" * 8


TOKENS = {name: test_token(name) for name in KEY_NAMES}


def fast_config_text(*, timeout_s: float = 0.5, **replacements: str) -> str:
    """The example config with quick retries and short timeouts, for tests."""
    text = example_config_text()
    text = re.sub(r"\[retry\][^\[]*", (
        "[retry]\nattempts_per_model = 3\nbase_delay_s = 0.001\nmax_delay_s = 0.01\n"
        "deadline_s = 10\nbreaker_failures = 3\nbreaker_cooldown_s = 60\n\n"), text, count=1)
    text = re.sub(r"timeout_s = \d+", f"timeout_s = {timeout_s}", text)
    for old, new in replacements.items():
        assert old in text, old
        text = text.replace(old, new)
    return text


def engine_env(sim: Simulator) -> dict[str, str]:
    env = {f"LYRA_KEY_{name.upper()}": token for name, token in TOKENS.items()}
    env["LYRA_OPENROUTER_BASE_URL"] = sim.base_url
    return env




def budget_config_text(*, daily: float, reserve: float = 0.0, low: float = 0.0,
                       shares: dict[str, float] | None = None, **replacements: str) -> str:
    """A fast test config with a chosen daily budget, reserved slice and tier shares."""
    text = fast_config_text(timeout_s=20, **replacements)
    text = re.sub(r"daily_usd = 200\b", f"daily_usd = {daily}", text, count=1)
    text = re.sub(r"reserve_share = [0-9.]+", f"reserve_share = {reserve}", text, count=1)
    text = re.sub(r"low_budget_usd = [0-9.]+", f"low_budget_usd = {low}", text, count=1)
    for tier, share in (shares or {}).items():
        text, found = re.subn(rf"(\[tiers\.{tier}\]\n(?:.*\n)*?budget_share = )[0-9.]+", rf"\g<1>{share}",
                              text, count=1)
        assert found, tier
    return text


def service_missing(reason: str) -> None:
    """Skip, or fail when CI says the service must be there (LYRA_REQUIRE_SERVICES=1)."""
    if os.environ.get("LYRA_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (LYRA_REQUIRE_SERVICES=1, so this fails instead of skipping)", pytrace=False)
    pytest.skip(reason)


# A signal panel that trades often (one fast member's vote can decide), so that the risk, final
# panel and monitoring stages run too. A trading test module opts in with ENGINE_EDITS = ACTIVE_SIGNALS.
ACTIVE_SIGNALS = {'rule = "confidence"\nthreshold = 0.6': 'rule = "weighted"\nthreshold = 0.3'}


async def kill_and_reap(proc: asyncio.subprocess.Process) -> None:
    """SIGKILL a child process (no chance to clean up) unless it is gone already, and reap it."""
    if proc.returncode is None:
        os.kill(proc.pid, signal.SIGKILL)
        await asyncio.wait_for(proc.wait(), 10)


def delete_prefix(url: str, prefix: str) -> None:
    """Remove one test's keys from a shared Redis (never anything else)."""
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def decided_trades(report: dict[str, Any]) -> list[tuple[object, ...]]:
    """What a replay must reproduce exactly: each decision's time, action, size and deciding panel.

    Which panel members were still running when an early exit cancelled them depends on timing
    while recording, and a replay answers every member at once: the members' scores and costs may
    differ, the decisions may not.
    """
    return [(d["time"], d["action"], d["notional_usd"], (d.get("final") or {}).get("action"))
            for d in report["decisions"]]


def reconcile_config_text(settings: str) -> str:
    """The fast test config with the body of its [reconcile] table replaced by `settings`."""
    text = fast_config_text()
    replaced, found = re.subn(r"\[reconcile\][^\[]*", lambda _m: f"[reconcile]\n{settings.strip()}\n\n", text,
                              count=1)
    assert found, "the example config has no [reconcile] table"
    return replaced
