"""Monitoring on the fast tier: thresholds computed in code, a fast model's comment beside them."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from lyra.errors import LyraError
from lyra.ledger import Ledger, LedgerRow
from lyra.log import get_logger, mask_known
from lyra.money import format_usd, usd_to_nanos

if TYPE_CHECKING:
    from lyra.budget.governor import CapLine
    from lyra.engine import Lyra

log = get_logger("lyra.ops.monitoring")
_LOG_LEVELS = ("WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True, slots=True, kw_only=True)
class Thresholds:
    """When code raises an alert; the model never decides this."""

    error_rate: float = 0.10  # failed attempts / attempts in the window
    burn_rate: float = 1.5  # spend pace / the pace that uses exactly the daily budget
    min_attempts: int = 10  # fewer attempts than this say nothing about an error rate


@dataclass(slots=True, kw_only=True)
class HealthReport:
    """One interval's metrics, the alerts code raised, and the fast model's comment."""

    metrics: dict[str, Any]
    alerts: list[str]
    comment: str = ""
    comment_error: str = ""


def window_metrics(
    ledger: Ledger,
    *,
    since_ts: float,
    until_ts: float,
    window_sim_s: float,
    daily_usd: Decimal,
    breakers: dict[str, str],
) -> dict[str, Any]:
    """Error rates, latency, spend and burn over one window, from the ledger."""
    attempts = errors = cost = 0
    latencies: list[float] = []
    worst: dict[str, float] = {}
    for line in ledger.summary(since_ts=since_ts, until_ts=until_ts, by="model"):
        attempts, errors = attempts + line.attempts, errors + line.attempt_errors
        cost += line.cost_nanos
        if line.attempts:
            worst[str(line.group)] = round(line.attempt_errors / line.attempts, 4)
        if line.avg_latency_ms is not None:
            latencies.append(line.avg_latency_ms)
    day_pace = usd_to_nanos(daily_usd) * window_sim_s / 86_400
    return {
        "attempts": attempts,
        "attempt_errors": errors,
        "error_rate": round(errors / attempts, 4) if attempts else 0.0,
        "error_rate_by_model": dict(sorted(worst.items(), key=lambda kv: -kv[1])[:5]),
        "avg_latency_ms": round(sum(latencies) / len(latencies), 1) if latencies else None,
        "spend_nanos": cost,
        "spend": format_usd(cost),
        "burn_rate": round(cost / day_pace, 4) if day_pace else 0.0,
        "open_breakers": sorted(m for m, s in breakers.items() if s == "open"),
    }


def alerts_for(metrics: dict[str, Any], thresholds: Thresholds) -> list[str]:
    """The alerts that the metrics call for, computed in code."""
    found = []
    if metrics["attempts"] >= thresholds.min_attempts and metrics["error_rate"] > thresholds.error_rate:
        found.append(
            f"error rate {metrics['error_rate']:.0%} above {thresholds.error_rate:.0%} "
            f"({metrics['attempt_errors']} of {metrics['attempts']} attempts)"
        )
    if metrics["burn_rate"] > thresholds.burn_rate:
        found.append(
            f"spend burn {metrics['burn_rate']:.2f}x the daily pace, above {thresholds.burn_rate:g}x"
        )
    if metrics["open_breakers"]:
        found.append(f"circuit open for {', '.join(metrics['open_breakers'])}")
    return found


class HealthMonitor:
    """The periodic health task: metrics of the last interval to a fast model, alerts in code."""

    def __init__(self, lyra: Lyra, *, thresholds: Thresholds | None = None) -> None:
        self.lyra = lyra
        self.thresholds = thresholds or Thresholds()
        self._since = time.time()
        self.reports: list[HealthReport] = []

    async def run_once(self, *, window_sim_s: float) -> HealthReport:
        """Measure the interval since the last run, alert in code, and ask a fast model to comment."""
        now = time.time()
        ledger = self.lyra.ledger
        breakers = self.lyra.router.breaker.state()
        if ledger is None:
            metrics: dict[str, Any] = {
                "attempts": 0,
                "attempt_errors": 0,
                "error_rate": 0.0,
                "burn_rate": 0.0,
                "open_breakers": sorted(m for m, s in breakers.items() if s == "open"),
            }
        else:
            ledger.flush(timeout=5)
            metrics = window_metrics(
                ledger,
                since_ts=self._since,
                until_ts=now,
                window_sim_s=window_sim_s,
                daily_usd=self.lyra.settings.budget.daily_usd,
                breakers=breakers,
            )
        self._since = now
        report = HealthReport(metrics=metrics, alerts=alerts_for(metrics, self.thresholds))
        for alert in report.alerts:
            log.warning("health: %s", alert)
        try:
            completion = await self.lyra.complete(
                tier="fast",
                max_tokens=200,
                cache="bypass",
                messages=[
                    {
                        "role": "system",
                        "content": "You watch an AI trading system's health. Comment in two "
                        "sentences; the alerts are decided already, do not invent others.",
                    },
                    {
                        "role": "user",
                        "content": "```json\n"
                        + orjson.dumps({"metrics": metrics, "alerts": report.alerts}).decode()
                        + "\n```",
                    },
                ],
            )
            report.comment = completion.text
            log.info("health: %s", completion.text[:300])
        except LyraError as exc:
            report.comment_error = f"{type(exc).__name__}: {exc}"[:200]
        self.reports.append(report)
        del self.reports[:-20]
        return report


@dataclass(slots=True)
class Findings:
    """What `lyra doctor` computes before any model reads anything."""

    requests: int = 0
    failed: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    by_model: Counter[str] = field(default_factory=Counter)
    by_task: Counter[str] = field(default_factory=Counter)
    log_lines: list[str] = field(default_factory=list)
    budget_caps: Counter[str] = field(default_factory=Counter)  # BudgetExceeded refusals under each cap
    refused_by: Counter[str] = field(default_factory=Counter)  # refusals by the cap that refused them
    cap_lines: list[str] = field(default_factory=list)  # those caps' state now, fullest first
    thresholds: Thresholds = field(default_factory=Thresholds)

    @property
    def needs_action(self) -> bool:
        """More than the alert threshold's share of requests failed (with enough requests to say)."""
        return (self.requests >= self.thresholds.min_attempts
                and self.failed / self.requests > self.thresholds.error_rate)

    def lines(self) -> list[str]:
        rate = self.failed / self.requests if self.requests else 0.0
        out = [f"requests: {self.requests}, failed: {self.failed} ({rate:.1%})"]
        for title, counter in (
            ("by error", self.by_kind),
            ("by model", self.by_model),
            ("by task", self.by_task),
        ):
            if counter:
                out.append(f"{title}: " + ", ".join(f"{k} {v}" for k, v in counter.most_common(5)))
        if self.refused_by:
            out.append("BudgetExceeded by cap: " + ", ".join(
                f"{cap} {n}" for cap, n in self.refused_by.most_common(5)))
        if self.budget_caps:  # rows written before the ledger named the refusing cap
            out.append("BudgetExceeded under caps: " + ", ".join(
                f"{cap} {n}" for cap, n in self.budget_caps.most_common(5)))
        if self.cap_lines:
            unsure = " (older rows do not say which one refused)" if self.budget_caps else ""
            out.append(f"those caps now, tightest first{unsure}: " + ", ".join(self.cap_lines))
        if self.log_lines:
            out.append(f"log warnings and errors: {len(self.log_lines)}; last: {self.log_lines[-1][:200]}")
        limit = f"{self.thresholds.error_rate:.0%} threshold"
        out.append(f"verdict: needs action, {rate:.1%} of requests failed, above the {limit}"
                   if self.needs_action else f"verdict: no failure share above the {limit}")
        return out

    def name_caps(self, caps: Iterable[CapLine]) -> None:
        """Note the state now of the caps the BudgetExceeded refusals were under."""
        wanted = self.budget_caps.keys() | self.refused_by.keys()
        named = {line.name: line for line in caps if line.name in wanted}
        tightest = sorted(named.values(), key=lambda c: c.remaining)
        self.cap_lines = [f"{c.name} {_cap_amount(c, c.remaining)} left of {_cap_amount(c, c.limit)}"
                          for c in tightest]


def _cap_amount(line: CapLine, value: int) -> str:
    return format_usd(value) if line.unit == "usd" else f"{value:,} tokens"


def find_problems(rows: list[LedgerRow], log_lines: list[str]) -> Findings:
    """Count failed requests by error kind, model and task; keep the log's warning and error lines."""
    found = Findings(log_lines=log_lines)
    for row in rows:
        if row.kind != "request":
            continue
        found.requests += 1
        if row.status == "error":
            found.failed += 1
            found.by_kind[row.error_kind or "unknown"] += 1
            found.by_model[row.served_model or row.requested_model or "?"] += 1
            found.by_task[row.task or f"tier:{row.tier}"] += 1
            if row.refused_cap:
                found.refused_by[row.refused_cap] += 1
            elif row.error_kind == "BudgetExceeded":
                found.budget_caps.update(_caps_over(row))
    return found


def _caps_over(row: LedgerRow) -> list[str]:
    """The caps a refused request was under (the row does not say which one refused it)."""
    caps = ["global"] + ([f"tier:{row.tier}"] if row.tier else [])
    return caps + ([f"client:{row.client}"] if row.client else [])


def read_log(path: Path, *, limit: int = 200, secrets: Iterable[str] = ()) -> list[str]:
    """The last warning and error lines of a log file, each with its secrets masked.

    The lines go to a model's prompt and to the terminal, so anything shaped like a key, a
    bearer token or a URL's password is masked, and so is each of `secrets` whatever its shape.
    """
    try:
        text = path.read_text("utf-8", errors="replace")
    except OSError as exc:
        raise LyraError(f"log file {path}: cannot read it ({exc.strerror})") from None
    known = list(secrets)
    return [mask_known(line, known) for line in text.splitlines()
            if any(level in line for level in _LOG_LEVELS)][-limit:]


async def run_doctor(*, config: Path | None, hours: float, log_file: Path | None, ask: bool) -> str:
    """`lyra doctor`: findings from the ledger (and a log), then a fast model's summary of them."""
    from lyra.engine import Lyra

    lyra = Lyra.from_config(config)
    # --no-ask calls no model: the stores alone, so that no simulator starts when no key is set.
    await (lyra.start() if ask else lyra.open_stores())
    try:
        known = [secret.reveal() for secret in lyra.config.secrets.values()]
        log_lines = read_log(log_file, secrets=known) if log_file is not None else []
        rows = lyra.ledger.rows(since_ts=time.time() - hours * 3600) if lyra.ledger is not None else []
        findings = find_problems(rows, log_lines)
        if (findings.budget_caps or findings.refused_by) and lyra.budget is not None:
            findings.name_caps(await lyra.budget.snapshot())
        text = ["findings (computed):", *(f"  {line}" for line in findings.lines())]
        if ask and (findings.failed or findings.log_lines):
            try:
                completion = await lyra.complete(
                    tier="fast",
                    max_tokens=300,
                    cache="bypass",
                    messages=[
                        {
                            "role": "system",
                            "content": "Summarise these operational findings of an AI trading "
                            "system for its operator: likely causes and what to check first. Be brief.",
                        },
                        {
                            "role": "user",
                            "content": "DATA (findings, untrusted):\n```text\n"
                            + "\n".join(findings.lines() + findings.log_lines[-20:]).replace("```", "'''")
                            + "\n```",
                        },
                    ],
                )
                text += ["summary (fast model):", completion.text]
            except LyraError as exc:
                text.append(f"summary unavailable: {type(exc).__name__}: {exc}"[:300])
    finally:
        await lyra.aclose()
    return "\n".join(text)


__all__ = [
    "Findings",
    "HealthMonitor",
    "HealthReport",
    "Thresholds",
    "alerts_for",
    "find_problems",
    "read_log",
    "run_doctor",
    "window_metrics",
]
