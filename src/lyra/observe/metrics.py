"""Prometheus metrics: a router recorder for requests, tokens, cost, latency and errors; exposition.

Labels carry names only (model ids, key names, tasks, tiers, client names), never a secret.
Money is exposed in USD, the base unit Prometheus asks for; the ledger holds the exact nano-dollars.

With several worker processes, set PROMETHEUS_MULTIPROC_DIR before prometheus_client is
imported (`lyra serve --workers N` does) and the exposition merges every worker's counters.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable, Iterable, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from lyra.budget.governor import CapLine
from lyra.errors import LyraError, UpstreamError
from lyra.money import NANOS_PER_USD
from lyra.routing.policy import RoutePlan
from lyra.types import Attempt, Completion, CompletionRequest

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Model calls take from tens of milliseconds (cache, fast tier) to tens of seconds (premium).
_CALL_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0, 34.0)
# The gateway's own handling is measured in milliseconds.
_HTTP_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_ROUTE_LABELS = ("model", "key", "task", "tier")


class Metrics:
    """Counters and histograms of one process; also a router Recorder (pass it to add_recorder)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("lyra_requests", "Routed requests by outcome (ok, cached, error)",
                                [*_ROUTE_LABELS, "client", "outcome"], registry=r)
        self.request_errors = Counter("lyra_request_errors", "Requests that failed, by error",
                                      ["model", "task", "tier", "client", "error"], registry=r)
        self.attempts = Counter("lyra_attempts", "Upstream attempts by outcome (ok, error, skipped)",
                                [*_ROUTE_LABELS, "outcome"], registry=r)
        self.attempt_errors = Counter("lyra_attempt_errors", "Failed or skipped attempts, by kind",
                                      [*_ROUTE_LABELS, "kind"], registry=r)
        self.tokens = Counter("lyra_tokens", "Billed tokens by direction (prompt, completion)",
                              [*_ROUTE_LABELS, "direction"], registry=r)
        self.cost = Counter("lyra_cost_usd", "Billed cost in USD",
                            [*_ROUTE_LABELS, "client"], registry=r)
        self.latency = Histogram("lyra_request_latency_seconds", "Latency of successful requests",
                                 ["model", "task", "tier"], buckets=_CALL_BUCKETS, registry=r)
        self.http_requests = Counter("lyra_http_requests", "Gateway HTTP requests by route and status",
                                     ["route", "method", "status"], registry=r)
        self.http_latency = Histogram("lyra_http_request_duration_seconds",
                                      "Gateway time from request to the end of the response",
                                      ["route"], buckets=_HTTP_BUCKETS, registry=r)

    # --- the router's Recorder protocol ----------------------------------------------------

    def attempt(self, request_id: str, request: CompletionRequest, plan: RoutePlan, attempt: Attempt) -> None:
        labels = (attempt.model, attempt.key_name or "", plan.task or "", plan.tier or "")
        self.attempts.labels(*labels, attempt.outcome).inc()
        if attempt.outcome != "ok":
            self.attempt_errors.labels(*labels, attempt.error_kind or attempt.outcome).inc()
        if attempt.prompt_tokens:
            self.tokens.labels(*labels, "prompt").inc(attempt.prompt_tokens)
        if attempt.completion_tokens:
            self.tokens.labels(*labels, "completion").inc(attempt.completion_tokens)
        if attempt.cost_nanos:
            self.cost.labels(*labels, request.client or "").inc(attempt.cost_nanos / NANOS_PER_USD)

    def completion(self, request_id: str, request: CompletionRequest, completion: Completion) -> None:
        outcome = "cached" if completion.cached else "ok"
        task, tier = completion.task or "", completion.tier or ""
        self.requests.labels(completion.model, completion.key_name or "", task, tier,
                             request.client or "", outcome).inc()
        self.latency.labels(completion.model, task, tier).observe(completion.latency_s)

    def failure(self, request_id: str, request: CompletionRequest, plan: RoutePlan, error: LyraError) -> None:
        model = request.model or (plan.models[0].id if plan.models else "")
        task, tier, client = plan.task or "", plan.tier or "", request.client or ""
        self.requests.labels(model, "", task, tier, client, "error").inc()
        self.request_errors.labels(model, task, tier, client, _error_label(error)).inc()

    # --- the gateway ---------------------------------------------------------------------------

    def observe_http(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one gateway HTTP request and how long it took."""
        self.http_requests.labels(route, method, str(status)).inc()
        self.http_latency.labels(route).observe(seconds)

    def exposition(self, caps: Sequence[CapLine] = ()) -> bytes:
        """The text format for GET /metrics, with budget gauges from a fresh snapshot."""
        if os.environ.get(_MULTIPROC_ENV):
            merged = CollectorRegistry()
            MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
            body = generate_latest(merged)
        else:
            body = generate_latest(self.registry)
        budget = CollectorRegistry()
        budget.register(_BudgetCollector(caps))
        return body + generate_latest(budget)


def _error_label(error: LyraError) -> str:
    if isinstance(error, UpstreamError):
        return f"upstream_{error.kind}"
    return type(error).__name__


class _BudgetCollector(Collector):
    """Budget gauges computed at scrape time from the shared state, so every worker agrees."""

    def __init__(self, caps: Iterable[CapLine]) -> None:
        self._caps = list(caps)

    def collect(self) -> Iterable[Metric]:
        limit = GaugeMetricFamily("lyra_budget_limit", "Today's cap (USD, or tokens for key_tokens)",
                                  labels=["cap", "unit"])
        spent = GaugeMetricFamily("lyra_budget_spent", "Committed spend on a cap today",
                                  labels=["cap", "unit"])
        held = GaugeMetricFamily("lyra_budget_reserved", "Held by calls in flight", labels=["cap", "unit"])
        remaining = GaugeMetricFamily("lyra_budget_remaining", "Left under a cap today",
                                      labels=["cap", "unit"])
        for cap in self._caps:
            scale = 1e-9 if cap.unit == "usd" else 1.0
            labels = [cap.name, cap.unit]
            limit.add_metric(labels, cap.limit * scale)
            spent.add_metric(labels, cap.committed * scale)
            held.add_metric(labels, cap.reserved * scale)
            remaining.add_metric(labels, cap.remaining * scale)
        return [limit, spent, held, remaining]


def cost_drift_metrics(registry: CollectorRegistry) -> Callable[[str, str, int, int], None]:
    """An observer of reconciled attempts (lyra.reconcile): `observe(model, key, booked, billed)` in nanos.

    `lyra_cost_drift_usd` sums billed - booked in USD per model and key (a gauge: drift goes both
    ways); `lyra_cost_reconciled_usd` counts the billed spend reconciled so far. One per registry.
    """
    made = _DRIFT_OBSERVERS.get(registry)
    if made is not None:
        return made
    drift = Gauge("lyra_cost_drift_usd", "OpenRouter's billed cost minus the booked cost of reconciled "
                  "attempts, USD", ["model", "key"], registry=registry, multiprocess_mode="livesum")
    billed = Counter("lyra_cost_reconciled_usd", "Billed cost of reconciled attempts (GET /generation), USD",
                     ["model", "key"], registry=registry)

    def observe(model: str, key: str, booked_nanos: int, billed_nanos: int) -> None:
        drift.labels(model, key).inc((billed_nanos - booked_nanos) / NANOS_PER_USD)
        billed.labels(model, key).inc(billed_nanos / NANOS_PER_USD)

    _DRIFT_OBSERVERS[registry] = observe
    return observe


_DRIFT_OBSERVERS: weakref.WeakKeyDictionary[CollectorRegistry, Callable[[str, str, int, int], None]] = (
    weakref.WeakKeyDictionary())
