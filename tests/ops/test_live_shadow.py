"""Shadow traffic in `lyra live`: the arm's call is made and recorded, never traded, outcomes attached."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from lyra import Lyra
from lyra.ops.live import LiveRunner, SimulatedClock, load_replay
from lyra.simulator import Simulator
from lyra.trading.experiments import OUTCOME_KIND, SHADOW_KIND, from_audit
from support import engine_env, fast_config_text

SYMBOL = "BTC/USDT"
SESSION = {
    'session_utc = "00:00-24:00"': 'session_utc = "00:00-01:00"',
    'symbols = ["BTC/USDT", "ETH/USDT"]': f'symbols = ["{SYMBOL}"]',
    "trade_share = 0.2": "trade_share = 0.35",
}
SHADOW = {'mode = "offline"': 'mode = "shadow"\nhorizon_bars = 3'}
HANG_S = 120  # only against a hang: no assertion depends on how long anything takes


async def session(sim: Simulator, tmp_path: Path, name: str, **edits: str) -> tuple[LiveRunner, Lyra]:
    config = tmp_path / f"{name}.toml"
    # Each session its own budget state and cache: the second must not start from the first's spend.
    state = {'# path = "/var/lib/lyra/state.db"': f'path = "{tmp_path / f"{name}-state.db"}"'}
    config.write_text(fast_config_text(**(SESSION | state | edits)))
    env = engine_env(sim) | {"LYRA_LEDGER_URL": f"sqlite:///{tmp_path / f'{name}.db'}"}
    lyra = Lyra.from_config(config, environ=env)
    await lyra.start()
    runner = LiveRunner(lyra, load_replay("EURUSD", [SYMBOL]), SimulatedClock())
    await asyncio.wait_for(runner.run(), HANG_S)
    return runner, lyra


async def test_shadow_arms_are_asked_and_recorded_but_never_trade(sim: Simulator, tmp_path: Path) -> None:
    plain, plain_engine = await session(sim, tmp_path, "plain")
    shadowed, engine = await session(sim, tmp_path, "shadow", **SHADOW)
    try:
        assert not plain.shadow and shadowed.shadow
        counts = shadowed.shadow.counts
        live = plain.accounts[SYMBOL]
        account = shadowed.accounts[SYMBOL]
        assert counts.calls > 10 and set(counts.by_arm) == {"builtin", "risk_first"}
        # The account with shadow traffic traded exactly as the one without: same fills, same decisions.
        assert [(f.time, f.units, f.price) for f in account.fills] == [(f.time, f.units, f.price)
                                                                      for f in live.fills]
        assert account.decisions == live.decisions

        assert engine.ledger is not None
        records = sorted(engine.ledger.audit.recent(10_000), key=lambda r: r.seq)
        shadows = [r for r in records if r.payload.get("kind") == SHADOW_KIND]
        outcomes = [r for r in records if r.payload.get("kind") == OUTCOME_KIND]
        assert len(shadows) == counts.calls and len(outcomes) == counts.outcomes > 0
        assert all(r.action is None and r.payload["experiment"]["mode"] == "shadow" for r in shadows)
        assert any(r.payload["action"] in ("BUY", "SELL") for r in shadows)  # a trade it did not place
        # The account was charged the live decisions' spend alone; the shadow calls' is on their records.
        decided = [r for r in records if "kind" not in r.payload]
        assert len(decided) == account.decisions
        assert account.ai_spend_nanos == sum(r.cost_nanos for r in decided)
        assert sum(r.cost_nanos for r in shadows) == counts.cost_nanos > 0
        settings = engine.settings.experiments["signal_prompts"]
        rebuilt = from_audit("signal_prompts", settings, [(r.seq, r.payload) for r in records])
        assert rebuilt.report() == shadowed.status.shadow["experiments"][0]
    finally:
        await plain_engine.aclose()
        await engine.aclose()


async def test_no_shadow_call_when_the_live_decision_failed(sim: Simulator, tmp_path: Path) -> None:
    runner, engine = await session(sim, tmp_path, "failing", **SHADOW)
    try:
        shadow = runner.shadow
        calls, skipped = shadow.counts.calls, shadow.counts.skipped
        decision = runner.status.decisions[SYMBOL]
        bars, at = runner.market.window(SYMBOL, runner.session_s + 600)  # a bar no episode asked yet
        failed = dataclasses.replace(decision, errors=["risk_assessment: BudgetExceeded: budget cap global"])
        await shadow.after_decision(SYMBOL, bars, at, failed, runner.accounts[SYMBOL].state())
        assert shadow.counts.calls == calls and shadow.counts.skipped == skipped + 1
        await shadow.after_decision(SYMBOL, bars, at, decision, runner.accounts[SYMBOL].state())
        assert shadow.counts.calls == calls + 1  # the same episode with a sound live decision: asked
    finally:
        await engine.aclose()
