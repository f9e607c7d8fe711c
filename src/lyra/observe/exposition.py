"""The /metrics page: format negotiation, nano-dollars shown as dollars, and scrape-time gauges.

Money is counted in exact integer nano-dollars and divided into dollars here, once, at exposition.
A counter holds its value as a float, which is exact for integers below 2**53 nano-dollars
(about 9 million dollars per series and process lifetime).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from prometheus_client import generate_latest as text_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS_CONTENT_TYPE
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest
from prometheus_client.registry import Collector

from lyra.budget.governor import CapLine
from lyra.money import NANOS_PER_USD
from lyra.routing.router import Router

TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_OPENMETRICS = "application/openmetrics-text"
# A circuit's state as a number, so that an alert can say `lyra_breaker_state == 2`.
BREAKER_LEVELS = {"closed": 0, "half-open": 1, "open": 2}


@dataclass(frozen=True, slots=True)
class Page:
    """A rendered /metrics answer."""

    body: bytes
    content_type: str


def wants_openmetrics(accept: str | None) -> bool:
    """True when the Accept header prefers OpenMetrics to the text format (q-values honoured)."""
    if not accept:
        return False
    best_openmetrics = best_text = 0.0
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        media = media.lower()
        if media == _OPENMETRICS:
            best_openmetrics = max(best_openmetrics, q)
        elif media in ("text/plain", "text/*", "*/*"):
            best_text = max(best_text, q)
    return best_openmetrics > 0 and best_openmetrics >= best_text


def render(collectors: Iterable[Collector], *, openmetrics: bool) -> Page:
    """Every collector's families on one page, in OpenMetrics (ending `# EOF`) or the text format."""
    registry = CollectorRegistry()
    for collector in collectors:
        registry.register(collector)
    if openmetrics:
        return Page(openmetrics_latest(registry), OPENMETRICS_CONTENT_TYPE)  # type: ignore[no-untyped-call]
    return Page(text_latest(registry), TEXT_CONTENT_TYPE)


class Exposed(Collector):
    """Lyra's own metrics as shown: nano-dollar families in dollars, and no `_created` series."""

    def __init__(self, source: Collector, usd_families: frozenset[str]) -> None:
        self._source = source
        self._usd = usd_families

    def collect(self) -> Iterable[Metric]:
        for family in self._source.collect():
            created = family.name + "_created"
            scale = family.name in self._usd
            shown = Metric(family.name, family.documentation, family.type, family.unit)
            shown.samples = [s._replace(value=s.value / NANOS_PER_USD) if scale else s
                             for s in family.samples if s.name != created]
            yield shown


class BudgetCollector(Collector):
    """Budget gauges computed at scrape time from the shared state, so every worker agrees.

    Dollar caps and token caps are separate families (`..._usd`, `..._tokens`).
    """

    def __init__(self, caps: Iterable[CapLine]) -> None:
        self._caps = list(caps)

    def collect(self) -> Iterable[Metric]:
        families: list[Metric] = []
        for unit, divisor in (("usd", NANOS_PER_USD), ("tokens", 1)):
            caps = [c for c in self._caps if c.unit == unit]
            parts: Sequence[tuple[str, str, Callable[[CapLine], int]]] = (
                ("limit", "Today's cap", lambda c: c.limit),
                ("spent", "Committed on a cap today", lambda c: c.committed),
                ("reserved", "Held by calls in flight", lambda c: c.reserved),
                ("remaining", "Left under a cap today", lambda c: c.remaining),
            )
            for part, doc, value in parts:
                family = GaugeMetricFamily(f"lyra_budget_{part}_{unit}", f"{doc} ({unit})", labels=["cap"],
                                           unit=unit)
                for cap in caps:
                    family.add_metric([cap.name], value(cap) / divisor)
                families.append(family)
        return families


class HealthCollector(Collector):
    """Circuit and key gauges of this process's router, read at scrape time.

    Each worker process has its own circuits and key rests: a scrape shows the worker it reached.
    Models that have failed once stay listed (at 0 once closed), so a recovery is a value, not a gap.
    """

    def __init__(self, router: Router | None, known_models: Iterable[str]) -> None:
        self._router = router
        self._known = known_models

    def collect(self) -> Iterable[Metric]:
        circuits = GaugeMetricFamily("lyra_breaker_state",
                                     "A model's circuit: 0 closed, 1 half-open (trial calls), 2 open",
                                     labels=["model"])
        usable = GaugeMetricFamily("lyra_key_usable",
                                   "1 when a key can take a call now, 0 when retired, cooling or over its "
                                   "daily tokens", labels=["key"])
        if self._router is None:
            return [circuits, usable]
        phases = self._router.breaker.phases()  # read now: a live session may swap the breaker
        for model in sorted(set(phases) | set(self._known)):
            circuits.add_metric([model], BREAKER_LEVELS[phases.get(model, "closed")])
        for status in self._router.keys.status():
            usable.add_metric([status.name], 1.0 if status.available else 0.0)
        return [circuits, usable]
