"""POST /v1/decide on an account: the server's paper account per client and symbol, or the caller's own.

Over loopback against the simulator, with a real SQLite ledger. The simulator's answers depend on
the features; to test the account rather than the models, an interceptor makes every signal vote
a confident BUY and every risk review an approval.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pandas as pd
import pytest
from gateway_support import DESK_TOKEN, OPS_TOKEN, running
from quant_support import QUANT_TOKEN, quant_config_text

from lyra import Lyra
from lyra.ledger import Ledger
from lyra.service import create_app
from lyra.simulator import Simulator
from lyra.trading.account import PaperAccount, bar_prices
from lyra.types import Completion, CompletionRequest
from support import engine_env

ALGO_TOKEN = "lyra-algo-" + "Hk3" * 14
QUANT = {"Authorization": f"Bearer {QUANT_TOKEN}"}
ALGO = {"Authorization": f"Bearer {ALGO_TOKEN}"}
OPS = {"Authorization": f"Bearer {OPS_TOKEN}"}
DESK = {"Authorization": f"Bearer {DESK_TOKEN}"}
SLIPPAGE = 2 / 10_000  # the paper account's default costs
STOP = 0.03  # [risk] emergency_stop_loss in the example config
APPROVE = '{"verdict": "approve", "max_notional_usd": null, "reason": "within limits"}'
SIGNAL_PROMPT = "Decide a trading signal"


def config_text() -> str:
    """The quant client, and `algo`: a second client allowed every tier."""
    digest = hashlib.sha256(ALGO_TOKEN.encode()).hexdigest()
    return quant_config_text() + (f'\n[clients.algo]\ntoken_sha256 = "{digest}"\ndaily_usd = 20\n'
                                  'tiers = ["premium", "advanced", "specialized", "fast"]\n')


def forced(action: str = "BUY") -> Callable[..., Any]:
    """An interceptor: every signal vote says `action` with confidence 0.95, every risk review approves."""
    vote = orjson.dumps({"action": action, "confidence": 0.95, "rationale": "forced by the test",
                         "horizon": "4h", "stop_loss": None, "take_profit": None}).decode()

    async def intercept(request: CompletionRequest, call: Callable[..., Any]) -> Completion:
        completion: Completion = await call(request)
        if request.task == "risk_assessment":
            return dataclasses.replace(completion, text=APPROVE)
        if any(SIGNAL_PROMPT in str(m.get("content", "")) for m in request.messages):
            return dataclasses.replace(completion, text=vote)
        return completion

    return intercept


@contextlib.asynccontextmanager
async def gateway(sim: Simulator, tmp_path: Path, *, action: str | None = "BUY") -> AsyncIterator[str]:
    """A gateway on uvicorn whose ledger is tmp_path/ledger.db; a second one on the same path resumes it."""
    path = tmp_path / "lyra.toml"
    path.write_text(config_text())
    environ = engine_env(sim) | {"LYRA_LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.db'}"}
    lyra = Lyra.from_config(path, environ=environ)
    if action is not None:
        lyra.set_interceptor(forced(action))
    async with running(create_app(lyra)) as url:
        yield url


async def call(base: str, method: str, path: str, headers: dict[str, str],
               body: bytes | dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    data = body if isinstance(body, bytes) or body is None else orjson.dumps(body)
    async with aiohttp.ClientSession() as session, session.request(method, base + path, data=data,
                                                                   headers=headers) as r:
        return r.status, orjson.loads(await r.read())


def tape(n: int, *, crash_at: int | None = None) -> list[dict[str, Any]]:
    """Daily bars drifting up from 100; bar `crash_at` opens at the prior close and trades 10 % lower."""
    bars = []
    for i in range(n):
        close = 100.0 + 0.4 * i
        open_ = close - 0.2
        high, low = close + 0.5, open_ - 0.5
        if i == crash_at:
            low = open_ * 0.9
        bars.append({"time": (pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(days=i)).isoformat(),
                     "open": open_, "high": high, "low": low, "close": close, "volume": 1_000.0})
    return bars


def stored(tmp_path: Path, name: str) -> PaperAccount | None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger.start()
    try:
        state = ledger.accounts.load(name)
        return None if state is None else PaperAccount.from_dict(state)
    finally:
        ledger.close()


async def test_the_first_decisions_buy_fills_at_the_next_requests_next_bar_open(
        sim: Simulator, tmp_path: Path) -> None:
    bars = tape(90)
    async with gateway(sim, tmp_path) as base:
        status, first = await call(base, "POST", "/decide", QUANT, {"symbol": "TEST", "bars": bars[:80]})
        assert status == 200, first
        assert first["action"] == "BUY" and first["notional_usd"] > 0
        account = first["account"]
        assert account["source"] == "server" and account["name"] == "gateway:quant:TEST"
        assert account["order"] == {"action": "BUY", "notional_usd": first["notional_usd"], "queued": True,
                                    "fills_at": "the next bar's open"}
        assert account["fills_this_request"] == [] and account["position_units"] == 0  # nothing before the next open
        status, second = await call(base, "POST", "/decide", QUANT, {"symbol": "TEST", "bars": bars[:83]})
    assert status == 200, second
    fills = second["account"]["fills_this_request"]
    assert len(fills) == 1 and fills[0]["reason"] == "order"
    assert fills[0]["time"] == pd.Timestamp(bars[80]["time"]).isoformat()  # the first bar after the decision
    assert fills[0]["price"] == pytest.approx(bars[80]["open"] * (1 + SLIPPAGE))
    assert fills[0]["units"] == pytest.approx(first["notional_usd"] / bars[80]["open"])
    after = second["account"]
    assert after["position_units"] == pytest.approx(fills[0]["units"])
    assert after["decisions"] == 2 and after["ai_spend_nanos"] == first["cost_nanos"] + second["cost_nanos"]
    assert after["buy_and_hold_return"] == pytest.approx(bars[82]["close"] / bars[79]["close"] - 1)  # from the first decision
    assert after["return_on_ai_spend_unit"] == "USD of P&L per USD of AI spend"


async def test_a_stop_crossed_in_the_next_requests_bars_closes_the_position_on_that_bar(
        sim: Simulator, tmp_path: Path) -> None:
    bars = tape(90, crash_at=82)
    async with gateway(sim, tmp_path) as base:
        status, first = await call(base, "POST", "/decide", QUANT, {"symbol": "TEST", "bars": bars[:80]})
        assert status == 200 and first["action"] == "BUY", first
        status, second = await call(base, "POST", "/decide", QUANT, {"symbol": "TEST", "bars": bars[:85]})
    assert status == 200, second
    account = second["account"]
    entry, stop = account["fills_this_request"]
    assert entry["reason"] == "order" and stop["reason"] == "emergency stop"
    assert stop["time"] == pd.Timestamp(bars[82]["time"]).isoformat()  # on the bar that crossed it
    assert stop["units"] == pytest.approx(-entry["units"])
    level = entry["price"] * (1 - STOP)
    assert stop["price"] == pytest.approx(level * (1 - SLIPPAGE))
    assert [e["kind"] for e in account["events_this_request"]] == ["emergency_stop"]
    assert account["emergency_stops"] == 1 and account["closed_trades"] == 1
    assert account["profitable_share"] == 0.0 and account["realised_pnl_usd"] < 0
    assert account["position_units"] == 0  # the new BUY waits for the next bar's open


async def test_the_account_survives_a_gateway_restart(sim: Simulator, tmp_path: Path) -> None:
    bars = tape(90)
    async with gateway(sim, tmp_path) as base:
        status, first = await call(base, "POST", "/decide", QUANT, {"symbol": "TEST", "bars": bars[:80]})
        assert status == 200 and first["action"] == "BUY", first
    saved = stored(tmp_path, "gateway:quant:TEST")
    assert saved is not None and saved.pending is not None and saved.decisions == 1
    async with gateway(sim, tmp_path) as base:  # a new app and engine on the same SQLite ledger
        status, second = await call(base, "POST", "/decide", QUANT, {"symbol": "TEST", "bars": bars[:82]})
    assert status == 200, second
    fill = second["account"]["fills_this_request"][0]
    assert fill["time"] == pd.Timestamp(bars[80]["time"]).isoformat()
    assert fill["price"] == pytest.approx(bars[80]["open"] * (1 + SLIPPAGE))
    assert second["account"]["decisions"] == 2
    again = stored(tmp_path, "gateway:quant:TEST")
    assert again is not None and again.last_time == pd.Timestamp(bars[81]["time"])


async def test_bars_older_than_the_account_has_seen_are_a_400(sim: Simulator, tmp_path: Path) -> None:
    bars = tape(90)
    async with gateway(sim, tmp_path) as base:
        status, _ = await call(base, "POST", "/decide", QUANT, {"symbol": "TEST", "bars": bars[:85]})
        assert status == 200
        status, payload = await call(base, "POST", "/decide", QUANT, {"symbol": "TEST", "bars": bars[:80]})
    assert status == 400 and payload["error"]["param"] == "bars", payload
    assert "older than the last bar" in payload["error"]["message"]


GOOD = {"equity": 100_000, "equity_at_day_start": 100_000, "position_units": 0, "entry_price": 0}


@pytest.mark.parametrize(("account", "param", "words"), [
    (GOOD | {"equity": 0}, "account.equity", "greater than 0"),
    (GOOD | {"equity": "100000"}, "account.equity", "number"),
    ({k: v for k, v in GOOD.items() if k != "equity"}, "account.equity", "required"),
    (GOOD | {"equity_at_day_start": -1}, "account.equity_at_day_start", "greater than 0"),
    (GOOD | {"entry_price": -5}, "account.entry_price", "greater than or equal to 0"),
    (GOOD | {"position_units": 10}, "account.entry_price", "position_units"),
    (GOOD | {"position_units": True}, "account.position_units", "number"),
    (GOOD | {"day_low_equity": -1}, "account.day_low_equity", "greater than or equal to 0"),
    (GOOD | {"halted": "yes"}, "account.halted", "boolean"),
    (GOOD | {"cash": 5}, "account.cash", "not permitted"),
    (5, "account", "object"),
])
async def test_a_bad_caller_account_is_a_400_naming_the_field(sim: Simulator, tmp_path: Path, account: Any,
                                                             param: str, words: str) -> None:
    async with gateway(sim, tmp_path, action=None) as base:
        status, payload = await call(base, "POST", "/decide", QUANT, {"sample": "GOOGL", "account": account})
    assert status == 400, payload
    assert payload["error"]["param"] == param and words in payload["error"]["message"], payload
    assert "\n" not in payload["error"]["message"]


async def test_a_non_finite_caller_equity_is_a_400(sim: Simulator, tmp_path: Path) -> None:
    async with gateway(sim, tmp_path, action=None) as base:
        raw = b'{"sample": "GOOGL", "account": {"equity": 1e999, "equity_at_day_start": 1, ' \
              b'"position_units": 0, "entry_price": 0}}'
        status, payload = await call(base, "POST", "/decide", QUANT, raw)
    assert status == 400 and "equity" in payload["error"]["message"], payload


async def test_a_halted_caller_account_gets_hold_with_the_halt_reason_and_nothing_is_stored(
        sim: Simulator, tmp_path: Path) -> None:
    async with gateway(sim, tmp_path) as base:
        status, body = await call(base, "POST", "/decide", QUANT,
                                  {"sample": "GOOGL", "account": GOOD | {"halted": True}})
        assert status == 200, body
        assert body["signal"]["action"] == "BUY" and body["action"] == "HOLD" and body["notional_usd"] == 0
        assert any("halted for the day" in r for r in body["risk"]["reasons"]), body["risk"]
        assert body["account"]["source"] == "caller" and body["account"]["stored"] is False
        status, down = await call(base, "POST", "/decide", QUANT, {"sample": "GOOGL", "account": GOOD | {
            "equity": 94_000, "day_low_equity": 93_000}})
        assert status == 200 and down["action"] == "HOLD", down
        assert any("daily drawdown 7.00%" in r for r in down["risk"]["reasons"]), down["risk"]
        status, report = await call(base, "GET", "/report", OPS)
    assert status == 200 and report["paper_accounts"]["accounts"] == []
    assert report["paper_accounts"]["note"] == "no paper account yet"


async def test_a_client_sees_only_its_own_paper_accounts_in_the_report(sim: Simulator, tmp_path: Path) -> None:
    async with gateway(sim, tmp_path) as base:
        for headers in (QUANT, ALGO):
            status, body = await call(base, "POST", "/decide", headers, {"sample": "GOOGL"})
            assert status == 200, body
        status, algo_again = await call(base, "POST", "/decide", ALGO, {"symbol": "TEST", "bars": tape(80)})
        assert status == 200, algo_again
        ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
        ledger.start()
        live = PaperAccount(equity=50_000)
        live.bar(bar_prices(pd.DataFrame(tape(3)).set_index("time").rename(index=pd.Timestamp), 0))
        ledger.accounts.save("live:BTC", live.to_dict())
        ledger.close()
        reports = {}
        for who, headers in (("quant", QUANT), ("algo", ALGO), ("ops", OPS), ("desk", DESK)):
            status, reports[who] = await call(base, "GET", "/report", headers)
            assert status == 200, reports[who]
    def names(who: str) -> list[str]:
        return [a["name"] for a in reports[who]["paper_accounts"]["accounts"]]

    assert names("quant") == ["gateway:quant:GOOGL"]
    assert names("algo") == ["gateway:algo:GOOGL", "gateway:algo:TEST"]
    assert names("ops") == ["gateway:algo:GOOGL", "gateway:algo:TEST", "gateway:quant:GOOGL", "live:BTC"]
    assert names("desk") == [] and reports["desk"]["paper_accounts"]["note"] == "no paper account yet"
    assert "algo" not in orjson.dumps(reports["quant"]).decode()
    assert "live:BTC" not in orjson.dumps(reports["algo"]).decode()
    section = reports["quant"]["paper_accounts"]
    assert section["return_on_ai_spend_unit"] == "USD of P&L per USD of AI spend"
    assert section["return_on_ai_spend_definition"].startswith("return on AI spend")
    line = section["accounts"][0]
    assert line["decisions"] == 1 and line["ai_spend_nanos"] > 0
    for field in ("profitable_share", "day_drawdown", "pnl_usd", "return_on_ai_spend", "buy_and_hold_return",
                  "buy_and_hold_pnl_usd", "pnl_vs_buy_and_hold_usd"):
        assert field in line


async def test_concurrent_decisions_on_one_account_are_taken_one_at_a_time(sim: Simulator, tmp_path: Path) -> None:
    bars = tape(80)
    async with gateway(sim, tmp_path) as base:
        answers = await asyncio.gather(*[call(base, "POST", "/decide", QUANT, {"symbol": "TEST", "bars": bars})
                                         for _ in range(3)])
    assert [status for status, _ in answers] == [200, 200, 200], answers
    assert sorted(body["account"]["decisions"] for _, body in answers) == [1, 2, 3]
    saved = stored(tmp_path, "gateway:quant:TEST")
    assert saved is not None and saved.decisions == 3
    assert saved.ai_spend_nanos == sum(body["cost_nanos"] for _, body in answers)


def test_a_save_after_another_process_saved_the_account_applies_this_request_on_top(tmp_path: Path) -> None:
    from lyra.config import load_config
    from lyra.service.decide_account import PaperDesk

    path = tmp_path / "lyra.toml"
    path.write_text(config_text())
    settings = load_config(path, environ={}).settings
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger.start()
    try:
        frame = pd.DataFrame(tape(5)).set_index("time").rename(index=pd.Timestamp)
        mine, rival = PaperDesk(settings, ledger.accounts), PaperDesk(settings, ledger.accounts)
        opened = mine.open("gateway:quant:TEST", frame, "bars")
        theirs = rival.open("gateway:quant:TEST", frame, "bars")
        assert rival.save("gateway:quant:TEST", theirs, lambda a: (a.record_decision(7), True)[1], frame)
        assert mine.save("gateway:quant:TEST", opened, lambda a: (a.record_decision(5), True)[1], frame)
        state = ledger.accounts.load("gateway:quant:TEST")
        assert state is not None and state["decisions"] == 2 and state["ai_spend_nanos"] == 12
    finally:
        ledger.close()


async def test_the_desk_takes_one_request_at_a_time_per_account_and_keeps_no_idle_lock(tmp_path: Path) -> None:
    from lyra.config import load_config
    from lyra.service.decide_account import PaperDesk

    path = tmp_path / "lyra.toml"
    path.write_text(config_text())
    desk = PaperDesk(load_config(path, environ={}).settings, None)
    inside: list[str] = []

    async def request(name: str, tag: str) -> None:
        async with desk.hold(name):
            inside.append(f"in {tag}")
            await asyncio.sleep(0)  # a yield: the other requests run meanwhile
            inside.append(f"out {tag}")

    await asyncio.gather(request("a", "1"), request("a", "2"), request("b", "3"))
    assert inside.index("out 1") < inside.index("in 2")  # the same account: one after the other
    assert inside.index("in 3") < inside.index("out 1")  # another account does not wait
    assert desk._locks == {}


async def test_a_halted_account_names_the_halt_even_when_the_signal_was_hold(sim: Simulator, tmp_path: Path) -> None:
    async with gateway(sim, tmp_path, action="HOLD") as base:
        status, body = await call(base, "POST", "/decide", QUANT,
                                  {"sample": "GOOGL", "account": GOOD | {"halted": True}})
        assert status == 200, body
        assert body["action"] == "HOLD" and any("halted for the day" in r for r in body["risk"]["reasons"])
        status, flat = await call(base, "POST", "/decide", QUANT, {"sample": "GOOGL", "account": GOOD})
    assert status == 200 and not any("halted" in r for r in flat["risk"]["reasons"]), flat
