"""The simulator's 2026 error bodies: OpenRouter's budgets and availability errors, as the reference shows them."""

from __future__ import annotations

import time
from datetime import datetime

import aiohttp
import pytest
from sim_helpers import Chat, fetch

from lyra.simulator import Fault, Simulator


async def test_in_flight_budget_is_402_with_retry_after_and_its_reason(sim: Simulator, chat: Chat) -> None:
    sim.add_fault(Fault(kind="in_flight_budget", retry_after_s=2.5))
    answer = await chat()
    assert answer.status == 402 and answer.headers["Retry-After"] == "2.5"
    error = answer.json()["error"]
    assert error["code"] == 402
    assert error["metadata"]["reason"] == "in_flight_budget_exhausted"
    assert error["metadata"]["limit_source"] == "openrouter_in_flight_budget"
    assert error["metadata"]["remedy_hint"]


async def test_weight_exceeds_budget_is_402_without_retry_after(sim: Simulator, chat: Chat) -> None:
    sim.add_fault(Fault(kind="weight_exceeds_budget"))
    answer = await chat()
    assert answer.status == 402 and "Retry-After" not in answer.headers
    metadata = answer.json()["error"]["metadata"]
    assert (metadata["reason"], metadata["limit_source"]) == ("weight_exceeds_budget", "openrouter_credits")


@pytest.mark.parametrize(("kind", "interval", "scope"), [
    ("workspace_budget", "monthly", "workspace"), ("guardrail_budget", "daily", "api_key")])
async def test_budget_403s_carry_source_amounts_and_reset(
    sim: Simulator, chat: Chat, kind: str, interval: str, scope: str
) -> None:
    sim.add_fault(Fault(kind=kind, interval=interval))
    answer = await chat()
    assert answer.status == 403
    error = answer.json()["error"]
    meta = error["metadata"]
    assert meta["limit_source"] == f"openrouter_{kind}" and meta["scope"] == scope
    assert meta["spend_usd"] >= meta["limit_usd"] > 0
    assert interval in error["message"]
    resets = datetime.fromisoformat(meta["resets_at"].replace("Z", "+00:00"))
    assert resets.timestamp() > time.time() and (resets.hour, resets.minute) == (0, 0)
    if interval == "monthly":
        assert resets.day == 1


async def test_a_lifetime_budget_has_no_reset(sim: Simulator, chat: Chat) -> None:
    sim.add_fault(Fault(kind="workspace_budget", interval="lifetime"))
    assert (await chat()).json()["error"]["metadata"]["resets_at"] is None


async def test_the_key_limit_alternates_its_two_forms(sim: Simulator, chat: Chat) -> None:
    sim.add_fault(Fault(kind="key_limit"))
    first, second = (await chat()).json()["error"], (await chat()).json()["error"]
    assert first["message"].startswith("Key limit exceeded") and "limit_source" not in first["metadata"]
    assert second["message"].startswith("Key limit exceeded")
    assert second["metadata"]["limit_source"] == "openrouter_key_limit" and second["metadata"]["resets_at"]


@pytest.mark.parametrize(("code", "status", "retryable"), [
    ("model_deprecated", 404, False), ("free_variant_ended", 404, False),
    ("capacity_exhausted", 429, True), ("temporarily_unavailable", 503, True),
    ("region_restricted", 403, False), ("a_code_from_next_year", 503, False),
])
async def test_availability_errors_by_code(sim: Simulator, chat: Chat, code: str, status: int,
                                           retryable: bool) -> None:
    sim.add_fault(Fault(kind="unavailable", code=code, fallback_models=("anthropic/claude-sonnet-4.6",)))
    answer = await chat()
    assert answer.status == status
    error = answer.json()["error"]
    availability = error["availability"]
    assert (availability["code"], availability["retryable"]) == (code, retryable)
    assert availability["fallback_models"] == ["anthropic/claude-sonnet-4.6"]
    assert availability["requested_models"] == ["openai/gpt-4o"]
    assert error["metadata"]["error_type"] and error["metadata"]["provider_code"] == code


async def test_an_availability_retry_after_is_in_the_header_and_the_body(sim: Simulator, chat: Chat) -> None:
    sim.add_fault(Fault(kind="unavailable", code="capacity_exhausted", retry_after_s=3))
    answer = await chat()
    assert answer.headers["Retry-After"] == "3"
    assert answer.json()["error"]["availability"]["retry_after"] == 3


async def test_an_availability_error_falls_back_but_a_budget_one_does_not(sim: Simulator, chat: Chat) -> None:
    sim.add_fault(Fault(kind="unavailable", model="openai/gpt-4o", code="model_deprecated"))
    moved = await chat(model="openai/gpt-4o", models=["anthropic/claude-sonnet-4.6"])
    assert moved.status == 200 and moved.json()["model"] == "anthropic/claude-sonnet-4.6"
    sim.clear_faults()
    sim.add_fault(Fault(kind="workspace_budget", model="openai/gpt-4o"))
    refused = await chat(model="openai/gpt-4o", models=["anthropic/claude-sonnet-4.6"])
    assert refused.status == 403


async def test_the_control_endpoint_takes_the_new_fields(
    sim: Simulator, session: aiohttp.ClientSession, chat: Chat
) -> None:
    body = {"kind": "unavailable", "code": "free_variant_ended", "fallback_models": ["x-ai/grok-4.6"]}
    assert (await fetch(session, "POST", f"{sim.root_url}/_sim/faults", body=body)).status == 201
    assert (await chat()).json()["error"]["availability"]["fallback_models"] == ["x-ai/grok-4.6"]
    bad = await fetch(session, "POST", f"{sim.root_url}/_sim/faults",
                      body={"kind": "guardrail_budget", "interval": "hourly"})
    assert bad.status == 400 and "interval" in bad.json()["error"]["message"]
