"""The metrics module on its own: format negotiation, dollars from nano-dollars, metrics other modules
add, circuit phases and label values, read back through prometheus_client's parsers."""

from __future__ import annotations

from decimal import Decimal

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from lyra.budget.governor import CapLine
from lyra.errors import NoModelAvailable
from lyra.money import NANOS_PER_USD, usd_to_nanos
from lyra.observe.exposition import wants_openmetrics
from lyra.observe.metrics import Metrics
from lyra.routing.policy import RoutePlan
from lyra.routing.retry import CircuitBreaker
from lyra.types import Attempt, CompletionRequest

REQUEST = CompletionRequest(messages=[{"role": "user", "content": "hi"}])
PLAN = RoutePlan(task=None, tier=None, models=(), keys=(), round_robin=False, attempt_timeout_s=1.0,
                 max_tokens=None, temperature=None)


def values(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {tuple(sorted(s.labels.items())): s.value for f in parse_text(text) for s in f.samples
            if s.name == name}


@pytest.mark.parametrize(("accept", "openmetrics"), [
    (None, False),
    ("", False),
    ("*/*", False),
    ("text/plain", False),
    ("application/openmetrics-text", True),
    ("application/openmetrics-text; version=1.0.0; charset=utf-8", True),
    ("application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.3,*/*;q=0.2", True),
    ("application/openmetrics-text;q=0.2,text/plain;q=0.8", False),
    ("application/openmetrics-text;q=0", False),
    ("application/openmetrics-text;q=bogus,text/plain", False),
    ("APPLICATION/OPENMETRICS-TEXT", True),
])
def test_openmetrics_only_when_the_scraper_prefers_it(accept: str | None, openmetrics: bool) -> None:
    assert wants_openmetrics(accept) is openmetrics


def test_spend_is_summed_in_nanos_and_shown_in_exact_dollars() -> None:
    metrics = Metrics()
    # Ten attempts of 0.1 dollar-cents each: summing floats of 0.001 would not give 0.01 exactly.
    for _ in range(10):
        metrics.attempt("r", REQUEST, PLAN, Attempt(number=1, model="m/a", key_name="k", outcome="ok",
                                                    cost_nanos=usd_to_nanos("0.001"), prompt_tokens=3))
    page = metrics.render()
    spend = values(page.body.decode(), "lyra_spend_usd_total")
    assert list(spend.values()) == [0.01]
    assert Decimal(repr(0.01)) * NANOS_PER_USD == 10 * usd_to_nanos("0.001")
    labels = dict(next(iter(spend)))
    assert labels == {"model": "m/a", "key": "k", "task": "none", "tier": "none", "client": "none"}
    assert "_created" not in page.body.decode()


def test_another_module_adds_a_dollar_gauge_set_in_nanos() -> None:
    metrics = Metrics()
    drift = metrics.gauge("lyra_cost_drift_usd", "Ledger minus upstream cost, today", ["key"], usd=True)
    drift("premium").set(-usd_to_nanos("0.000000007"))
    counted = metrics.counter("lyra_reconciled_generations", "Generations checked against upstream")
    counted().inc()
    page = metrics.render(openmetrics=True)
    text = page.body.decode()
    assert text.endswith("# EOF\n")
    found = {s.name: s.value for f in parse_openmetrics(text) for s in f.samples}
    assert found["lyra_cost_drift_usd"] == -7e-9
    assert found["lyra_reconciled_generations_total"] == 1
    assert "# UNIT lyra_cost_drift_usd usd" in text
    with pytest.raises(ValueError, match="_usd"):
        metrics.gauge("lyra_cost_drift", "money without its unit", usd=True)
    with pytest.raises(ValueError, match="nano-dollars"):
        metrics.counter("lyra_refunds_usd", "dollars fed as floats")


def test_label_children_are_made_once() -> None:
    metrics = Metrics()
    assert metrics.tokens("m", "k", "t", "x", "prompt") is metrics.tokens("m", "k", "t", "x", "prompt")


def test_a_failure_before_any_attempt_has_a_value_for_every_label() -> None:
    metrics = Metrics()
    metrics.failure("r", REQUEST, PLAN, NoModelAvailable("nothing"))
    for family in parse_text(metrics.exposition().decode()):
        for sample in family.samples:
            assert "" not in sample.labels.values(), sample


def test_budget_gauges_split_dollars_from_tokens() -> None:
    caps = [CapLine("global", usd_to_nanos("200"), usd_to_nanos("0.3"), usd_to_nanos("0.000000001")),
            CapLine("key_tokens:xai", 1000, 250, 50, unit="tokens")]
    text = Metrics().render(caps).body.decode()
    assert values(text, "lyra_budget_spent_usd") == {(("cap", "global"),): 0.3}
    assert values(text, "lyra_budget_reserved_usd") == {(("cap", "global"),): 1e-9}
    assert values(text, "lyra_budget_remaining_tokens") == {(("cap", "key_tokens:xai"),): 700}
    assert "unit=" not in text


def test_circuit_phases_closed_open_half_open() -> None:
    now = [100.0]
    breaker = CircuitBreaker(failures=2, cooldown_s=10.0, clock=lambda: now[0])
    breaker.failure("a")
    breaker.failure("b")
    breaker.failure("b")
    assert breaker.phases() == {"a": "closed", "b": "open"}
    now[0] += 10.0
    assert breaker.phases() == {"a": "closed", "b": "half-open"}
    breaker.failure("b")  # the trial failed
    assert breaker.phases()["b"] == "open"
    now[0] += 10.0
    breaker.success("b")
    assert "b" not in breaker.phases()
