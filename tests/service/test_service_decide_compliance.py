"""POST /v1/decide rules on the desk's compliance rules too, and the answer names what blocked it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import orjson
from gateway_support import running
from quant_support import QUANT_TOKEN, quant_config_text

from lyra import Lyra
from lyra.service import create_app
from lyra.simulator import Simulator
from lyra.trading import load_sample
from support import engine_env

QUANT = {"Authorization": f"Bearer {QUANT_TOKEN}"}


def bars_until(end: int, n: int = 80) -> list[dict[str, Any]]:
    frame = load_sample("GOOGL").frame.iloc[end - n:end]
    return [{"time": t.isoformat(), "open": r.open, "high": r.high, "low": r.low, "close": r.close,
             "volume": r.volume} for t, r in zip(frame.index, frame.itertuples(), strict=True)]


async def test_decide_blocks_a_restricted_symbol_and_says_so(sim: Simulator, tmp_path: Path) -> None:
    path = tmp_path / "lyra.toml"
    path.write_text(quant_config_text().replace('rule = "confidence"\nthreshold = 0.6',
                                                'rule = "weighted"\nthreshold = 0.3')
                    + '\n[compliance]\nenabled = true\nrestricted_symbols = ["GOOGL"]\n')
    environ = engine_env(sim) | {"LYRA_LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.db'}"}
    seen: list[dict[str, Any]] = []
    async with running(create_app(Lyra.from_config(path, environ=environ))) as base, \
            aiohttp.ClientSession() as session:
        for end in range(1935, 2336, 20):  # forward in time: the server keeps a paper account
            body = {"symbol": "GOOGL", "bars": bars_until(end), "proposed_notional": 5000}
            async with session.post(base + "/decide", data=orjson.dumps(body), headers=QUANT) as r:
                assert r.status == 200, await r.text()
                answer = orjson.loads(await r.read())
            assert answer["compliance"] is not None
            if answer["compliance"]["rules_checked"]:
                seen.append(answer)
                break
    assert seen, "no request proposed an order"
    blocked = seen[0]
    assert blocked["action"] == "HOLD" and blocked["compliance"]["blocked_by"] == "rule:restricted_symbols"
    assert "blocked by compliance rule restricted_symbols (GOOGL is restricted)" in blocked["risk"]["reasons"]
