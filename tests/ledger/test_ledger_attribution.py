"""Spend by end user and by tag, on SQLite and on Postgres: the columns, the migration, the summaries."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, inspect, text

from lyra.ledger import Ledger, LedgerRow, queries, tags_text
from lyra.ledger.schema import parse_url

MakeLedger = Callable[..., Ledger]
T0 = datetime(2025, 1, 2, 12, 0, tzinfo=UTC).timestamp()


def call(request_id: str, cost: int, *, user: str | None = None, tags: tuple[str, ...] = (),
         client: str = "desk", latency_ms: float = 100.0) -> list[LedgerRow]:
    """One served request: its attempt row (the billed one) and its request row."""
    shared = {"ts": T0, "request_id": request_id, "client": client, "served_model": "openai/gpt-4o-mini",
              "end_user": user, "tags": tags_text(tags), "cost_nanos": cost, "prompt_tokens": 10,
              "completion_tokens": 5, "latency_ms": latency_ms}
    return [LedgerRow(kind="attempt", **shared), LedgerRow(kind="request", **shared)]  # type: ignore[arg-type]


def fill(ledger: Ledger) -> None:
    for rows in (call("r1", 100, user="alice", tags=("desk:alpha",), latency_ms=100),
                 call("r2", 250, user="alice", tags=("desk:alpha", "run:7"), latency_ms=300),
                 call("r3", 1_000, user="bob", tags=("run:7",)),
                 call("r4", 7),  # no user, no tags
                 call("r5", 40_000, user="carol", tags=("desk:beta",), client="other")):
        for row in rows:
            ledger.write(row)
    ledger.flush()


def test_tags_are_stored_sorted_once_and_read_back(make_ledger: MakeLedger) -> None:
    ledger = make_ledger()
    ledger.start()
    for row in call("r1", 5, user="alice \u00e9", tags=("run:7", "desk:alpha", "run:7")):
        ledger.write(row)
    ledger.flush()
    [attempt, request] = ledger.rows(since_ts=0)
    assert attempt.end_user == request.end_user == "alice \u00e9"
    assert attempt.tags == request.tags == "desk:alpha,run:7"
    assert tags_text(()) is None


def test_summary_by_user_sums_to_the_total(make_ledger: MakeLedger) -> None:
    ledger = make_ledger()
    ledger.start()
    fill(ledger)
    lines = {line.group: line for line in ledger.summary(since_ts=0, by="user")}
    assert {g: (line.cost_nanos, line.requests) for g, line in lines.items()} == {
        "carol": (40_000, 1), "bob": (1_000, 1), "alice": (350, 2), None: (7, 1)}
    total = sum(line.cost_nanos for line in ledger.summary(since_ts=0, by="model"))
    assert sum(line.cost_nanos for line in lines.values()) == total == 41_357
    assert lines["alice"].p50_latency_ms == 200.0


def test_summary_by_tag_counts_a_request_in_each_of_its_tags(make_ledger: MakeLedger) -> None:
    ledger = make_ledger()
    ledger.start()
    fill(ledger)
    lines = {line.group: line for line in ledger.summary(since_ts=0, by="tag")}
    assert {g: (line.cost_nanos, line.requests, line.attempts) for g, line in lines.items()} == {
        "desk:beta": (40_000, 1, 1), "run:7": (1_250, 2, 2), "desk:alpha": (350, 2, 2), None: (7, 1, 1)}
    assert lines["desk:alpha"].avg_latency_ms == 200.0 and lines["run:7"].p95_latency_ms is not None


def test_a_clients_summary_has_only_its_own_users_and_tags(make_ledger: MakeLedger) -> None:
    ledger = make_ledger()
    ledger.start()
    fill(ledger)
    users = {line.group for line in ledger.summary(since_ts=0, by="user", client="desk")}
    tags = {line.group for line in ledger.summary(since_ts=0, by="tag", client="desk")}
    assert users == {"alice", "bob", None}
    assert tags == {"desk:alpha", "run:7", None}  # never `desk:beta`, another client's tag


def test_a_summary_by_tag_of_an_untagged_window_is_one_untagged_line(make_ledger: MakeLedger) -> None:
    ledger = make_ledger()
    ledger.start()
    for rows in (call("r1", 3), call("r2", 4)):
        for row in rows:
            ledger.write(row)
    ledger.flush()
    [line] = ledger.summary(since_ts=0, by="tag")
    assert (line.group, line.cost_nanos, line.requests) == (None, 7, 2)
    assert ledger.summary(since_ts=T0 + 1, by="tag") == []


def test_a_ledger_written_before_attribution_gains_the_columns(ledger_url: str) -> None:
    first = Ledger(ledger_url)
    first.start()
    first.close()
    engine = create_engine(parse_url(ledger_url))
    with engine.begin() as conn:  # the table as an older Lyra left it, with one row in it
        conn.execute(text("ALTER TABLE lyra_usage DROP COLUMN end_user"))
        conn.execute(text("ALTER TABLE lyra_usage DROP COLUMN tags"))
        conn.execute(text("INSERT INTO lyra_usage (ts, request_id, kind, prompt_tokens, completion_tokens, "
                          "cost_nanos, cost_estimated, latency_ms, status, attempt, cached, simulated) "
                          f"VALUES ({T0}, 'old', 'attempt', 1, 1, 9, FALSE, 1.0, 'ok', 0, FALSE, FALSE)"))
    with engine.connect() as conn:
        assert "end_user" not in {c["name"] for c in inspect(conn).get_columns("lyra_usage")}
    engine.dispose()
    ledger = Ledger(ledger_url)
    try:
        ledger.start()
        [old] = ledger.rows(since_ts=0)
        assert (old.request_id, old.end_user, old.tags) == ("old", None, None)
        for row in call("new", 5, user="alice", tags=("desk:alpha",)):
            ledger.write(row)
        ledger.flush()
        lines = {line.group: line.cost_nanos for line in ledger.summary(since_ts=0, by="tag")}
        assert lines == {"desk:alpha": 5, None: 9}
    finally:
        ledger.close()


def test_a_library_callers_tag_with_the_separator_still_splits_back() -> None:
    assert tags_text(["b,c", " a ", "", "a"]) == "a,b c"
    assert tags_text([" ", ","]) is None


def test_a_summary_by_tag_refuses_more_tags_than_it_covers(make_ledger: MakeLedger,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = make_ledger()
    ledger.start()
    fill(ledger)  # three distinct tags, two of them desk's
    monkeypatch.setattr(queries, "MAX_SUMMARY_TAGS", 2)
    with pytest.raises(ValueError, match=r"^by: 3 distinct tags in the window, more than a summary by tag covers"):
        ledger.summary(since_ts=0, by="tag")
    assert len(ledger.summary(since_ts=0, by="tag", client="desk")) == 3  # desk's own: two tags and None
