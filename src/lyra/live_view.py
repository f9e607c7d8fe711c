"""The `lyra live` status panel: next runs, last decisions, spend against caps, errors."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from lyra.live import LiveRunner


@contextlib.contextmanager
def status_panel(runner: LiveRunner, *, enabled: bool = True) -> Iterator[None]:
    """A rich Live panel refreshed while the runner runs: next runs, decisions, spend, errors."""
    if not enabled:
        yield
        return
    from rich.live import Live

    with Live(render_status(runner), refresh_per_second=4, transient=False) as live:

        async def refresh() -> None:
            while True:
                await asyncio.sleep(0.25)
                live.update(await _render_with_caps(runner))

        task = asyncio.get_running_loop().create_task(refresh())
        try:
            yield
        finally:
            task.cancel()


async def _render_with_caps(runner: LiveRunner) -> Any:
    caps = await runner.lyra.budget.snapshot() if runner.lyra.budget is not None else []
    return render_status(runner, caps)


def render_status(runner: LiveRunner, caps: Sequence[Any] = ()) -> Any:
    """The status panel's content as rich tables."""
    from rich.console import Group
    from rich.table import Table

    from lyra.money import format_usd

    jobs = Table(title=f"lyra live  t={runner.status.now_s / 3600:.2f} h of {runner.session_s / 3600:g} h")
    for column in ("job", "every", "next (h)", "fired", "skipped", "errors", "last error"):
        jobs.add_column(column)
    for s in runner.status.jobs:
        jobs.add_row(
            s.job.name,
            f"{s.job.every_s}s",
            f"{s.next_at / 3600:.2f}",
            str(s.fired),
            str(s.skipped),
            str(s.errors),
            s.last_error[:60],
        )
    decisions = Table(title="last decision per symbol")
    for column in ("symbol", "bar", "action", "notional", "confidence"):
        decisions.add_column(column)
    for symbol, d in sorted(runner.status.decisions.items()):
        decisions.add_row(symbol, d.time, d.action, f"{d.notional_usd:,.0f}", f"{d.confidence:.2f}")
    spend = Table(title="spend against caps")
    for column in ("cap", "spent", "limit"):
        spend.add_column(column)
    for cap in caps:
        if cap.unit == "usd" and (cap.committed or cap.name == "global"):
            spend.add_row(cap.name, format_usd(cap.committed), format_usd(cap.limit))
    return Group(jobs, decisions, spend, *runner.status.errors[-5:])
