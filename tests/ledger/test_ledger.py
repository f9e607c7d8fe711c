"""The ledger on real SQLite files and a real Postgres: round trips, spend, summaries, durability."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, text

from lyra.errors import ConfigError
from lyra.ledger import Ledger, LedgerRow, SpendTotals, percentile
from lyra.ledger.schema import parse_url

MakeLedger = Callable[..., Ledger]

T0 = datetime(2025, 1, 2, 12, 0, tzinfo=UTC).timestamp()
DAY_START = datetime(2025, 1, 2, tzinfo=UTC).timestamp()
YESTERDAY = datetime(2025, 1, 1, 23, 59, 59, tzinfo=UTC).timestamp()
MINI, OPUS, GROK, FLASH, LLAMA = (
    "openai/gpt-4o-mini", "anthropic/claude-3-opus", "x-ai/grok-4", "google/gemini-2.0-flash",
    "meta-llama/llama-3.3-70b-instruct",
)


def row(**fields: object) -> LedgerRow:
    fields.setdefault("ts", T0)
    fields.setdefault("request_id", "r")
    fields.setdefault("kind", "attempt")
    return LedgerRow(**fields)  # type: ignore[arg-type]


def dataset() -> list[LedgerRow]:
    """Five hand-made requests plus ten on one model for percentiles; expected sums are in the tests."""
    rows = [
        # R1: the first key fails with a 502, the second serves it.
        row(ts=T0 + 1, request_id="r1", task="signal_generation", tier="fast", client="desk",
            requested_model=MINI, served_model=MINI, key_name="xai", status="error", error_kind="server",
            http_status=502, latency_ms=50),
        row(ts=T0 + 2, request_id="r1", task="signal_generation", tier="fast", client="desk",
            requested_model=MINI, served_model=MINI, key_name="universal", provider="OpenAI",
            prompt_tokens=100, completion_tokens=20, cost_nanos=30, latency_ms=200, attempt=1,
            generation_id="gen-1"),
        row(ts=T0 + 2, request_id="r1", kind="request", task="signal_generation", tier="fast", client="desk",
            requested_model=MINI, served_model=MINI, key_name="universal", provider="OpenAI",
            prompt_tokens=100, completion_tokens=20, cost_nanos=30, latency_ms=260, attempt=1,
            generation_id="gen-1"),
        # R2: one premium attempt.
        row(ts=T0 + 3, request_id="r2", task="risk_assessment", tier="premium", requested_model=OPUS,
            served_model=OPUS, key_name="premium", prompt_tokens=1000, completion_tokens=200,
            cost_nanos=25_000, cost_estimated=True, latency_ms=2000),
        row(ts=T0 + 3, request_id="r2", kind="request", task="risk_assessment", tier="premium",
            requested_model=OPUS, served_model=OPUS, key_name="premium", prompt_tokens=1000,
            completion_tokens=200, cost_nanos=25_000, cost_estimated=True, latency_ms=2100),
        # R3: a cache hit, recorded as a request with no attempt.
        row(ts=T0 + 4, request_id="r3", kind="request", task="signal_generation", tier="fast", client="desk",
            requested_model=MINI, served_model=MINI, cached=True, latency_ms=1),
        # R4: a request that failed: nothing served.
        row(ts=T0 + 5, request_id="r4", task="market_analysis", tier="advanced", client="desk",
            requested_model=GROK, key_name="grok4", status="error", error_kind="timeout", latency_ms=8000),
        row(ts=T0 + 5, request_id="r4", kind="request", task="market_analysis", tier="advanced",
            client="desk", requested_model=GROK, key_name="grok4", status="error", error_kind="timeout",
            latency_ms=8001),
        # R5: the day before.
        row(ts=YESTERDAY, request_id="r5", task="news_sentiment", tier="fast", requested_model=FLASH,
            served_model=FLASH, key_name="xai", prompt_tokens=50, completion_tokens=5, cost_nanos=7,
            latency_ms=300),
        row(ts=YESTERDAY, request_id="r5", kind="request", task="news_sentiment", tier="fast",
            requested_model=FLASH, served_model=FLASH, key_name="xai", prompt_tokens=50, completion_tokens=5,
            cost_nanos=7, latency_ms=310),
    ]
    for i in range(10):  # latencies 10, 20, ..., 100 ms
        for kind in ("attempt", "request"):
            rows.append(row(ts=T0 + 10 + i, request_id=f"l{i}", kind=kind, task="code_generation",
                            tier="specialized", requested_model=LLAMA, served_model=LLAMA, key_name="codex",
                            prompt_tokens=1, completion_tokens=1, cost_nanos=1, latency_ms=10.0 * (i + 1)))
    return rows


def loaded(make_ledger: MakeLedger) -> Ledger:
    ledger = make_ledger()
    ledger.start()
    for r in dataset():
        ledger.write(r)
    ledger.flush()
    return ledger


def wait_for(condition: Callable[[], bool], within_s: float = 3.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


# --- round trip ---------------------------------------------------------------------------------


def test_round_trip_keeps_every_field(make_ledger: MakeLedger) -> None:
    ledger = loaded(make_ledger)
    assert ledger.rows() == sorted(dataset(), key=lambda r: r.ts)  # stable: same-ts rows keep write order


def test_rows_filters_by_time_and_kind_and_limits(make_ledger: MakeLedger) -> None:
    ledger = loaded(make_ledger)
    requests = ledger.rows(kind="request")
    assert [r.request_id for r in requests] == ["r5", "r1", "r2", "r3", "r4"] + [f"l{i}" for i in range(10)]
    assert all(r.kind == "request" for r in requests)
    late_attempts = ledger.rows(since_ts=T0 + 14, kind="attempt")
    assert [r.request_id for r in late_attempts] == [f"l{i}" for i in range(4, 10)]
    assert len(ledger.rows(limit=3)) == 3
    assert ledger.rows(since_ts=T0 + 1000) == []


def test_a_second_ledger_on_the_same_database_reads_what_the_first_wrote(
    make_ledger: MakeLedger,
) -> None:
    loaded(make_ledger)
    assert len(make_ledger().rows()) == len(dataset())


# --- spend --------------------------------------------------------------------------------------


def test_spend_between_sums_attempt_rows_only(make_ledger: MakeLedger) -> None:
    ledger = loaded(make_ledger)
    # Request rows repeat their winning attempt's cost; counting them too would double the spend.
    assert ledger.spend_between(0, T0 + 1000) == SpendTotals(
        total_nanos=30 + 25_000 + 7 + 10,
        by_tier={"fast": 37, "premium": 25_000, "advanced": 0, "specialized": 10},
        by_key={"xai": 7, "universal": 30, "premium": 25_000, "grok4": 0, "codex": 10},
        tokens_by_key={"xai": 55, "universal": 120, "premium": 1200, "grok4": 0, "codex": 20},
        by_client={"desk": 30},
    )


def test_spend_between_is_a_half_open_window(make_ledger: MakeLedger) -> None:
    ledger = loaded(make_ledger)
    today = ledger.spend_between(DAY_START, DAY_START + 86_400)
    assert today.total_nanos == 25_040  # without yesterday's 7
    assert today.by_key["xai"] == 0 and today.tokens_by_key["xai"] == 0
    assert ledger.spend_between(YESTERDAY, DAY_START).total_nanos == 7
    assert ledger.spend_between(T0 + 2, T0 + 3).total_nanos == 30  # ts == end is excluded
    assert ledger.spend_between(T0 + 1000, T0 + 2000) == SpendTotals(0, {}, {}, {}, {})


# --- summary ------------------------------------------------------------------------------------


def line(requests: int, attempts: int, *, errors: int = 0, attempt_errors: int = 0, prompt: int = 0,
         completion: int = 0, cost: int = 0, cached: int = 0, avg: float | None = None,
         p50: float | None = None, p95: float | None = None, refused: int = 0) -> dict[str, object]:
    return {"requests": requests, "attempts": attempts, "errors": errors, "attempt_errors": attempt_errors,
            "prompt_tokens": prompt, "completion_tokens": completion, "cost_nanos": cost, "cached": cached,
            "avg_latency_ms": avg, "p50_latency_ms": p50, "p95_latency_ms": p95, "refused": refused}


def by_group(lines: list[dict[str, object]]) -> dict[object, dict[str, object]]:
    return {line.pop("group"): line for line in [dict(x) for x in lines]}


def approx_lines(expected: dict[object, dict[str, object]]) -> dict[object, dict[str, object]]:
    return {group: {k: pytest.approx(v) if isinstance(v, float) else v for k, v in values.items()}
            for group, values in expected.items()}


def test_summary_by_model_groups_by_served_else_requested_model(make_ledger: MakeLedger) -> None:
    lines = loaded(make_ledger).summary(since_ts=0, by="model")
    assert [x["group"] for x in lines] == [OPUS, MINI, LLAMA, FLASH, GROK]  # by cost, highest first
    assert by_group(lines) == approx_lines({
        OPUS: line(1, 1, prompt=1000, completion=200, cost=25_000, avg=2100.0, p50=2100.0, p95=2100.0),
        MINI: line(2, 2, attempt_errors=1, prompt=100, completion=20, cost=30, cached=1,
                   avg=130.5, p50=130.5, p95=1 + 0.95 * 259),
        LLAMA: line(10, 10, prompt=10, completion=10, cost=10, avg=55.0, p50=55.0, p95=95.5),
        FLASH: line(1, 1, prompt=50, completion=5, cost=7, avg=310.0, p50=310.0, p95=310.0),
        GROK: line(1, 1, errors=1, attempt_errors=1),
    })


def test_summary_by_key_task_tier_and_client(make_ledger: MakeLedger) -> None:
    ledger = loaded(make_ledger)
    keys = by_group(ledger.summary(since_ts=0, by="key"))
    assert set(keys) == {"xai", "universal", "premium", "grok4", "codex", None}
    assert keys["xai"] == line(1, 2, attempt_errors=1, prompt=50, completion=5, cost=7,
                               avg=310.0, p50=310.0, p95=310.0)
    assert keys[None] == line(1, 0, cached=1, avg=1.0, p50=1.0, p95=1.0)  # the cache hit used no key

    tasks = by_group(ledger.summary(since_ts=0, by="task"))
    assert tasks["signal_generation"] == approx_lines({0: line(
        2, 2, attempt_errors=1, prompt=100, completion=20, cost=30, cached=1,
        avg=130.5, p50=130.5, p95=1 + 0.95 * 259)})[0]
    assert tasks["market_analysis"]["errors"] == 1

    tiers = by_group(ledger.summary(since_ts=0, by="tier"))
    assert tiers["fast"] == approx_lines({0: line(
        3, 3, attempt_errors=1, prompt=150, completion=25, cost=37, cached=1,
        avg=(1 + 260 + 310) / 3, p50=260.0, p95=260 + 0.9 * 50)})[0]
    assert tiers["specialized"]["p95_latency_ms"] == pytest.approx(95.5)

    clients = by_group(ledger.summary(since_ts=0, by="client"))
    assert clients["desk"]["requests"] == 3 and clients["desk"]["cost_nanos"] == 30
    assert clients[None]["cost_nanos"] == 25_000 + 7 + 10


def test_summary_by_utc_day_and_since(make_ledger: MakeLedger) -> None:
    ledger = loaded(make_ledger)
    days = ledger.summary(since_ts=0, by="day")
    assert [(d["group"], d["requests"], d["cost_nanos"]) for d in days] == [
        ("2025-01-01", 1, 7), ("2025-01-02", 14, 25_040)]
    assert [d["group"] for d in ledger.summary(since_ts=DAY_START, by="day")] == ["2025-01-02"]
    assert ledger.summary(since_ts=YESTERDAY, until_ts=DAY_START, by="tier")[0]["cost_nanos"] == 7


def test_summary_rejects_an_unknown_dimension(make_ledger: MakeLedger) -> None:
    with pytest.raises(ValueError, match="by: expected one of model, key, task, tier, client, day"):
        make_ledger().summary(since_ts=0, by="provider")


def test_percentile_interpolates_between_ranks() -> None:
    assert percentile([], 0.5) is None
    assert percentile([7.0], 0.95) == 7.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile([float(x) for x in range(1, 101)], 0.95) == pytest.approx(95.05)


# --- durability ---------------------------------------------------------------------------------


def test_rows_are_committed_within_a_second_without_flush(make_ledger: MakeLedger) -> None:
    ledger = make_ledger()
    ledger.start()
    reader = make_ledger()  # another engine: sees only what is committed
    for i in range(20):
        ledger.write(row(request_id=f"q{i}"))
    assert wait_for(lambda: len(reader.rows()) == 20, within_s=3.0)
    time.sleep(0.3)  # a second trickle, after the writer has gone idle
    ledger.write(row(request_id="late"))
    assert wait_for(lambda: len(reader.rows()) == 21, within_s=3.0)


def test_a_full_batch_is_committed_before_the_interval(make_ledger: MakeLedger) -> None:
    ledger = make_ledger(flush_interval_s=60, batch_size=10)
    ledger.start()
    reader = make_ledger()
    for i in range(25):
        ledger.write(row(request_id=f"b{i}"))
    assert wait_for(lambda: len(reader.rows()) >= 20, within_s=3.0)
    ledger.close()
    assert len(reader.rows()) == 25


def test_close_commits_everything_and_is_idempotent(make_ledger: MakeLedger) -> None:
    ledger = make_ledger(flush_interval_s=60)  # no timed commit: only close() can write these
    ledger.start()
    for i in range(1000):
        ledger.write(row(request_id=f"c{i}", cost_nanos=i))
    ledger.close()
    ledger.close()
    assert make_ledger().spend_between(0, T0 + 1).total_nanos == sum(range(1000))


def test_rows_written_before_start_or_after_close_are_kept(make_ledger: MakeLedger) -> None:
    ledger = make_ledger()
    ledger.write(row(request_id="early"))
    ledger.close()  # never started: close starts it to commit the queued row
    ledger.write(row(request_id="late"))  # committed on the caller's thread
    ledger.flush()
    assert [r.request_id for r in make_ledger().rows()] == ["early", "late"]
    with pytest.raises(RuntimeError, match="closed"):
        ledger.start()


def test_flush_before_start_starts_the_ledger(make_ledger: MakeLedger) -> None:
    ledger = make_ledger()
    ledger.write(row(request_id="x"))
    ledger.flush(timeout=10)
    assert len(ledger.rows()) == 1


def test_several_ledgers_create_the_tables_at_once(make_ledger: MakeLedger) -> None:
    ledgers = [make_ledger() for _ in range(4)]
    errors: list[BaseException] = []

    def start(ledger: Ledger) -> None:
        try:
            ledger.start()
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(ledger,)) for ledger in ledgers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for i, ledger in enumerate(ledgers):
        ledger.write(row(request_id=f"s{i}"))
        ledger.flush()
    assert len(ledgers[0].rows()) == 4


def test_a_row_the_database_rejects_is_dropped_alone(
    make_ledger: MakeLedger, caplog: pytest.LogCaptureFixture
) -> None:
    ledger = make_ledger()
    ledger.start()
    ledger.write(row(request_id="good-1"))
    ledger.write(row(request_id=None))  # violates NOT NULL: retrying can never succeed
    ledger.write(row(request_id="good-2"))
    with caplog.at_level(logging.ERROR, logger="lyra.ledger"):
        ledger.flush(timeout=10)
    assert [r.request_id for r in ledger.rows()] == ["good-1", "good-2"]
    assert "dropping row of request None" in caplog.text


def test_a_batch_is_retried_through_an_outage_not_dropped(
    make_ledger: MakeLedger, ledger_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    ledger = make_ledger(flush_interval_s=0.02)
    ledger.start()
    engine = create_engine(parse_url(ledger_url))
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE lyra_usage"))  # every insert now fails
    engine.dispose()
    with caplog.at_level(logging.WARNING, logger="lyra.ledger"):
        for i in range(5):
            ledger.write(row(request_id=f"o{i}", cost_nanos=1))
        assert wait_for(lambda: "retrying in" in caplog.text, within_s=5.0)
        with pytest.raises(TimeoutError):
            ledger.flush(timeout=0.2)
        make_ledger().start()  # the table comes back
        ledger.flush(timeout=15)
    assert ledger.spend_between(0, T0 + 1).total_nanos == 5


# --- configuration ------------------------------------------------------------------------------


def test_from_env_prefers_env_then_configured_then_data_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("LYRA_LEDGER_URL", raising=False)
    default = Ledger.from_env()
    assert default.url_for_display == f"sqlite:///{tmp_path / 'xdg' / 'lyra' / 'ledger.db'}"
    assert (tmp_path / "xdg" / "lyra").is_dir()
    assert Ledger.from_env("sqlite:///configured.db").url_for_display == "sqlite:///configured.db"
    monkeypatch.setenv("LYRA_LEDGER_URL", f"sqlite:///{tmp_path / 'env.db'}")
    assert Ledger.from_env("sqlite:///configured.db").url_for_display == f"sqlite:///{tmp_path / 'env.db'}"


def test_default_folder_without_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XDG_DATA_HOME", raising=False)
    monkeypatch.delenv("LYRA_LEDGER_URL", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    expected = tmp_path / ".local" / "share" / "lyra" / "ledger.db"
    assert Ledger.from_env().url_for_display == f"sqlite:///{expected}"


def test_urls_mask_passwords_and_use_psycopg() -> None:
    ledger = Ledger("postgresql://lyra:s3cret-pw@db.internal:5432/ledger")
    assert "s3cret-pw" not in ledger.url_for_display and "s3cret-pw" not in repr(ledger)
    assert ledger.url_for_display == "postgresql+psycopg://lyra:***@db.internal:5432/ledger"
    assert Ledger("postgres://u@h/db").url_for_display.startswith("postgresql+psycopg://")


@pytest.mark.parametrize("url", ["mysql://u@h/db", "not a url", ""])
def test_unsupported_urls_are_config_errors(url: str) -> None:
    with pytest.raises(ConfigError, match=r"ledger\.url"):
        Ledger(url)


def test_sqlite_runs_in_wal_mode(sqlite_url: str) -> None:
    ledger = Ledger(sqlite_url)
    ledger.start()
    ledger.write(row())
    ledger.close()
    path = sqlite_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        indexes = {r[1] for r in conn.execute("PRAGMA index_list(lyra_usage)")}
    assert {"ix_lyra_usage_ts", "ix_lyra_usage_request_id"} <= indexes


_LATENCY_ROWS = st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.sampled_from(["ok", "ok", "error"]),
                                   st.floats(0, 10_000, allow_nan=False).map(lambda v: round(v, 3))),
                         max_size=60)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(requests=_LATENCY_ROWS)
def test_summary_latency_stats_equal_a_sort_of_every_ok_request(tmp_path: Path, requests: list[
        tuple[str, str, float]]) -> None:
    """The streamed average and percentiles equal those of the whole sorted list, per group."""
    ledger = Ledger(f"sqlite:///{tmp_path / f'{uuid.uuid4().hex}.db'}")
    try:
        ledger.start()
        for i, (model, status, latency) in enumerate(requests):
            ledger.write(row(ts=T0 + i, request_id=f"q{i}", kind="request", requested_model=model,
                             served_model=model, status=status, latency_ms=latency))
        ledger.flush()
        lines = {line["group"]: line for line in ledger.summary(since_ts=0, by="model")}
    finally:
        ledger.close()
    for model in {m for m, _, _ in requests}:
        values = sorted(v for m, s, v in requests if m == model and s == "ok")
        line = lines[model]
        assert line["p50_latency_ms"] == percentile(values, 0.50)
        assert line["p95_latency_ms"] == percentile(values, 0.95)
        assert line["avg_latency_ms"] == (sum(values) / len(values) if values else None)


def test_a_summary_line_is_typed_and_still_reads_as_it_did(make_ledger: MakeLedger) -> None:
    from lyra.ledger import SummaryLine

    [first, *_] = loaded(make_ledger).summary(since_ts=0, by="model")
    assert isinstance(first, SummaryLine)
    assert first.tokens == first.prompt_tokens + first.completion_tokens
    assert first["cost_nanos"] == first.cost_nanos and dict(first) == first.to_dict()
    with pytest.raises(KeyError):
        first["no_such_field"]
