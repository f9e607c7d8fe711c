"""`lyra arbitrage`, `lyra derive-venue` and `lyra compliance` on the bundled sample, with --json."""

from __future__ import annotations

import json
import sys
import time
import types
from decimal import Decimal
from pathlib import Path

from typer.testing import CliRunner

from lyra.cli.commands import app
from support import fast_config_text

runner = CliRunner()


def stdout_json(output: str) -> dict:
    start = output.index("{")
    return json.loads(output[start:output.rindex("}") + 1])


def test_derive_then_arbitrage_with_json_record_and_replay(tmp_path: Path) -> None:
    venue_b = tmp_path / "venue_b.csv"
    derived = runner.invoke(app, ["derive-venue", "--from", "EURUSD", "--lag-bars", "1", "--drop-every", "7",
                                  "--out", str(venue_b), "--json"])
    assert derived.exit_code == 0, derived.output
    assert stdout_json(derived.output)["bars"] == 6224 - 6224 // 7
    cassette = tmp_path / "arb.json"
    args = ["arbitrage", "--venue-a", "EURUSD", "--venue-b", str(venue_b), "--symbol", "EURUSD",
            "--from", "2017-03-01", "--to", "2017-03-03", "--threshold-bps", "5", "--json"]
    recorded = runner.invoke(app, [*args, "--record", str(cassette)])
    assert recorded.exit_code == 0, recorded.output
    report = stdout_json(recorded.output)
    assert report["simulated"] and report["passed_filter"] > 0
    assert report["upstream_calls"] == report["passed_filter"]
    assert report["candidates"] >= report["passed_filter"] >= report["accepted"]
    assert Decimal(report["earned_usd"]["accepted_at_quote"]) <= Decimal(report["earned_usd"]["passed_filter_at_quote"])
    replayed = runner.invoke(app, [*args, "--replay", str(cassette)])
    assert replayed.exit_code == 0, replayed.output
    again = stdout_json(replayed.output)
    assert again["upstream_calls"] == 0 and again["cassette"]["counts"]["requests"] == report["passed_filter"]
    for key in ("candidates", "passed_filter", "accepted", "earned_usd", "evaluations", "ai_spend_nanos"):
        assert again[key] == report[key], key


def test_bad_input_is_one_line(tmp_path: Path) -> None:
    missing = runner.invoke(app, ["arbitrage", "--venue-a", "EURUSD", "--venue-b", str(tmp_path / "nope.csv")])
    assert missing.exit_code != 0 and "Traceback" not in missing.output
    assert "nope.csv" in missing.output
    bad = runner.invoke(app, ["arbitrage", "--venue-a", "EURUSD", "--venue-b", "EURUSD", "--fee-bps-a", "x"])
    assert bad.exit_code == 2 and "--fee-bps-a" in bad.output


def test_compliance_lists_the_rules_in_order_and_the_kill_switch(tmp_path: Path) -> None:
    switch = tmp_path / "KILL"
    path = tmp_path / "lyra.toml"
    path.write_text(fast_config_text() + f'\n[compliance]\nenabled = true\nmax_trades_per_day = 3\n'
                    f'kill_switch_file = "{switch}"\nreview = true\nreview_key = "microsoft"\n')
    off = runner.invoke(app, ["compliance", "--config", str(path), "--json"])
    assert off.exit_code == 0, off.output
    data = stdout_json(off.output)
    assert [r["rule"] for r in data["rules"]][:4] == ["kill_switch", "restricted_symbols", "trading_hours",
                                                      "max_trades_per_day"]
    assert data["rules"][3]["setting"] == 3 and data["kill_switch_on"] is False
    assert data["review"] == {"enabled": True, "route": "tier premium", "key_first": "microsoft"}
    switch.touch()
    on = stdout_json(runner.invoke(app, ["compliance", "--config", str(path), "--json"]).output)
    assert on["kill_switch_on"] is True and str(switch) in on["rules"][0]["setting"]
    table = runner.invoke(app, ["compliance", "--config", str(path)])
    assert table.exit_code == 0 and "max_trades_per_day" in table.output


def test_backtest_reports_how_the_orders_fared_at_the_gate(tmp_path: Path) -> None:
    path = tmp_path / "desk.toml"
    path.write_text(fast_config_text(**{'rule = "confidence"\nthreshold = 0.6': 'rule = "weighted"\nthreshold = 0.3'})
                    + '\n[compliance]\nenabled = true\ntrading_hours_utc = { EURUSD = "08:00-16:00" }\n')
    args = ["backtest", "--config", str(path), "--data", "EURUSD", "--from", "2017-03-01", "--to", "2017-03-06",
            "--every", "1"]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code in (0, 1), result.output
    report = stdout_json(result.output)
    gate = report["compliance"]
    seen = [d for d in report["decisions"] if d["compliance"]["rules_checked"]]
    assert gate["orders_seen"] == len(seen) > 0
    assert gate["passed"] + sum(gate["blocked"].values()) == gate["orders_seen"]
    assert set(gate["blocked"]) <= {"rule:trading_hours"}
    table = runner.invoke(app, args)
    assert f"compliance: {gate['orders_seen']} orders reached the gate, {gate['passed']} passed" in table.output


def _fake_exchanges(closes: dict[str, list[float]]) -> types.ModuleType:
    """A ccxt stand-in with one exchange class per id, each serving its closes as hourly candles that
    ended before now (no network)."""
    module = types.ModuleType("ccxt")

    class NetworkError(Exception):
        pass

    module.BaseError = Exception  # type: ignore[attr-defined]
    module.NetworkError = NetworkError  # type: ignore[attr-defined]
    module.BadSymbol = NetworkError  # type: ignore[attr-defined]
    hour_ms = 3_600_000
    last = (int(time.time() * 1000) // hour_ms - 2) * hour_ms
    for exchange_id, series in closes.items():
        rows = [[last - (len(series) - 1 - i) * hour_ms, c, c, c, c, 1e9] for i, c in enumerate(series)]

        def fetch(self: object, symbol: str, timeframe: str, limit: int, rows: list = rows) -> list:
            return rows[-limit:]

        setattr(module, exchange_id, type(exchange_id, (), {"__init__": lambda self, config: None,
                                                            "fetch_ohlcv": fetch}))
    return module


def test_arbitrage_between_two_ccxt_exchanges_without_network(monkeypatch) -> None:
    b_closes = [100.0 + (0.2 if i % 2 else 0.0) for i in range(30)]  # B is 20 bps dear every other bar
    monkeypatch.setitem(sys.modules, "ccxt", _fake_exchanges({"binance": [100.0] * 30, "kraken": b_closes}))
    result = runner.invoke(app, ["arbitrage", "--venue-a", "ccxt:binance:BTC/USDT:1h",
                                 "--venue-b", "ccxt:kraken:BTC/USDT:1h", "--quantity", "1", "--json"])
    assert result.exit_code == 0, result.output
    report = stdout_json(result.output)
    assert report["symbol"] == "BTC/USDT" and report["candidates"] == 15
    assert report["passed_filter"] == 15 == report["upstream_calls"]  # 20 bps less 2 bps fees and 1 of slippage
    assert report["accepted"] == 15  # fresh quotes on both, deep enough, no gap
    # each: 0.2 gross - 0.02002 fees (1 bps of 100 and of 100.2) - 0.01001 slippage (0.5 bps of 200.2)
    assert Decimal(report["earned_usd"]["accepted_at_quote"]) == 15 * Decimal("0.16997")
