"""OpenRouter's budget and availability errors (reference section 8), each met over loopback.

Every error is injected in the simulator and the test asserts the rule the router follows: which
key and model the next attempt used, the attempts on the Completion with their kinds, what happens
to a later request. Waits are asked of the router's `sleep`, which records them and returns at
once: a test asserts on the wait asked for, never on time.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from lyra import Lyra, NoModelAvailable, UpstreamError
from lyra.errors import FailureKind
from lyra.simulator import Fault, Simulator
from support import TOKENS, engine_env

MSG = [{"role": "user", "content": "Summarise BTC in one line."}]
GROK, DEEPSEEK, SONNET, TURBO = ("x-ai/grok-4.6", "deepseek/deepseek-chat", "anthropic/claude-sonnet-4.6",
                                 "openai/gpt-4-turbo")


class RecordedSleep:
    """The router's sleep: remembers each wait asked for and returns at once."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
async def lyra(sim: Simulator, config_path: Callable[..., Path]) -> AsyncIterator[Lyra]:
    async with Lyra.from_config(config_path(), environ=engine_env(sim)) as engine:
        engine.router.sleep = RecordedSleep()
        yield engine


def waits(lyra: Lyra) -> list[float]:
    sleep = lyra.router.sleep
    assert isinstance(sleep, RecordedSleep)
    return sleep.waits


def trail(attempts: list[object]) -> list[tuple[str, str | None, str, str | None]]:
    return [(a.outcome, a.error_kind, a.model, a.key_name) for a in attempts]  # type: ignore[attr-defined]


# --- 402 in_flight_budget_exhausted: wait Retry-After, then the same key -----------------------------

async def test_in_flight_budget_waits_retry_after_then_retries_the_same_key(lyra: Lyra, sim: Simulator) -> None:
    sim.add_fault(Fault(kind="in_flight_budget", model=GROK, count=1, retry_after_s=2.5))
    c = await lyra.complete(task="signal_generation", messages=MSG)
    assert trail(c.attempts) == [("error", "in_flight_budget", GROK, "grok4"), ("ok", None, GROK, "grok4")]
    assert c.attempts[0].status == 402 and c.attempts[0].retry_after_s == 2.5
    assert waits(lyra) == [2.5]  # exactly what Retry-After asked, no jitter on top


async def test_in_flight_budget_keeps_the_key_even_on_a_round_robin_tier(lyra: Lyra, sim: Simulator) -> None:
    sim.add_fault(Fault(kind="in_flight_budget", count=1, retry_after_s=1))
    c = await lyra.complete(tier="fast", messages=MSG)
    [failed, served] = c.attempts
    assert (failed.error_kind, served.outcome) == ("in_flight_budget", "ok")
    assert served.key_name == failed.key_name and served.model == failed.model
    assert waits(lyra) == [1.0]


async def test_a_retry_after_longer_than_the_deadline_gives_up_with_one_line(lyra: Lyra, sim: Simulator) -> None:
    sim.add_fault(Fault(kind="in_flight_budget", retry_after_s=60))
    with pytest.raises(UpstreamError) as caught:
        await lyra.complete(task="signal_generation", messages=MSG, deadline_s=5)
    err = caught.value
    assert err.kind is FailureKind.IN_FLIGHT_BUDGET and err.status == 402 and err.retry_after == 60
    assert "60s" in str(err) and "deadline" in str(err) and "\n" not in str(err)
    assert waits(lyra) == [] and sim.stats.calls == 1  # no wait begun, nothing else tried


# --- 402 weight_exceeds_budget: never the same request again; only a lighter candidate ----------------

async def test_weight_exceeds_budget_steps_down_to_a_lighter_model(lyra: Lyra, sim: Simulator) -> None:
    sim.add_fault(Fault(kind="weight_exceeds_budget", model=GROK))
    c = await lyra.complete(task="signal_generation", messages=MSG)
    assert trail(c.attempts) == [("error", "weight_exceeds_budget", GROK, "grok4"), ("ok", None, DEEPSEEK, "grok4")]
    assert waits(lyra) == []  # nothing to wait for: retrying the same request cannot help


async def test_weight_exceeds_budget_skips_every_heavier_candidate(lyra: Lyra, sim: Simulator) -> None:
    sim.add_fault(Fault(kind="weight_exceeds_budget"))
    with pytest.raises(NoModelAvailable) as caught:
        await lyra.complete(task="signal_generation", messages=MSG)
    assert [(a.outcome, a.error_kind, a.model) for a in caught.value.attempts] == [  # type: ignore[attr-defined]
        ("error", "weight_exceeds_budget", GROK),
        ("error", "weight_exceeds_budget", DEEPSEEK),  # lighter than grok: worth one try
        ("skipped", "skipped", SONNET),  # heavier than deepseek: would be refused too
        ("skipped", "skipped", TURBO),
    ]
    assert sim.stats.calls == 2
    assert "weight_exceeds_budget" in caught.value.attempts[2].message  # type: ignore[attr-defined]


# --- 403 key limit: the key is retired until the limit resets --------------------------------------

@pytest.mark.parametrize("fires", [1, 2])  # the message-only form, then the 2026 form with resets_at
async def test_a_key_limit_retires_the_key_until_the_utc_day_ends(lyra: Lyra, sim: Simulator, fires: int) -> None:
    for _ in range(fires - 1):  # the simulator alternates the two forms; use up the first
        sim.add_fault(Fault(kind="key_limit", key=TOKENS["codex"], count=1))
        await lyra.complete(tier="fast", messages=MSG, key="codex")
    sim.add_fault(Fault(kind="key_limit", key=TOKENS["grok4"]))
    c = await lyra.complete(task="signal_generation", messages=MSG)
    assert trail(c.attempts) == [("error", "key_limit", GROK, "grok4"), ("ok", None, GROK, "deepseek1")]
    until = lyra.router.keys.retired_until("grok4")
    midnight = (math.floor(time.time() / 86_400) + 1) * 86_400
    assert until == pytest.approx(midnight, abs=2)  # OpenRouter's day, UTC midnight (2 s for a day change)
    for _ in range(3):  # later requests of the same day never try the key again
        later = await lyra.complete(task="signal_generation", messages=MSG, cache="bypass")
        assert all(a.key_name != "grok4" for a in later.attempts)


async def test_a_guardrail_budget_retires_the_key_until_resets_at_and_moves_to_the_next(
    lyra: Lyra, sim: Simulator
) -> None:
    resets = time.time() + 7 * 3600
    sim.add_fault(Fault(kind="guardrail_budget", key=TOKENS["grok4"], interval="weekly", resets_at=resets))
    c = await lyra.complete(task="signal_generation", messages=MSG)
    assert trail(c.attempts) == [("error", "guardrail_budget", GROK, "grok4"), ("ok", None, GROK, "deepseek1")]
    assert c.attempts[0].status == 403
    assert lyra.router.keys.retired_until("grok4") == pytest.approx(resets, abs=0.01)  # ISO to the ms
    later = await lyra.complete(task="signal_generation", messages=MSG, cache="bypass")
    assert [a.key_name for a in later.attempts] == ["deepseek1"]


async def test_a_lifetime_budget_retires_the_key_for_good(lyra: Lyra, sim: Simulator) -> None:
    sim.add_fault(Fault(kind="guardrail_budget", key=TOKENS["grok4"], interval="lifetime"))
    await lyra.complete(task="signal_generation", messages=MSG)
    assert lyra.router.keys.retired_until("grok4") == math.inf


async def test_a_workspace_budget_gives_up_at_once_with_one_line(lyra: Lyra, sim: Simulator) -> None:
    sim.add_fault(Fault(kind="workspace_budget", interval="monthly"))
    with pytest.raises(UpstreamError) as caught:
        await lyra.complete(task="signal_generation", messages=MSG)
    err = caught.value
    assert err.kind is FailureKind.WORKSPACE_BUDGET and err.status == 403
    assert err.limit_source == "openrouter_workspace_budget" and err.limit_period == "monthly"
    line = str(err)
    assert "\n" not in line and "workspace" in line and "no other key is tried" in line
    assert "grok4" not in line and TOKENS["grok4"] not in line
    assert sim.stats.calls == 1  # every key of the workspace would be refused: none other is tried
    assert lyra.router.keys.retired_until("grok4") == pytest.approx(err.resets_at, abs=0.01)


# --- error.availability: retryable, retry_after, fallback_models ---------------------------------------

@pytest.mark.parametrize("code", ["model_deprecated", "free_variant_ended", "a_code_from_next_year"])
async def test_an_availability_error_that_is_not_retryable_moves_to_the_next_model(
    lyra: Lyra, sim: Simulator, code: str
) -> None:
    sim.add_fault(Fault(kind="unavailable", model=GROK, code=code, retryable=False))
    c = await lyra.complete(task="signal_generation", messages=MSG)
    assert trail(c.attempts) == [("error", "model_unavailable", GROK, "grok4"), ("ok", None, DEEPSEEK, "grok4")]
    assert sim.stats.by_model[GROK] == 1  # not retried on that model
    calls = sim.stats.calls
    later = await lyra.complete(task="signal_generation", messages=MSG, cache="bypass")
    assert later.attempts[0].outcome == "skipped" and later.model == DEEPSEEK
    assert sim.stats.calls == calls + 1


async def test_a_retryable_availability_error_is_retried_after_its_retry_after(lyra: Lyra, sim: Simulator) -> None:
    sim.add_fault(Fault(kind="unavailable", model=GROK, code="temporarily_unavailable", retry_after_s=3,
                        count=1))
    c = await lyra.complete(task="signal_generation", messages=MSG)
    assert [(a.outcome, a.model) for a in c.attempts] == [("error", GROK), ("ok", GROK)]
    assert c.attempts[0].retry_after_s == 3.0
    assert waits(lyra) == [3.0]


async def test_retryable_true_makes_an_otherwise_final_status_retryable(lyra: Lyra, sim: Simulator) -> None:
    sim.add_fault(Fault(kind="unavailable", model=GROK, code="a_code_from_next_year", status=404,
                        retryable=True, count=1))
    c = await lyra.complete(task="signal_generation", messages=MSG)
    assert [(a.outcome, a.model) for a in c.attempts] == [("error", GROK), ("ok", GROK)]
    assert c.attempts[0].error_kind == "server"


async def test_fallback_models_of_the_route_are_tried_next(lyra: Lyra, sim: Simulator) -> None:
    # The route's order is grok, deepseek, sonnet, turbo: OpenRouter's suggestion jumps the queue.
    sim.add_fault(Fault(kind="unavailable", model=GROK, code="model_deprecated", fallback_models=(SONNET,)))
    c = await lyra.complete(task="signal_generation", messages=MSG)
    assert [(a.outcome, a.model) for a in c.attempts] == [("error", GROK), ("ok", SONNET)]
    assert "fallback_models tried next: " + SONNET in c.attempts[0].message


async def test_fallback_models_outside_the_route_are_recorded_not_tried(lyra: Lyra, sim: Simulator) -> None:
    premium = "openai/gpt-4o"  # a premium model: the advanced tier's client may not be allowed it
    sim.add_fault(Fault(kind="unavailable", model=GROK, code="model_deprecated", fallback_models=(premium,)))
    c = await lyra.complete(task="signal_generation", messages=MSG)
    assert [a.model for a in c.attempts] == [GROK, DEEPSEEK]
    assert f"not candidates of this route: {premium}" in c.attempts[0].message
    assert sim.stats.by_model[premium] == 0


# --- the ledger keeps each kind as a string ---------------------------------------------------------

async def test_the_ledger_rows_carry_the_new_kinds(sim: Simulator, config_path: Callable[..., Path],
                                                    tmp_path: Path) -> None:
    environ = engine_env(sim) | {"LYRA_LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.db'}"}
    sim.add_fault(Fault(kind="in_flight_budget", model=GROK, count=1, retry_after_s=0))
    sim.add_fault(Fault(kind="weight_exceeds_budget", model=GROK, count=1))
    async with Lyra.from_config(config_path(), environ=environ) as engine:
        engine.router.sleep = RecordedSleep()
        await engine.complete(task="signal_generation", messages=MSG)
        assert engine.ledger is not None
        engine.ledger.flush()
        kinds = [row.error_kind for row in engine.ledger.rows(kind="attempt")]
    assert kinds == ["in_flight_budget", "weight_exceeds_budget", None]


# --- streams follow the same rules; config can change a row -----------------------------------------

async def test_a_stream_waits_for_the_in_flight_budget_on_the_same_key(lyra: Lyra, sim: Simulator) -> None:
    sim.add_fault(Fault(kind="in_flight_budget", model=SONNET, count=1, retry_after_s=1.5))
    stream = lyra.stream(task="market_analysis", messages=MSG)
    text = "".join([piece async for piece in stream])
    c = stream.completion
    assert text and trail(c.attempts) == [("error", "in_flight_budget", SONNET, "xai"), ("ok", None, SONNET, "xai")]
    assert waits(lyra) == [1.5]


async def test_config_can_make_weight_exceeds_budget_final(sim: Simulator, config_path: Callable[..., Path]) -> None:
    row = "breaker_cooldown_s = 60\n"
    path = config_path(**{row: row + 'on_failure = { weight_exceeds_budget = "raise" }\n'})
    sim.add_fault(Fault(kind="weight_exceeds_budget", model=GROK))
    async with Lyra.from_config(path, environ=engine_env(sim)) as engine:
        with pytest.raises(UpstreamError) as caught:
            await engine.complete(task="signal_generation", messages=MSG)
    assert caught.value.kind is FailureKind.WEIGHT_EXCEEDS_BUDGET and sim.stats.calls == 1
