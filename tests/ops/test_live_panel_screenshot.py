"""The `lyra live` terminal panel after a short session on the simulated clock, as docs/live-panel.svg.

The session runs on a SimulatedClock against the simulator over loopback with a real SQLite ledger,
so its counts are the same on any machine; the panel is rendered by a recording rich Console and
each number it shows is checked against the runner's own state before the picture is kept.
"""

from __future__ import annotations

import asyncio
import io
import re
from pathlib import Path

from rich.console import Console

from lyra import Lyra
from lyra.caps import CapScope
from lyra.money import format_usd
from lyra.ops.live import LiveRunner, SimulatedClock, account_report, load_replay
from lyra.ops.live_view import render_status
from lyra.simulator import Simulator
from support import engine_env, fast_config_text

SVG = Path(__file__).resolve().parents[2] / "docs" / "live-panel.svg"
SYMBOL = "BTC/USDT"
SESSION = {
    'session_utc = "00:00-24:00"': 'session_utc = "00:00-02:00"',  # a two-hour trading day
    'symbols = ["BTC/USDT", "ETH/USDT"]': f'symbols = ["{SYMBOL}"]',
    "trade_share = 0.2": "trade_share = 0.35",  # the simulator's answers propose some trades
}
HANG_S = 120  # only against a hang: no assertion depends on how long anything takes
WIDTH = 100


def rows(text: str, first: str) -> list[list[str]]:
    """The panel's table rows whose first cell is `first`, each as its cells' text (columns stand at
    least two spaces apart; no cell holds two spaces in a row)."""
    cells = [re.split(r"\s{2,}", line.strip()) for line in text.splitlines()]
    return [row for row in cells if row[0] == first]


async def test_the_live_panel_shows_the_sessions_own_numbers(sim: Simulator, tmp_path: Path) -> None:
    config = tmp_path / "live.toml"
    config.write_text(fast_config_text(**SESSION))
    env = engine_env(sim) | {"LYRA_LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.db'}"}
    async with Lyra.from_config(config, environ=env) as lyra:
        runner = LiveRunner(lyra, load_replay("EURUSD", [SYMBOL]), SimulatedClock())
        status = await asyncio.wait_for(runner.run(), HANG_S)
        assert lyra.budget is not None
        caps = await lyra.budget.snapshot()
        console = Console(record=True, width=WIDTH, file=io.StringIO())
        console.print(render_status(runner, caps))
        text = console.export_text(clear=False)
        svg = console.export_svg(title="lyra live")
    assert f"lyra live  t={status.now_s / 3600:.2f} h of {runner.session_s / 3600:g} h" in text
    # Each job's counts, as the runner kept them; the whole session ran, every tick of it.
    for state in status.jobs:
        [row] = rows(text, state.job.name)
        assert row[:6] == [state.job.name, f"{state.job.every_s}s", f"{state.next_at / 3600:.2f}",
                           str(state.fired), str(state.skipped), str(state.errors)]
    signals = next(s for s in status.jobs if s.job.task == "signal_generation")
    assert signals.fired == 120 and signals.skipped == 0
    # The last decision, then the paper account: equity, P&L, fills and AI spend as the runner measured them.
    decision, account = status.decisions[SYMBOL], status.accounts[SYMBOL]
    assert account.decisions == signals.fired and account.ai_spend_nanos > 0
    report = account_report(status)[SYMBOL]
    assert report["fills"] == len(account.fills) and report["bars_this_run"] == 120
    decision_row, account_row = rows(text, SYMBOL)
    assert decision_row == [SYMBOL, decision.time, decision.action, f"{decision.notional_usd:,.0f}",
                            f"{decision.confidence:.2f}"]
    share, roas, hold = report["profitable_share"], report["return_on_ai_spend"], report["buy_and_hold_return"]
    assert account_row == [  # at this width the bars column is left out
        SYMBOL, f"{report['equity_usd']:,.2f}", f"{report['pnl_usd']:+,.2f}", str(len(account.fills)),
        "-" if share is None else f"{share:.0%} of {report['closed_trades']}", f"{report['day_drawdown']:.2%}",
        "yes" if report["halted"] else "no", format_usd(account.ai_spend_nanos),
        "-" if roas is None else f"{roas:,.1f}x", "-" if hold is None else f"{hold:+.2%}"]
    # Spend against each dollar cap that was used, and the global one, from the budget's own snapshot.
    shown = [c for c in caps if c.unit == "usd" and (c.committed or c.cap.scope is CapScope.GLOBAL)]
    assert len(shown) >= 2 and next(c for c in shown if c.cap.scope is CapScope.GLOBAL).committed > 0
    for cap in shown:
        assert rows(text, cap.name) == [[cap.name, format_usd(cap.committed), format_usd(cap.limit)]]
    SVG.write_text(svg, encoding="utf-8")
    assert 0 < SVG.stat().st_size < 800_000  # kept small enough for the repo
    assert svg.startswith("<svg") and "lyra live" in svg.replace("&#160;", " ")
    assert f"{report['equity_usd']:,.2f}" in svg
