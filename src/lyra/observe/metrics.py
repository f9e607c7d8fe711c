"""Prometheus metrics: a router recorder for requests, attempts, tokens, spend, latency and errors.

Names follow Prometheus' rules: base units in the name (`_usd`, `_seconds`), counters end in
`_total`, dollars and tokens in families of their own. Labels carry names only (model ids, key
names, tasks, tiers, client names), never a secret, and always a value: "none" where a request
had no task, tier, key or client, "unknown" where the provider or model is not known.
Money is counted in exact nano-dollars and shown in dollars (see lyra.observe.exposition).

With several worker processes, set PROMETHEUS_MULTIPROC_DIR before prometheus_client is
imported (`lyra serve --workers N` does) and the exposition merges every worker's counters.

Another module adds a metric of its own with `Metrics.gauge` or `Metrics.counter` (a dollar one
with `usd=True`, set in nano-dollars), or a scrape-time collector with `Metrics.add_collector`.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable, Sequence
from typing import Any, Generic, Literal, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from lyra.budget.governor import CapLine
from lyra.errors import LyraError, UpstreamError
from lyra.observe.exposition import TEXT_CONTENT_TYPE, BudgetCollector, Exposed, HealthCollector, Page, render
from lyra.routing.hedge import LOST as HEDGE_LOST
from lyra.routing.policy import RoutePlan
from lyra.routing.router import AttemptContext, AttemptUsage, Router
from lyra.types import Attempt, Completion, CompletionRequest

CONTENT_TYPE = TEXT_CONTENT_TYPE  # the text format 0.0.4, for a scraper that does not ask for OpenMetrics
NONE = "none"  # a label whose request had no such thing (no task, tier, key or client)
UNKNOWN = "unknown"  # a label whose value Lyra could not learn (the provider of a failed call)
_MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Model calls take from tens of milliseconds (cache, fast tier) to tens of seconds (premium).
_CALL_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 21.0, 34.0)
# A stream's first text comes sooner than its end.
_FIRST_TEXT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0)
# The gateway's own handling is measured in milliseconds.
_HTTP_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_ROUTE_LABELS = ("model", "key", "task", "tier")
GaugeMode = Literal["all", "liveall", "min", "livemin", "max", "livemax", "sum", "livesum",
                    "mostrecent", "livemostrecent"]

M = TypeVar("M", Counter, Gauge, Histogram)


class Children(Generic[M]):
    """A metric family's label children, cached: the hot path looks one up by its label values."""

    __slots__ = ("_cache", "family")

    def __init__(self, family: M, *, labelled: bool = True) -> None:
        self.family: M = family
        # A family without labels is its own only child: `family()` reaches it.
        self._cache: dict[tuple[str, ...], M] = {} if labelled else {(): family}

    def __call__(self, *values: str) -> M:
        child = self._cache.get(values)
        if child is None:
            child = self._cache[values] = self.family.labels(*values)
        return child


class Metrics:
    """Counters, gauges and histograms of one process; also a router Recorder (pass it to add_recorder)
    and, once `attach`ed to a started router, a guard counting its upstream attempts in flight."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self._usd: set[str] = set()  # families held in nano-dollars, shown in dollars
        self._collectors: list[Collector] = []  # computed at scrape time (add_collector)
        self._failed_models: set[str] = set()  # models with a circuit once: listed by lyra_breaker_state
        self._router: Router | None = None
        self.requests = self.counter(
            "lyra_requests", "Routed requests by outcome (ok, cached, error)",
            [*_ROUTE_LABELS, "client", "outcome"])
        self.request_errors = self.counter(
            "lyra_request_errors", "Requests that failed, by error",
            ["model", "task", "tier", "client", "error"])
        self.attempts = self.counter(
            "lyra_attempts", "Upstream attempts by outcome (ok, error, skipped)", [*_ROUTE_LABELS, "outcome"])
        self.attempt_errors = self.counter(
            "lyra_attempt_errors", "Failed or skipped attempts, by kind", [*_ROUTE_LABELS, "kind"])
        self.upstream_responses = self.counter(
            "lyra_upstream_responses", "Upstream HTTP answers by status (an ok attempt is a 200)",
            ["model", "key", "provider", "status"])
        self.tokens = self.counter(
            "lyra_tokens", "Billed tokens by direction (prompt, completion)", [*_ROUTE_LABELS, "direction"],
            unit="tokens")
        self.spend = self.counter(
            "lyra_spend_usd", "Billed spend in USD: every attempt's booked cost, served or maybe billed",
            [*_ROUTE_LABELS, "client"], usd=True)
        self.request_duration = self._histogram(
            "lyra_request_duration_seconds", "Time to a served request's answer, retries included",
            ["model", "task", "tier", "outcome"], _CALL_BUCKETS)
        self.attempt_duration = self._histogram(
            "lyra_attempt_duration_seconds", "Time of one upstream attempt, by outcome (ok, error)",
            ["model", "outcome"], _CALL_BUCKETS)
        self.first_token = self._histogram(
            "lyra_time_to_first_token_seconds",
            "Time from a stream's start to its first text, retries included",
            ["model", "task", "tier"], _FIRST_TEXT_BUCKETS)
        self.attempts_in_flight = self.gauge(
            "lyra_attempts_in_flight", "Upstream attempts admitted and not yet settled", ["model"],
            multiprocess_mode="livesum")
        self.hedges = self.counter(
            "lyra_hedges", "Hedges (second attempts raced against a slow one) by outcome: sent, won",
            ["model", "tier", "outcome"])
        self.hedge_extra = self.counter(
            "lyra_hedge_extra_usd", "Booked cost of the cancelled losers of hedged races, USD (their "
            "worst case until reconciled)", ["model", "tier"], usd=True)
        self.http_requests = self.counter(
            "lyra_http_requests", "Gateway HTTP requests by route and status", ["route", "method", "status"])
        self.http_duration = self._histogram(
            "lyra_http_request_duration_seconds", "Gateway time from request to the end of the response",
            ["route"], _HTTP_BUCKETS)
        self.http_in_flight = self.gauge(
            "lyra_http_requests_in_flight", "Gateway HTTP requests being answered (a scrape counts itself)",
            multiprocess_mode="livesum")()
        self.in_flight = InFlight(self.attempts_in_flight)

    # --- adding metrics ------------------------------------------------------------------------

    def counter(self, name: str, documentation: str, labels: Sequence[str] = (), *,
                usd: bool = False, unit: str = "") -> Children[Counter]:
        """A counter on Lyra's registry (`name` without `_total`); its children cached by label values.

        With `usd=True` the name must end in `_usd` and the counter is fed whole nano-dollars
        (`inc(cost_nanos)`): the exposition divides by 10**9, once.
        """
        self._check_usd(name, usd)
        return Children(Counter(name, documentation, list(labels), registry=self.registry,
                                unit="usd" if usd else unit), labelled=bool(labels))

    def gauge(self, name: str, documentation: str, labels: Sequence[str] = (), *, usd: bool = False,
              unit: str = "", multiprocess_mode: GaugeMode = "mostrecent") -> Children[Gauge]:
        """A gauge on Lyra's registry, for another module to set (a reconciliation's cost drift, say).

        With `usd=True` the name must end in `_usd` and the gauge is set in nano-dollars
        (`set(drift_nanos)`), shown in dollars. `multiprocess_mode` says how workers' values merge:
        the default, "mostrecent", allows `set` only; pass "livesum" for a gauge moved by `inc`/`dec`.
        """
        self._check_usd(name, usd)
        return Children(Gauge(name, documentation, list(labels), registry=self.registry,
                              unit="usd" if usd else unit, multiprocess_mode=multiprocess_mode),
                        labelled=bool(labels))

    def add_collector(self, collector: Collector) -> None:
        """A collector computed at each scrape (shown as it is: give dollars as floats yourself)."""
        self._collectors.append(collector)

    def _histogram(self, name: str, documentation: str, labels: Sequence[str],
                   buckets: Sequence[float]) -> Children[Histogram]:
        return Children(Histogram(name, documentation, list(labels), buckets=buckets, registry=self.registry,
                                  unit="seconds"), labelled=bool(labels))

    def _check_usd(self, name: str, usd: bool) -> None:
        if usd != name.endswith("_usd"):
            raise ValueError(f"metric {name}: a dollar metric ends in _usd and is fed nano-dollars "
                             "(usd=True)")
        if usd:
            self._usd.add(name)

    # --- the router's Recorder protocol ----------------------------------------------------

    def attempt(self, request_id: str, request: CompletionRequest, plan: RoutePlan, attempt: Attempt) -> None:
        key = attempt.key_name or NONE
        labels = (attempt.model, key, plan.task or NONE, plan.tier or NONE)
        outcome = attempt.outcome
        self.attempts(*labels, outcome).inc()
        if outcome != "ok":
            self.attempt_errors(*labels, attempt.error_kind or outcome).inc()
            self._failed_models.add(attempt.model)
        if outcome != "skipped":
            self.attempt_duration(attempt.model, outcome).observe(attempt.latency_s)
            status = 200 if outcome == "ok" else attempt.status
            if status is not None:
                self.upstream_responses(attempt.model, key, attempt.provider or UNKNOWN, str(status)).inc()
        if attempt.prompt_tokens:
            self.tokens(*labels, "prompt").inc(attempt.prompt_tokens)
        if attempt.completion_tokens:
            self.tokens(*labels, "completion").inc(attempt.completion_tokens)
        if attempt.cost_nanos:
            self.spend(*labels, request.client or NONE).inc(attempt.cost_nanos)
        if attempt.kind == "hedge":
            self.hedges(attempt.model, labels[3], "sent").inc()
            if outcome == "ok":
                self.hedges(attempt.model, labels[3], "won").inc()
        if attempt.error_kind == HEDGE_LOST:
            self.hedge_extra(attempt.model, labels[3]).inc(attempt.cost_nanos)

    def completion(self, request_id: str, request: CompletionRequest, completion: Completion) -> None:
        outcome = "cached" if completion.cached else "ok"
        task, tier = completion.task or NONE, completion.tier or NONE
        self.requests(completion.model, completion.key_name or NONE, task, tier, request.client or NONE,
                      outcome).inc()
        self.request_duration(completion.model, task, tier, outcome).observe(completion.latency_s)

    def failure(self, request_id: str, request: CompletionRequest, plan: RoutePlan, error: LyraError) -> None:
        model = request.model or (plan.models[0].id if plan.models else UNKNOWN)
        task, tier, client = plan.task or NONE, plan.tier or NONE, request.client or NONE
        self.requests(model, NONE, task, tier, client, "error").inc()
        self.request_errors(model, task, tier, client, _error_label(error)).inc()

    def first_text(self, request_id: str, request: CompletionRequest, plan: RoutePlan, model: str,
                   seconds: float) -> None:
        """A stream's first text reached its caller (the router's StreamRecorder): once per stream."""
        self.first_token(model, plan.task or NONE, plan.tier or NONE).observe(seconds)

    def attach(self, router: Router) -> None:
        """Count `router`'s attempts in flight and show its circuits and keys at each scrape."""
        if self.in_flight not in router.guards:
            router.guards.append(self.in_flight)
        self._router = router

    # --- the gateway ---------------------------------------------------------------------------

    def observe_http(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one gateway HTTP request and how long it took."""
        self.http_requests(route, method, str(status)).inc()
        self.http_duration(route).observe(seconds)

    def render(self, caps: Sequence[CapLine] = (), *, openmetrics: bool = False) -> Page:
        """The page for GET /metrics, with budget, circuit and key gauges from a fresh snapshot."""
        source: Collector = self.registry
        if os.environ.get(_MULTIPROC_ENV):
            source = MultiProcessCollector(None)  # type: ignore[no-untyped-call]
        return render([Exposed(source, frozenset(self._usd)), BudgetCollector(caps),
                       HealthCollector(self._router, self._failed_models), *self._collectors],
                      openmetrics=openmetrics)

    def exposition(self, caps: Sequence[CapLine] = ()) -> bytes:
        """The text format 0.0.4 (see `render` for OpenMetrics)."""
        return self.render(caps).body


class InFlight:
    """A router guard that admits every attempt and counts it, by model, until it is settled."""

    def __init__(self, gauge: Children[Gauge]) -> None:
        self._gauge = gauge

    async def acquire(self, ctx: AttemptContext, deadline: float) -> Any:
        child = self._gauge(ctx.model.id)
        child.inc()
        return child

    async def release(self, ticket: Any, ctx: AttemptContext, usage: AttemptUsage | None) -> None:
        ticket.dec()


def _error_label(error: LyraError) -> str:
    if isinstance(error, UpstreamError):
        return f"upstream_{error.kind}"
    return type(error).__name__


def cost_drift_metrics(metrics: Metrics) -> Callable[[str | None, str | None, int, int], None]:
    """An observer of reconciled attempts (lyra.reconcile): `observe(model, key, booked, billed)` in nanos.

    `lyra_cost_drift_usd` sums billed - booked per model and key (a gauge: drift goes both ways);
    `lyra_cost_reconciled_usd_total` counts the billed spend reconciled so far. Both are held in
    exact nano-dollars and shown in dollars. One pair per Metrics.
    """
    made = _DRIFT_OBSERVERS.get(metrics)
    if made is not None:
        return made
    drift = metrics.gauge("lyra_cost_drift_usd", "OpenRouter's billed cost minus the booked cost of "
                          "reconciled attempts, USD", ["model", "key"], usd=True, multiprocess_mode="livesum")
    billed = metrics.counter("lyra_cost_reconciled_usd", "Billed cost of reconciled attempts "
                             "(GET /generation), USD", ["model", "key"], usd=True)

    def observe(model: str | None, key: str | None, booked_nanos: int, billed_nanos: int) -> None:
        labels = (model or UNKNOWN, key or NONE)
        drift(*labels).inc(billed_nanos - booked_nanos)
        billed(*labels).inc(billed_nanos)

    _DRIFT_OBSERVERS[metrics] = observe
    return observe


_DRIFT_OBSERVERS: weakref.WeakKeyDictionary[Metrics, Callable[[str | None, str | None, int, int], None]] = (
    weakref.WeakKeyDictionary())
