"""`lyra live` applies the desk's compliance rules before a decision is final, as the backtest does."""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import Awaitable, Callable
from pathlib import Path

import orjson
import pandas as pd

from lyra import Lyra
from lyra.consensus.decision import DECISION_RESPONSE_FORMAT
from lyra.ops.live import LiveRunner, SimulatedClock, load_replay
from lyra.simulator import Simulator
from lyra.types import Completion, CompletionRequest
from support import engine_env, fast_config_text

SYMBOL = "BTC/USDT"
WARMUP = 60
Call = Callable[[CompletionRequest], Awaitable[Completion]]


async def always_buy(request: CompletionRequest, call: Call) -> Completion:
    """Every decision answer says BUY, every risk review approves: the compliance rules are under test."""
    completion = await call(request)
    if request.response_format == DECISION_RESPONSE_FORMAT:
        text = {"action": "BUY", "confidence": 0.9, "rationale": "forced by the test", "horizon": "1h",
                "stop_loss": None, "take_profit": None}
    elif request.task == "risk_assessment":
        text = {"verdict": "approve", "max_notional_usd": None, "reason": "forced by the test"}
    else:
        return completion
    return dataclasses.replace(completion, text=orjson.dumps(text).decode())


def tape(path: Path, bars: int) -> Path:
    prices = [100 + 0.2 * math.sin(i / 3) for i in range(WARMUP)] + [100.0] * bars
    times = pd.date_range(pd.Timestamp("2024-01-02 20:00", tz="UTC") - WARMUP * pd.Timedelta("1h"),
                          periods=len(prices), freq="1h")
    pd.DataFrame({"time": [t.isoformat() for t in times], "open": prices, "high": [p * 1.001 for p in prices],
                  "low": [p * 0.999 for p in prices], "close": prices, "volume": 1000.0}).to_csv(path, index=False)
    return path


async def test_live_holds_outside_the_symbols_trading_hours(sim: Simulator, tmp_path: Path) -> None:
    path = tmp_path / "live.toml"
    path.write_text(fast_config_text(**{'session_utc = "00:00-24:00"': 'session_utc = "00:00-02:00"',
                                        'symbols = ["BTC/USDT", "ETH/USDT"]': f'symbols = ["{SYMBOL}"]'})
                    + f'\n[compliance]\nenabled = true\ntrading_hours_utc = {{ "{SYMBOL}" = "22:00-23:00" }}\n')
    bars = tape(tmp_path / "tape.csv", 6)
    env = engine_env(sim) | {"LYRA_LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.db'}"}
    async with Lyra.from_config(path, environ=env) as lyra:
        lyra.set_interceptor(always_buy)
        runner = LiveRunner(lyra, load_replay(str(bars), [SYMBOL]), SimulatedClock(), session_s=5 * 60)
        await asyncio.wait_for(runner.run(), 120)
        assert lyra.ledger is not None
        lyra.ledger.flush()
        decided = {r.payload["time"]: r.payload for r in lyra.ledger.audit.recent(100) if "time" in r.payload}
    account = runner.status.accounts[SYMBOL]
    at = {h: pd.Timestamp(f"2024-01-02 {h}:00", tz="UTC").isoformat() for h in ("20", "21", "22", "23")}
    assert [(f.reason, f.time.isoformat()) for f in account.fills] == [("order", at["23"])]  # bought at 22:00
    for hour in ("20", "21"):
        payload = decided[at[hour]]
        assert payload["action"] == "HOLD"
        assert payload["compliance"]["blocked_by"] == "rule:trading_hours"
        assert any("outside BTC/USDT's hours 22:00-23:00" in r for r in payload["risk"]["reasons"])
    assert decided[at["22"]]["action"] == "BUY" and decided[at["22"]]["compliance"]["verdict"] == "pass"
