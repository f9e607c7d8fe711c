"""`lyra run` trades a paper account: fills at the next open, stops and halts on every bar, resumable."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from lyra.cli.commands import app
from lyra.ledger import Ledger, default_url
from lyra.trading.data import load_sample

RUN = ["run", "--bars", "40", "--time-scale", "0", "--json"]


def run(*extra: str) -> dict[str, object]:
    result = CliRunner().invoke(app, [*RUN, *extra])
    assert result.exit_code == 0, result.output
    report: dict[str, object] = json.loads(result.stdout[result.stdout.index("{"):])
    return report


def test_the_decisions_trade_a_paper_account_with_exact_pnl() -> None:
    report = run()
    account = report["account"]
    assert isinstance(account, dict)
    assert account["name"] == "run:GOOGL" and account["stored"] is False
    traded = [d for d in report["decisions"] if d["action"] in ("BUY", "SELL")]  # type: ignore[union-attr]
    assert traded, "the sample's last 40 bars should propose a trade"
    assert account["fills"] >= 1 and account["decisions"] == 40
    assert account["realised_pnl_usd"] + account["unrealised_pnl_usd"] == pytest.approx(account["pnl_usd"], abs=0.02)
    frame = load_sample("GOOGL").frame.iloc[-40:]
    assert account["buy_and_hold_return"] == pytest.approx(frame["close"].iloc[-1] / frame["open"].iloc[0] - 1)
    assert account["return_on_ai_spend_unit"] == "USD of P&L per USD of AI spend"


def test_a_named_account_is_kept_and_a_second_run_trades_no_bar_twice() -> None:
    first = run("--account", "desk-googl")
    again = run("--account", "desk-googl")
    one, two = first["account"], again["account"]
    assert isinstance(one, dict) and isinstance(two, dict)
    assert one["stored"] is True
    # The second run sees the same 40 bars: the account has already traded them, so nothing changes.
    for field in ("equity_usd", "fills", "realised_pnl_usd", "decisions", "ai_spend_nanos"):
        assert two[field] == one[field], field
    ledger = Ledger(default_url(simulated=True), simulated=True)
    ledger.start()
    try:
        assert ledger.accounts.names() == ["desk-googl"]
    finally:
        ledger.close()
