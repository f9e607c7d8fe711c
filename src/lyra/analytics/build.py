"""Building a Report from the ledger's usage rows, its audit trail and today's budget caps."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from lyra.analytics.accounts import read_accounts
from lyra.analytics.advice import AdviceRules, routing_advice
from lyra.analytics.alerts import desk_alerts
from lyra.analytics.drift import read_drift
from lyra.analytics.report import (
    Agreement,
    Cap,
    ClientStats,
    DecisionView,
    KeyStats,
    ModelStats,
    Report,
    Signals,
    Spend,
)
from lyra.analytics.window import Window
from lyra.budget.governor import CapLine
from lyra.caps import Cap as CapId
from lyra.ledger import AuditRecord, Ledger, SummaryLine

SIGNAL_ACTIONS = frozenset({"BUY", "SELL"})
MAX_DECISIONS = 5_000
# Audit records of experiments that are not decisions (lyra.trading.experiments SHADOW_KIND, OUTCOME_KIND).
EXPERIMENT_RECORDS = ("experiment_shadow", "experiment_outcome")
RECENT_DECISIONS = 10


def build_report(
    ledger: Ledger,
    window: Window,
    *,
    tier_of: Callable[[str], str],
    caps: Sequence[CapLine] = (),
    rules: AdviceRules | None = None,
    now: float | None = None,
    client: str | None = None,
    breakers: Mapping[str, str] | None = None,
) -> Report:
    """Read the window's rows and decisions (blocking: run it in a thread from async code).

    With `client`, the report is that gateway client's own: its rows, decisions and paper accounts
    only, and no key lines or routing advice (those describe the desk's keys, an operator's view).
    `breakers` is the router's circuit of each model (an operator's view), shown and alerted on.
    """
    span: dict[str, Any] = {"since_ts": window.start_ts, "until_ts": window.end_ts, "client": client}
    models = [_model(line, tier_of) for line in ledger.summary(by="model", **span)]
    keys = ([] if client is not None else
            [_key(line, caps) for line in ledger.summary(by="key", **span) if line.group is not None])
    days = [Spend(str(line.group), line.cost_nanos, line.requests)
            for line in ledger.summary(by="day", **span)]
    cost = sum(d.cost_nanos for d in days)
    records = [r for r in ledger.audit.recent(MAX_DECISIONS) if window.start_ts <= r.ts < window.end_ts
               and (client is None or r.payload.get("client") == client)
               and r.payload.get("kind") not in EXPERIMENT_RECORDS]
    report_caps = [Cap(c.name, c.unit, c.limit, c.committed, c.reserved) for c in caps]
    accounts = read_accounts(ledger.accounts, client=client)
    return Report(
        window=window, generated_ts=now if now is not None else time.time(),
        requests=sum(m.requests for m in models), errors=sum(m.errors for m in models), cost_nanos=cost,
        models=models, keys=keys, days=days, months=_months(days), signals=_signals(records, cost),
        agreement=_agreement(records),
        caps=report_caps,
        advice=routing_advice(models, rules) if client is None else [],
        decisions=[_decision(r) for r in records[:RECENT_DECISIONS]],
        simulated=ledger.simulated, client=client, accounts=accounts,
        cost_drift=None if client is not None else read_drift(ledger, since_ts=window.start_ts,
                                                              until_ts=window.end_ts),
        clients=_clients(ledger.summary(by="client", **span), caps, client),
        breakers=dict(breakers or {}),
        hours=[Spend(str(line.group), line.cost_nanos, line.requests)
               for line in ledger.summary(by="hour", **span)],
        alerts=desk_alerts(caps=report_caps, models=models, breakers=breakers or {}, accounts=accounts),
    )


def _clients(lines: Sequence[SummaryLine], caps: Sequence[CapLine], client: str | None) -> list[ClientStats]:
    """Every gateway client with traffic in the window or a daily cap (only `client` itself, when given)."""
    used = {str(line.group): line for line in lines if line.group is not None}
    capped = {c.name.removeprefix("client:"): c for c in caps if c.name.startswith("client:")}
    names = sorted(set(used) | set(capped))
    if client is not None:
        names = [n for n in names if n == client] or [client]
    found: list[ClientStats] = []
    for name in names:
        line, cap = used.get(name, SummaryLine(group=name)), capped.get(name)
        found.append(ClientStats(
            client=name, requests=line.requests, errors=line.errors, refused=line.refused,
            cost_nanos=line.cost_nanos, tokens=line.tokens,
            today_spent_nanos=cap.committed if cap else None,
            today_reserved_nanos=cap.reserved if cap else None, cap_nanos=cap.limit if cap else None))
    return found


def _int(value: object) -> int:
    return int(value) if isinstance(value, int | float) else 0


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _model(line: SummaryLine, tier_of: Callable[[str], str]) -> ModelStats:
    name = line.group if line.group is not None else "(none)"
    return ModelStats(
        model=name, tier=tier_of(name), requests=line.requests, errors=line.errors, attempts=line.attempts,
        attempt_errors=line.attempt_errors, cached=line.cached, cost_nanos=line.cost_nanos,
        tokens=line.tokens, refused=line.refused,
        avg_latency_ms=line.avg_latency_ms, p50_latency_ms=line.p50_latency_ms,
        p95_latency_ms=line.p95_latency_ms)


def _key(line: SummaryLine, caps: Sequence[CapLine]) -> KeyStats:
    name = str(line.group)
    usd_cap = next((c for c in caps if c.cap == CapId.key(name)), None)
    token_cap = next((c for c in caps if c.cap == CapId.key_tokens(name)), None)
    return KeyStats(
        key=name, attempts=line.attempts, attempt_errors=line.attempt_errors, cost_nanos=line.cost_nanos,
        tokens=line.tokens,
        today_spent_nanos=usd_cap.committed if usd_cap else None,
        cap_nanos=usd_cap.limit if usd_cap else None,
        today_tokens=token_cap.committed if token_cap else None,
        cap_tokens=token_cap.limit if token_cap else None)


def _months(days: Sequence[Spend]) -> list[Spend]:
    cost: dict[str, int] = defaultdict(int)
    requests: dict[str, int] = defaultdict(int)
    for d in days:
        cost[d.period[:7]] += d.cost_nanos
        requests[d.period[:7]] += d.requests
    return [Spend(month, cost[month], requests[month]) for month in sorted(cost)]


def _signals(records: Sequence[AuditRecord], spend_nanos: int) -> Signals:
    signals = [r for r in records if r.action in SIGNAL_ACTIONS]
    return Signals(decisions=len(records), signals=len(signals),
                   decision_cost_nanos=sum(r.cost_nanos for r in signals), spend_nanos=spend_nanos)


def _panels(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """The consensus results recorded in a decision: the signal panel's and the final panel's."""
    return [p for p in (payload.get("signal"), payload.get("final")) if isinstance(p, dict)]


def _agreement(records: Sequence[AuditRecord]) -> Agreement:
    agreements: list[float] = []
    agreed: dict[str, int] = defaultdict(int)
    votes: dict[str, int] = defaultdict(int)
    for record in records:
        for panel in _panels(record.payload):
            if isinstance(panel.get("agreement"), int | float):
                agreements.append(float(panel["agreement"]))
            for vote in panel.get("votes") or []:
                if vote.get("status") != "vote":
                    continue
                model = str(vote.get("served_model") or vote.get("model"))
                votes[model] += 1
                agreed[model] += vote.get("action") == panel.get("action")
    return Agreement(
        panels=len(agreements),
        mean_agreement=round(sum(agreements) / len(agreements), 4) if agreements else None,
        by_model={m: round(agreed[m] / n, 4) for m, n in sorted(votes.items())},
        votes_by_model=dict(sorted(votes.items())))


def _decision(record: AuditRecord) -> DecisionView:
    panels = _panels(record.payload)
    deciding = panels[-1] if panels else {}
    votes = [{k: v.get(k) for k in ("model", "status", "action", "confidence", "weight")}
             for v in deciding.get("votes") or []]
    agreement = deciding.get("agreement")
    payload = record.payload
    bar_time = payload.get("time")
    return DecisionView(seq=record.seq, ts=record.ts, symbol=record.symbol, action=record.action,
                        cost_nanos=record.cost_nanos,
                        agreement=float(agreement) if isinstance(agreement, int | float) else None,
                        votes=votes, decision_id=record.decision_id, audit_hash=record.hash,
                        bar_time=str(bar_time) if bar_time is not None else None,
                        price=_float(payload.get("price")), notional_usd=_float(payload.get("notional_usd")))
