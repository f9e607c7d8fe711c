"""Reconciling booked attempts with what the simulator's /generation says it billed."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from lyra.engine import Lyra
from lyra.errors import UpstreamError
from lyra.ledger import Ledger, LedgerRow
from lyra.money import usd_to_nanos
from lyra.openrouter.transport import OpenRouterTransport
from lyra.reconcile import ReconcileOptions, Reconciler, compare_keys
from lyra.simulator import Simulator, SimulatorOptions
from lyra.simulator.faults import Fault
from support import TOKENS, engine_env, reconcile_config_text

ASK = [{"role": "user", "content": "Summarise the session in one line."}]
LAG_LOOKUPS = 2  # /generation answers 404 this many times per generation first
# No wall-clock wait anywhere: the lag is counted in lookups, the backoff sleeps for 0 s.
RECONCILE = "first_delay_s = 0\nmax_delay_s = 0\nlookups = 6"


@pytest.fixture
async def lagging_sim() -> AsyncIterator[Simulator]:
    options = SimulatorOptions(time_scale=0.0, generation_lag_s=2.0, generation_lag_lookups=LAG_LOOKUPS)
    async with Simulator(options=options) as simulator:
        yield simulator


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[str], Path]:
    def make(extra: str = RECONCILE) -> Path:
        path = tmp_path / "lyra.toml"
        path.write_text(reconcile_config_text(extra))
        return path

    return make


def billed_nanos(sim: Simulator, generation_id: str) -> int:
    return usd_to_nanos(sim._state.generations[generation_id].cost)


def attempt_rows(ledger: Ledger) -> list[LedgerRow]:
    ledger.flush()
    return [r for r in ledger.rows(kind="attempt") if r.generation_id]


def reconciled(ledger: Ledger) -> dict[str, tuple[int | None, int | None]]:
    """generation id -> (reconciled cost, drift), read straight from the table."""
    from sqlalchemy import select

    from lyra.ledger.schema import usage

    with ledger._connected().connect() as conn:
        found = conn.execute(select(usage.c.generation_id, usage.c.reconciled_cost_nanos, usage.c.drift_nanos)
                             .where(usage.c.kind == "attempt", usage.c.generation_id.is_not(None)))
        return {gen: (cost, drift) for gen, cost, drift in found}


async def test_engine_reconciles_each_attempt_to_the_nano_dollar(
        lagging_sim: Simulator, write_config: Callable[[str], Path]) -> None:
    async with Lyra.from_config(write_config(RECONCILE), environ=engine_env(lagging_sim)) as lyra:
        served = [await lyra.complete(messages=ASK, model=m)
                  for m in ("openai/gpt-4o-mini", "deepseek/deepseek-chat", "anthropic/claude-3-haiku")]
        reconciler = lyra.running.reconciler
        assert reconciler is not None
        await reconciler.drain()
        ledger = lyra.ledger
        assert ledger is not None
        rows = attempt_rows(ledger)
        found = reconciled(ledger)
    assert {c.generation_id for c in served} == {r.generation_id for r in rows}
    for row in rows:
        assert row.generation_id is not None
        billed = billed_nanos(lagging_sim, row.generation_id)
        assert found[row.generation_id] == (billed, billed - row.cost_nanos)
    # Every generation was asked through its lag: 404s first, then the stats.
    assert all(r.lookups == LAG_LOOKUPS for r in lagging_sim._state.generations.values())


async def test_a_404_then_200_generation_is_retried_with_backoff(lagging_sim: Simulator, tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    transport = OpenRouterTransport(base_url=lagging_sim.base_url)
    async with Lyra.from_config(_write(tmp_path, "enabled = false"),
                                environ=engine_env(lagging_sim)) as lyra:
        done = await lyra.complete(messages=ASK, model="openai/gpt-4o-mini")
        assert lyra.running.reconciler is None
        source = lyra.ledger
        assert source is not None
        source.flush()
        for row in source.rows():
            ledger.write(row)
    ledger.flush()
    waits: list[float] = []

    async def no_wait(seconds: float) -> None:
        waits.append(seconds)

    options = ReconcileOptions(first_delay_s=0.5, max_delay_s=4.0, lookups=5)
    reconciler = Reconciler(ledger, transport, TOKENS.get, options=options, sleep=no_wait)
    try:
        results = await reconciler.catch_up()
    finally:
        await transport.close()
        ledger.close()
    assert [(r.generation_id, r.lookups, r.error) for r in results] == [(done.generation_id, 3, None)]
    assert results[0].billed_nanos == billed_nanos(lagging_sim, str(done.generation_id))
    assert waits == [0.5, 1.0, 2.0]  # backoff doubles, on the injected clock


async def test_a_generation_that_never_appears_is_left_for_later(lagging_sim: Simulator, tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    ledger.write(LedgerRow(ts=1.0, request_id="r1", kind="attempt", key_name="premium",
                           generation_id="gen-0-unknown", cost_nanos=500))
    ledger.flush()
    transport = OpenRouterTransport(base_url=lagging_sim.base_url)

    async def no_wait(_seconds: float) -> None:
        return None

    reconciler = Reconciler(ledger, transport, TOKENS.get, options=ReconcileOptions(lookups=3), sleep=no_wait)
    try:
        [result] = await reconciler.catch_up()
        left = ledger.unreconciled()
    finally:
        await transport.close()
        ledger.close()
    assert result.billed_nanos is None and result.lookups == 3 and "404" in str(result.error)
    assert [p.generation_id for p in left] == ["gen-0-unknown"]


@pytest.mark.parametrize(("model", "stops"), [("deepseek/deepseek-v4-flash", False), ("openai/gpt-4o-mini", True)])
async def test_a_hung_up_stream_is_booked_at_worst_case_then_reconciled(
        lagging_sim: Simulator, write_config: Callable[[str], Path], model: str, stops: bool) -> None:
    lagging_sim.add_fault(Fault(kind="stall", model=model, hang_s=30.0))
    async with Lyra.from_config(write_config(RECONCILE), environ=engine_env(lagging_sim)) as lyra:
        pieces = aiter(lyra.stream(messages=ASK, model=model, max_tokens=400))
        assert await anext(pieces)
        await pieces.aclose()  # the caller hangs up mid-stream
        ledger = lyra.ledger
        reconciler = lyra.running.reconciler
        assert ledger is not None and reconciler is not None
        [row] = attempt_rows(ledger)
        assert row.error_kind == "cancelled" and row.cost_estimated
        worst = lyra.catalog.get(model)
        assert row.completion_tokens == 400  # booked at its worst case: all of max_tokens
        assert row.cost_nanos >= worst.cost_nanos(row.prompt_tokens, 400)
        assert row.generation_id is not None
        # The simulator learns of the hang-up when its loop sees the connection close; no event says so.
        deadline = time.monotonic() + 60  # against a hang only: no assertion depends on how long it takes
        while row.generation_id not in lagging_sim._state.generations and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.01)
        await reconciler.drain()
        found = reconciled(ledger)
    record = lagging_sim._state.generations[row.generation_id]
    assert record.cancelled
    reply_tokens = record.completion_tokens
    billed = usd_to_nanos(record.cost)
    assert found[row.generation_id] == (billed, billed - row.cost_nanos)
    assert billed < row.cost_nanos  # the truth is below the worst case either way
    from lyra.simulator.tokens import count_text

    full = lagging_sim._state.catalog.get(model)
    if stops:  # a cancelling provider bills only what it generated: half the answer here
        assert 0 < reply_tokens < count_text(_full_answer(lagging_sim, model))
    else:  # the provider generated (and OpenRouter billed) the whole answer
        assert reply_tokens == count_text(_full_answer(lagging_sim, model))
    assert billed == usd_to_nanos(str(full.prompt_per_m * record.prompt_tokens / 1_000_000
                                      + full.completion_per_m * reply_tokens / 1_000_000))


def _full_answer(sim: Simulator, model: str) -> str:
    from lyra.simulator.responder import respond

    return respond(sim._state.catalog.get(model), {"messages": ASK}, sim._state.options.seed)


async def test_drift_above_the_threshold_logs_one_warning(
        lagging_sim: Simulator, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    async with Lyra.from_config(_write(tmp_path, "enabled = false"),
                                environ=engine_env(lagging_sim)) as lyra:
        for _ in range(3):
            await lyra.complete(messages=ASK, model="openai/gpt-4o-mini", cache="bypass")
        assert lyra.ledger is not None
        lyra.ledger.flush()
        # Booked at half of what was billed: a drift of +100 %.
        for row in lyra.ledger.rows():
            ledger.write(LedgerRow(**{**_fields(row), "cost_nanos": row.cost_nanos // 2}))
    ledger.flush()
    transport = OpenRouterTransport(base_url=lagging_sim.base_url)

    async def no_wait(_seconds: float) -> None:
        return None

    reconciler = Reconciler(ledger, transport, TOKENS.get, sleep=no_wait,
                            options=ReconcileOptions(lookups=5, workers=1))
    try:
        with caplog.at_level(logging.WARNING, logger="lyra.reconcile"):
            results = await reconciler.catch_up()
    finally:
        await transport.close()
        ledger.close()
    assert len(results) == 3 and all(r.billed_nanos for r in results)
    warnings = [r for r in caplog.records if r.name == "lyra.reconcile" and r.levelno == logging.WARNING]
    assert len(warnings) == 1
    line = warnings[0].getMessage()
    assert "cost drift" in line and "\n" not in line
    assert not any(token in line for token in TOKENS.values())


async def test_drift_within_the_threshold_logs_nothing(
        lagging_sim: Simulator, write_config: Callable[[str], Path], caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="lyra.reconcile"):
        async with Lyra.from_config(write_config(RECONCILE), environ=engine_env(lagging_sim)) as lyra:
            await lyra.complete(messages=ASK, model="openai/gpt-4o-mini")
            assert lyra.running.reconciler is not None
            await lyra.running.reconciler.drain()
            assert lyra.running.reconciler.watch.attempts == 1
    assert not [r for r in caplog.records if r.name == "lyra.reconcile"]


async def test_key_day_totals_match_usage_daily_when_the_ledger_is_the_only_user(
        lagging_sim: Simulator, write_config: Callable[[str], Path]) -> None:
    async with Lyra.from_config(write_config(RECONCILE), environ=engine_env(lagging_sim)) as lyra:
        done = [await lyra.complete(messages=ASK, model=m, cache="bypass")
                for m in ("openai/gpt-4o-mini", "deepseek/deepseek-chat")]
        ledger = lyra.ledger
        assert ledger is not None
        ledger.flush()
        checks = await compare_keys(ledger, lyra.router.transport, {d.key_name or "" for d in done},
                                    lambda name: lyra.router.keys.secret(name))
    assert checks and all(c.error is None for c in checks)
    for check in checks:
        spent = sum(d.cost_nanos for d in done if d.key_name == check.key_name)
        assert check.ledger_nanos == spent
        assert check.openrouter_nanos == spent and check.difference_nanos == 0


def _write(tmp_path: Path, extra: str) -> Path:
    path = tmp_path / "lyra-off.toml"
    path.write_text(reconcile_config_text(extra))
    return path


def _fields(row: LedgerRow) -> dict[str, object]:
    from dataclasses import asdict

    return asdict(row)


async def test_the_drift_metric_is_in_usd_per_model_and_key(
        lagging_sim: Simulator, write_config: Callable[[str], Path]) -> None:
    from lyra.observe.metrics import Metrics

    metrics = Metrics()
    lyra = Lyra.from_config(write_config(RECONCILE), environ=engine_env(lagging_sim))
    lyra.add_recorder(metrics)
    async with lyra:
        done = await lyra.complete(messages=ASK, model="openai/gpt-4o-mini")
        assert lyra.running.reconciler is not None
        await lyra.running.reconciler.drain()
    text = metrics.render().body.decode()
    billed = billed_nanos(lagging_sim, str(done.generation_id))
    labels = f'key="{done.key_name}",model="openai/gpt-4o-mini"'
    assert f"lyra_cost_drift_usd{{{labels}}} {(billed - done.cost_nanos) / 1e9}" in text
    assert f"lyra_cost_reconciled_usd_total{{{labels}}} {billed / 1e9}" in text
    assert not any(token in text for token in TOKENS.values())


async def test_a_dropped_stream_is_booked_at_worst_case_and_reconciled_to_what_was_billed(
        lagging_sim: Simulator, write_config: Callable[[str], Path]) -> None:
    model = "deepseek/deepseek-v4-flash"  # DeepSeek does not stop on a hang-up: the whole answer is billed
    lagging_sim.add_fault(Fault(kind="drop", model=model, count=1))
    async with Lyra.from_config(write_config(RECONCILE), environ=engine_env(lagging_sim)) as lyra:
        pieces: list[str] = []
        with pytest.raises(UpstreamError):  # text had reached the caller: the failure is final
            async for piece in lyra.stream(messages=ASK, model=model, max_tokens=300):
                pieces.append(piece)
        assert pieces
        assert lyra.running.reconciler is not None and lyra.ledger is not None
        await lyra.running.reconciler.drain()
        rows = attempt_rows(lyra.ledger)
        found = reconciled(lyra.ledger)
    dropped = next(r for r in rows if r.status == "error")
    assert dropped.cost_estimated and dropped.completion_tokens == 300 and dropped.generation_id
    record = lagging_sim._state.generations[dropped.generation_id]
    assert record.cancelled
    billed = usd_to_nanos(record.cost)
    assert found[dropped.generation_id] == (billed, billed - dropped.cost_nanos)
    assert 0 < billed < dropped.cost_nanos


async def test_a_stream_names_its_generation_before_the_first_token(lagging_sim: Simulator) -> None:
    from lyra.openrouter.wire import ChatRequest

    transport = OpenRouterTransport(base_url=lagging_sim.base_url)
    seen: list[str] = []
    body = ChatRequest(model="openai/gpt-4o-mini", messages=ASK, stream=True).encode()
    try:
        stream = transport.stream(body, api_key=TOKENS["premium"], timeout_s=10, on_generation_id=seen.append)
        first = await anext(stream)
        assert seen == [first.id]  # from the X-Generation-Id header, before any delta was read
        await stream.aclose()
    finally:
        await transport.close()
