"""Read-side SQL: spend totals, grouped summaries and raw rows, identical on SQLite and Postgres."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    FromClause,
    Select,
    String,
    case,
    column,
    func,
    literal,
    select,
    values,
)

from lyra.ledger.records import ROW_FIELDS, TAG_SEPARATOR, LedgerRow, SpendTotals, SummaryLine, split_tags
from lyra.ledger.schema import TextPosition, UtcDay, UtcHour, usage

SUMMARY_DIMENSIONS = ("model", "key", "task", "tier", "client", "day", "user", "tag", "hour")
# A summary by tag joins the window's rows to its distinct tags, sent as one VALUES list: each row is
# matched against each tag, so the work grows with rows x tags, and the tags are bounded.
MAX_SUMMARY_TAGS = 1_000
# The error kinds (exception class names, as lyra.observe.recording writes them) of requests a budget
# cap refused before any upstream call: failed requests, but no model's failure.
BUDGET_REFUSALS = ("BudgetExceeded", "CostUnbounded")


def spend_between(conn: Connection, start_ts: float, end_ts: float, *,
                  simulated: bool = False) -> SpendTotals:
    """Sum billed attempt rows with start_ts <= ts < end_ts, by tier, key and client.

    Only rows of one kind of money count: a simulator run's, or real ones.
    """
    c = usage.c
    tokens = c.prompt_tokens + c.completion_tokens
    query = (
        select(c.tier, c.key_name, c.client, func.sum(c.cost_nanos), func.sum(tokens))
        .where(c.kind == "attempt", c.ts >= start_ts, c.ts < end_ts, c.simulated.is_(simulated))
        .group_by(c.tier, c.key_name, c.client)
    )
    total = 0
    by_tier: dict[str, int] = defaultdict(int)
    by_key: dict[str, int] = defaultdict(int)
    tokens_by_key: dict[str, int] = defaultdict(int)
    by_client: dict[str, int] = defaultdict(int)
    for tier, key_name, client, cost, used_tokens in conn.execute(query):
        # Postgres sums BIGINT into NUMERIC, which arrives as Decimal.
        cost, used_tokens = int(cost or 0), int(used_tokens or 0)
        total += cost
        if tier is not None:
            by_tier[tier] += cost
        if key_name is not None:
            by_key[key_name] += cost
            tokens_by_key[key_name] += used_tokens
        if client is not None:
            by_client[client] += cost
    return SpendTotals(total, dict(by_tier), dict(by_key), dict(tokens_by_key), dict(by_client))


def _group_expression(by: str) -> ColumnElement[Any]:
    c = usage.c
    if by == "model":
        return func.coalesce(c.served_model, c.requested_model)
    if by == "day":
        return UtcDay(c.ts)
    if by == "hour":
        return UtcHour(c.ts)
    columns = {"key": c.key_name, "task": c.task, "tier": c.tier, "client": c.client, "user": c.end_user}
    if by not in columns:
        raise ValueError(f"by: expected one of {', '.join(SUMMARY_DIMENSIONS)}, got {by!r}")
    return columns[by]


HEDGE_LOST = "hedge_lost"  # the error kind of a hedged race's loser (lyra.routing.hedge)


def summary(conn: Connection, *, since_ts: float, until_ts: float | None, by: str,
            simulated: bool = False, client: str | None = None) -> list[SummaryLine]:
    """Per group: request, attempt and error counts, billed tokens and cost, latency of ok requests.

    Tokens and cost come from attempt rows (what was billed); `requests`, `errors` (failed
    requests), `cached` and the latencies come from request rows; `attempt_errors` counts
    failed attempts. Percentiles interpolate linearly between the closest ranks. With `client`,
    only that gateway client's rows count.

    By "tag", a row counts in the group of each of its tags (so the groups add up to the whole
    only when no row has more than one tag), and untagged rows form the group None.
    """
    c = usage.c
    is_request = c.kind == "request"
    is_attempt = c.kind == "attempt"

    def count(condition: ColumnElement[bool]) -> ColumnElement[Any]:
        return func.sum(case((condition, 1), else_=0))

    def billed(column: ColumnElement[Any]) -> ColumnElement[Any]:
        return func.sum(case((is_attempt, column), else_=0))

    timed = is_request & (c.status == "ok") & c.latency_ms.is_not(None)  # whose latency the stats use
    window = [c.ts >= since_ts, c.simulated.is_(simulated)]
    if until_ts is not None:
        window.append(c.ts < until_ts)
    if client is not None:
        window.append(c.client == client)
    source, grouping = _grouping(conn, by, window)
    group = grouping.label("grp")
    totals = (
        select(
            group,
            count(is_request),
            count(is_attempt),
            count(is_request & (c.status == "error")),
            # A hedged race's cancelled loser failed nothing: it is not counted as an attempt error.
            count(is_attempt & (c.status == "error") & c.error_kind.is_distinct_from(HEDGE_LOST)),
            billed(c.prompt_tokens),
            billed(c.completion_tokens),
            billed(c.cost_nanos),
            count(is_request & c.cached.is_(True)),
            count(is_request & (c.status == "error") & c.error_kind.in_(BUDGET_REFUSALS)),
        )
        .select_from(source)
        .where(*window)
        .group_by(group)
    )
    names = ("requests", "attempts", "errors", "attempt_errors", "prompt_tokens", "completion_tokens",
             "cost_nanos", "cached", "refused")
    counts: dict[object, dict[str, int]] = {}
    for grp, *sums in conn.execute(totals):
        # Postgres sums BIGINT into NUMERIC, which arrives as Decimal.
        counts[grp] = {name: int(value or 0) for name, value in zip(names, sums, strict=True)}
    # Each row carries its group's size, counted in the same statement (so in the same snapshot).
    size = func.count().over(partition_by=grouping)
    ordered = (select(group, c.latency_ms, size).select_from(source).where(*window, timed)
               .order_by(group, c.latency_ms))
    latency = _latency_stats(conn, ordered)
    lines = [_line(grp, sums, latency.get(grp)) for grp, sums in counts.items()]
    if by in ("day", "hour"):
        return sorted(lines, key=lambda line: str(line.group))
    return sorted(lines, key=lambda line: (-line.cost_nanos, -line.requests, str(line.group)))


def _grouping(conn: Connection, by: str, window: list[ColumnElement[bool]]
              ) -> tuple[FromClause, ColumnElement[Any]]:
    """The rows a summary reads and the expression it groups them by."""
    if by != "tag":
        return usage, _group_expression(by)
    c = usage.c
    found = conn.execute(select(c.tags).where(*window, c.tags.is_not(None)).distinct())
    names = sorted({tag for (text,) in found for tag in split_tags(text)})
    if len(names) > MAX_SUMMARY_TAGS:
        raise ValueError(f"by: {len(names):,} distinct tags in the window, more than a summary by tag "
                         f"covers ({MAX_SUMMARY_TAGS:,}); choose a shorter window")
    # VALUES needs a row: with no tags at all, one that no row's tags contain (tags are never empty).
    # A CTE, since SQLite takes no column names on a VALUES alias.
    tags = (values(column("tag", String()), name="summary_tags").data([(name,) for name in names or [""]])
            .cte("summary_tags"))
    edge = literal(TAG_SEPARATOR)
    contains = TextPosition(edge + c.tags + edge, edge + tags.c.tag + edge) > 0
    return usage.outerjoin(tags, contains), tags.c.tag


def _line(group: object, sums: dict[str, int],
          latency: tuple[float, float | None, float | None] | None) -> SummaryLine:
    avg, p50, p95 = latency if latency is not None else (None, None, None)
    return SummaryLine(group=None if group is None else str(group), requests=sums["requests"],
                       attempts=sums["attempts"], errors=sums["errors"],
                       attempt_errors=sums["attempt_errors"],
                       prompt_tokens=sums["prompt_tokens"], completion_tokens=sums["completion_tokens"],
                       cost_nanos=sums["cost_nanos"], cached=sums["cached"], avg_latency_ms=avg,
                       p50_latency_ms=p50, p95_latency_ms=p95, refused=sums["refused"])


def _latency_stats(conn: Connection, ordered: Select[Any]
                   ) -> dict[object, tuple[float, float | None, float | None]]:
    """Per group: the average, p50 and p95 of the latencies `ordered` yields as (group, value, size of
    the group) rows, sorted by group, then value.

    The rows are streamed and only the ranks a percentile needs are kept, so the memory a summary
    takes stays flat however many requests the window holds (a long day's ledger has millions).
    """
    stats: dict[object, tuple[float, float | None, float | None]] = {}
    group: object = _NO_GROUP
    index, total, kept, ranks = 0, 0.0, dict[int, float](), dict[float, tuple[int, int, float]]()

    def finish() -> None:
        if group is not _NO_GROUP and index:
            p50, p95 = (_interpolate(kept, *ranks[q]) for q in (0.50, 0.95))
            stats[group] = (total / index, p50, p95)

    for grp, latency, size in conn.execution_options(stream_results=True, yield_per=5_000).execute(ordered):
        if grp != group or group is _NO_GROUP:
            finish()
            group, index, total, kept = grp, 0, 0.0, {}
            ranks = {q: _ranks(int(size), q) for q in (0.50, 0.95)}
        value = float(latency)
        if any(index in (low, high) for low, high, _ in ranks.values()):
            kept[index] = value
        total += value
        index += 1
    finish()
    return stats


_NO_GROUP = object()


def _ranks(n: int, q: float) -> tuple[int, int, float]:
    """The two ranks (from 0) the q-quantile of n sorted values lies between, and how far along."""
    position = max(0, n - 1) * q
    low = math.floor(position)
    return low, min(low + 1, max(0, n - 1)), position - low


def _interpolate(kept: dict[int, float], low: int, high: int, fraction: float) -> float | None:
    if low not in kept or high not in kept:
        return None
    return kept[low] + (kept[high] - kept[low]) * fraction


def percentile(sorted_values: list[float], q: float) -> float | None:
    """The q-quantile (0 <= q <= 1) of sorted values, interpolated linearly; None when empty."""
    if not sorted_values:
        return None
    position = (len(sorted_values) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def rows(conn: Connection, *, since_ts: float, kind: str | None, limit: int | None,
         simulated: bool = False) -> list[LedgerRow]:
    """Rows with ts >= since_ts, oldest first, optionally of one kind and at most `limit` of them."""
    c = usage.c
    query = (select(*(c[name] for name in ROW_FIELDS)).where(c.ts >= since_ts, c.simulated.is_(simulated))
             .order_by(c.ts, c.id))
    if kind is not None:
        query = query.where(c.kind == kind)
    if limit is not None:
        query = query.limit(limit)
    return [LedgerRow(**dict(zip(ROW_FIELDS, row, strict=True))) for row in conn.execute(query)]


__all__ = ["SUMMARY_DIMENSIONS", "percentile", "rows", "spend_between", "summary"]
