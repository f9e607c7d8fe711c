"""The metrics on a real engine in front of the simulator: attempts in flight while a stream is held
open, the first token once, a hung-up stream settled, and circuits and keys read at scrape time."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families as parse_text

from lyra import Lyra
from lyra.observe.metrics import Metrics
from lyra.routing.retry import CircuitBreaker
from lyra.simulator import Simulator
from lyra.types import Attempt, CompletionRequest
from support import engine_env

MESSAGES = [{"role": "user", "content": "ETH 1h: funding flipped negative. Signal?"}]


def scraped(metrics: Metrics) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    found: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in parse_text(metrics.exposition().decode()):
        for s in family.samples:
            found.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return found


def total(found: dict[str, dict[tuple[tuple[str, str], ...], float]], name: str) -> float:
    return sum(found.get(name, {}).values())


async def test_a_held_stream_is_in_flight_until_it_ends_or_its_caller_leaves(
        sim: Simulator, config_path: Callable[..., Path]) -> None:
    metrics = Metrics()
    lyra = Lyra.from_config(config_path(), environ=engine_env(sim))
    lyra.add_recorder(metrics)
    async with lyra:
        metrics.attach(lyra.router)
        metrics.attach(lyra.router)  # twice: still one guard
        assert lyra.router.guards.count(metrics.in_flight) == 1
        stream = lyra.stream(messages=MESSAGES, tier="fast", max_tokens=60)
        pieces = aiter(stream)
        await anext(pieces)
        held = scraped(metrics)
        assert total(held, "lyra_attempts_in_flight") == 1
        assert total(held, "lyra_time_to_first_token_seconds_count") == 1
        async for _ in pieces:
            pass
        done = scraped(metrics)
        assert total(done, "lyra_attempts_in_flight") == 0
        assert total(done, "lyra_time_to_first_token_seconds_count") == 1  # once, not per piece
        assert total(done, "lyra_request_duration_seconds_count") == 1

        left = aiter(lyra.stream(messages=MESSAGES, tier="fast", max_tokens=60))
        await anext(left)
        assert total(scraped(metrics), "lyra_attempts_in_flight") == 1
        await left.aclose()  # the caller hangs up mid-stream
        after = scraped(metrics)
        assert total(after, "lyra_attempts_in_flight") == 0
        assert total(after, "lyra_time_to_first_token_seconds_count") == 2
        cancelled = {dict(k)["kind"]: v for k, v in after["lyra_attempt_errors_total"].items()}
        assert cancelled == {"cancelled": 1}

        await lyra.complete(messages=MESSAGES, tier="fast", max_tokens=16)
        assert total(scraped(metrics), "lyra_time_to_first_token_seconds_count") == 2  # not a stream


async def test_circuits_and_keys_are_read_at_scrape_time(lyra: Lyra) -> None:
    now = [1000.0]
    lyra.router.breaker = CircuitBreaker(failures=2, cooldown_s=10.0, clock=lambda: now[0])
    metrics = Metrics()
    metrics.attach(lyra.router)
    breaker = lyra.router.breaker
    breaker.failure("m/open")
    breaker.failure("m/open")
    breaker.open_for("m/trial", 5.0)
    breaker.failure("m/flaky")  # one failure: still closed
    # A model that failed once and has since recovered stays listed, at 0.
    plan = lyra.router.policy.plan(CompletionRequest(messages=MESSAGES, tier="fast"))
    metrics.attempt("r", CompletionRequest(messages=MESSAGES), plan,
                    Attempt(number=1, model="m/recovered", key_name="xai", outcome="error", status=502))
    now[0] += 6.0
    lyra.router.keys.retire("xai", "revoked")
    found = scraped(metrics)
    states = {dict(k)["model"]: v for k, v in found["lyra_breaker_state"].items()}
    assert states == {"m/open": 2, "m/trial": 1, "m/flaky": 0, "m/recovered": 0}
    usable = {dict(k)["key"]: v for k, v in found["lyra_key_usable"].items()}
    assert usable["xai"] == 0 and set(usable) == set(lyra.settings.keys) and sum(usable.values()) > 0
    # Circuits follow the router's breaker even when it is swapped (a live session does).
    lyra.router.breaker = CircuitBreaker()
    assert {dict(k)["model"] for k in scraped(metrics)["lyra_breaker_state"]} == {"m/recovered"}
