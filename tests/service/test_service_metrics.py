"""GET /metrics after real traffic through the gateway and the simulator, read back with
prometheus_client's own parsers (the text format and OpenMetrics) and checked against the ledger."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from gateway_support import DESK_TOKEN, MESSAGES, OPS_TOKEN
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from lyra.money import NANOS_PER_USD
from lyra.simulator import Fault, Simulator

AUTH = {"Authorization": f"Bearer {DESK_TOKEN}"}
OPS = {"Authorization": f"Bearer {OPS_TOKEN}"}
OPENMETRICS = "application/openmetrics-text; version=1.0.0"
FAILING = "openai/gpt-4o-mini"  # a model the desk may name directly


@pytest.fixture
async def http(gateway: str) -> AsyncIterator[tuple[aiohttp.ClientSession, str]]:
    async with aiohttp.ClientSession() as session:
        yield session, gateway


async def chat(http: tuple[aiohttp.ClientSession, str], *, model: str = "tier:fast",
               stream: bool = False) -> int:
    """One chat completion, read to its end (a stream to its last event); the HTTP status."""
    session, base = http
    body = orjson.dumps({"model": model, "messages": MESSAGES, "max_tokens": 24, "stream": stream})
    async with session.post(f"{base}/chat/completions", data=body,
                            headers=AUTH | {"Content-Type": "application/json"}) as r:
        text = await r.text()
        if stream and r.status == 200:
            assert text.rstrip().endswith("data: [DONE]"), text[-300:]
        return r.status


async def scrape(http: tuple[aiohttp.ClientSession, str], accept: str | None = None) -> tuple[str, str]:
    session, base = http
    headers = OPS | ({"Accept": accept} if accept else {})
    async with session.get(base.removesuffix("/v1") + "/metrics", headers=headers) as r:
        assert r.status == 200
        return r.headers["Content-Type"], await r.text()


def samples(families: Iterable[Metric]) -> list[tuple[str, dict[str, str], float]]:
    return [(s.name, dict(s.labels), s.value) for family in families for s in family.samples]


def total(found: list[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float:
    return sum(v for n, lab, v in found if n == name and labels.items() <= lab.items())


def exact_nanos(usd: float) -> int:
    """The whole nano-dollars a dollar value stands for; fails if it is not a whole number of them."""
    nanos = Decimal(repr(usd)) * NANOS_PER_USD
    assert nanos == nanos.to_integral_value(), usd
    assert int(nanos) / NANOS_PER_USD == usd
    return int(nanos)


def ledger(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


def check_well_formed(found: list[tuple[str, dict[str, str], float]]) -> None:
    assert found
    assert not [n for n, _, _ in found if n.endswith("_created")]
    empty = [(n, lab) for n, lab, _ in found if any(v == "" for v in lab.values())]
    assert empty == [], f"samples with an empty label value: {empty[:5]}"


async def test_both_formats_agree_with_the_ledger_on_money_and_tokens(
        http: tuple[aiohttp.ClientSession, str], tmp_path: Path) -> None:
    for stream in (False, True, False, True, True):
        assert await chat(http, stream=stream) == 200
    text_type, text = await scrape(http)
    om_type, om = await scrape(http, OPENMETRICS)

    assert text_type == "text/plain; version=0.0.4; charset=utf-8"
    assert om_type.startswith("application/openmetrics-text; version=1.0.0") and om.endswith("# EOF\n")
    plain, opened = samples(parse_text(text)), samples(parse_openmetrics(om))
    check_well_formed(plain)
    check_well_formed(opened)

    db = tmp_path / "ledger.db"
    [(cost, prompt, completion, served)] = ledger(db, (
        "SELECT sum(cost_nanos), sum(prompt_tokens), sum(completion_tokens), "
        "sum(status = 'ok') FROM lyra_usage WHERE kind = 'attempt'"))
    assert cost > 0 and served == 5
    for found in (plain, opened):
        spend = [v for n, _, v in found if n == "lyra_spend_usd_total"]
        assert spend and sum(exact_nanos(v) for v in spend) == cost
        assert total(found, "lyra_tokens_total", direction="prompt") == prompt
        assert total(found, "lyra_tokens_total", direction="completion") == completion
        assert total(found, "lyra_requests_total", outcome="ok", client="desk") == 5
        assert total(found, "lyra_upstream_responses_total", status="200") == 5
        assert total(found, "lyra_request_duration_seconds_count", outcome="ok") == 5
        assert total(found, "lyra_time_to_first_token_seconds_count") == 3  # once per stream
        in_flight = [v for n, _, v in found if n == "lyra_attempts_in_flight"]
        assert in_flight and set(in_flight) == {0.0}  # every model seen, none still in flight
        # The one gateway request in flight is the scrape itself.
        assert total(found, "lyra_http_requests_in_flight") == 1
        assert total(found, "lyra_key_usable") == len([n for n, _, _ in found if n == "lyra_key_usable"]) > 0
    assert sorted(n for n, _, _ in plain if n.startswith("lyra_spend")) == \
        sorted(n for n, _, _ in opened if n.startswith("lyra_spend"))
    # The budget: dollars and tokens in families of their own, no `unit` label.
    names = {n for n, _, _ in plain}
    assert {"lyra_budget_remaining_usd", "lyra_budget_spent_usd", "lyra_budget_limit_tokens"} <= names
    assert not [lab for n, lab, _ in plain if n.startswith("lyra_budget") and "unit" in lab]
    for gone in ("lyra_cost_usd", "lyra_request_latency_seconds", "lyra_budget_remaining{"):
        assert gone not in text and gone not in om


async def test_injected_failures_show_by_status_and_open_the_circuit(
        http: tuple[aiohttp.ClientSession, str], sim: Simulator, tmp_path: Path) -> None:
    sim.add_fault(Fault(kind="rate_limit", count=1))  # one 429, then the retry is served
    assert await chat(http, stream=True) == 200
    sim.add_fault(Fault(kind="server_error", status=500, model=FAILING))  # every call to it fails
    assert await chat(http, model=FAILING) == 503
    assert await chat(http, model=FAILING, stream=True) == 503  # its circuit is open: not even tried
    sim.clear_faults()
    assert await chat(http) == 200  # the last answer is durable only after every earlier ledger row
    _, text = await scrape(http)
    found = samples(parse_text(text))
    check_well_formed(found)

    breaker = {lab["model"]: v for n, lab, v in found if n == "lyra_breaker_state"}
    assert breaker[FAILING] == 2  # open
    rows = ledger(tmp_path / "ledger.db", (
        "SELECT coalesce(http_status, 200), count(*) FROM lyra_usage WHERE kind = 'attempt' "
        "AND status != 'skipped' GROUP BY 1"))
    by_status = {str(status): count for status, count in rows}
    assert by_status.get("429") == 1 and by_status.get("500", 0) >= 3
    metric_by_status: dict[str, float] = {}
    for n, lab, v in found:
        if n == "lyra_upstream_responses_total":
            metric_by_status[lab["status"]] = metric_by_status.get(lab["status"], 0) + v
    assert metric_by_status == by_status
    assert total(found, "lyra_upstream_responses_total", status="500", model=FAILING) >= 3
    # The stream retried after the 429 and the failed one never sent text: one first token each served.
    assert total(found, "lyra_time_to_first_token_seconds_count") == 1
    assert total(found, "lyra_requests_total", outcome="error", key="none") == 2
    assert total(found, "lyra_attempt_errors_total", kind="skipped") >= 1
    assert {v for n, _, v in found if n == "lyra_attempts_in_flight"} == {0.0}


async def test_a_scraper_preferring_the_text_format_gets_it(http: tuple[aiohttp.ClientSession, str]) -> None:
    # Prometheus' own header order; a q-value decides.
    content_type, _ = await scrape(http, "application/openmetrics-text;version=1.0.0;q=0.5,"
                                          "text/plain;version=0.0.4;q=0.9,*/*;q=0.1")
    assert content_type.startswith("text/plain; version=0.0.4")
    content_type, body = await scrape(http, "application/openmetrics-text;version=1.0.0;q=0.5,"
                                            "application/openmetrics-text;version=0.0.1;q=0.4,"
                                            "text/plain;version=0.0.4;q=0.3,*/*;q=0.2")
    assert content_type.startswith("application/openmetrics-text") and body.endswith("# EOF\n")
