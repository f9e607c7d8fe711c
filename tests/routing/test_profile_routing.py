"""Tier profiles on the wire: the provider preferences and service tier that reach the simulator,
the merge with a caller's own `provider`, and the `max_price` ceiling Lyra enforces itself."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from lyra import Lyra, NoModelAvailable
from lyra.simulator import Simulator
from support import engine_env

MSG = [{"role": "user", "content": "Assess the risk of buying 1 BTC."}]
SCHEMA = {"type": "json_schema", "json_schema": {"name": "risk", "strict": True, "schema": {
    "type": "object", "properties": {"verdict": {"type": "string"}}, "required": ["verdict"]}}}
PREMIUM = "budget_share = 0.40\ntimeout_s = 0.5\n"
SHIPPED = 'provider = { zdr = true, data_collection = "deny", max_price = { prompt = 5, completion = 25 } }\n'


def chat_bodies(sim: Simulator) -> list[dict[str, Any]]:
    return sim.received


@pytest.fixture
def engine_for(sim: Simulator, config_path: Callable[..., Path]) -> Callable[..., Any]:
    """An engine on the simulator whose premium tier has `profile` in place of the shipped one."""

    def make(profile: str | None = None) -> Any:
        edits = {PREMIUM + SHIPPED: PREMIUM + profile} if profile is not None else {}
        return Lyra.from_config(config_path(**edits), environ=engine_env(sim))

    return make


@pytest.fixture
async def flex(engine_for: Callable[..., Any]) -> AsyncIterator[Lyra]:
    async with engine_for(SHIPPED + 'service_tier = "flex"\n') as engine:
        yield engine


async def test_a_decision_tier_sends_its_profile_and_service_tier(flex: Lyra, sim: Simulator) -> None:
    c = await flex.complete(task="risk_assessment", messages=MSG, response_format=SCHEMA)
    body = chat_bodies(sim)[-1]
    assert body["model"] == "anthropic/claude-opus-4.8"
    assert body["provider"] == {"zdr": True, "data_collection": "deny", "require_parameters": True,
                                "max_price": {"prompt": 5, "completion": 25}}
    assert body["service_tier"] == "flex"
    assert c.profile is not None
    assert c.profile["tier"] == "premium" and c.profile["model"] == "anthropic/claude-opus-4.8"
    assert c.profile["served_model"] == c.model
    assert c.profile["provider"] == {"zdr": True, "data_collection": "deny", "require_parameters": True,
                                     "max_price": {"prompt": "5", "completion": "25"}}
    assert c.profile["service_tier"] == "flex" and len(c.profile["fingerprint"]) == 12


async def test_require_parameters_goes_with_structured_output_only(lyra: Lyra, sim: Simulator) -> None:
    await lyra.complete(task="risk_assessment", messages=MSG)
    plain = chat_bodies(sim)[-1]
    await lyra.complete(task="risk_assessment", messages=MSG, response_format={"type": "json_object"})
    structured = chat_bodies(sim)[-1]
    assert "require_parameters" not in plain["provider"] and "service_tier" not in plain
    assert structured["provider"]["require_parameters"] is True
    assert plain["provider"]["zdr"] is True and structured["provider"]["zdr"] is True


async def test_a_profile_can_turn_require_parameters_off_or_always_on(engine_for: Callable[..., Any],
                                                                     sim: Simulator) -> None:
    async with engine_for("provider = { require_parameters = false }\n") as engine:
        await engine.complete(task="risk_assessment", messages=MSG, response_format=SCHEMA)
    assert chat_bodies(sim)[-1]["provider"] == {"require_parameters": False}
    async with engine_for("provider = { require_parameters = true }\n") as engine:
        await engine.complete(task="risk_assessment", messages=MSG)
    assert chat_bodies(sim)[-1]["provider"] == {"require_parameters": True}


async def test_a_caller_cannot_loosen_the_privacy_fields_or_the_ceiling(lyra: Lyra, sim: Simulator) -> None:
    mine = {"zdr": False, "data_collection": "allow", "require_parameters": False,
            "max_price": {"prompt": 100, "completion": 12.5}, "sort": "latency", "ignore": ["deepinfra"]}
    c = await lyra.complete(task="risk_assessment", messages=MSG, response_format=SCHEMA, provider=mine)
    bodies = chat_bodies(sim)
    for body in bodies:
        sent = body["provider"]
        assert sent["zdr"] is True and sent["data_collection"] == "deny"
        assert sent["require_parameters"] is True
        assert sent["max_price"] == {"prompt": 5, "completion": 12.5}  # the lower of each part
        assert sent["sort"] == "latency" and sent["ignore"] == ["deepinfra"]  # routing: the caller's
    # The caller's lower completion ceiling is OpenRouter's to apply: opus-4.8 (25) has no endpoint
    # under it (a 404 from the simulator, as from OpenRouter), gpt-4o (10) has.
    assert [b["model"] for b in bodies] == ["anthropic/claude-opus-4.8", "openai/gpt-4o"]
    assert c.model == "openai/gpt-4o" and c.attempts[0].error_kind == "model_unavailable"
    assert c.profile is not None
    assert c.profile["provider"]["max_price"] == {"prompt": "5", "completion": "12.5"}
    assert mine["zdr"] is False  # the caller's own object is left as it was


async def test_a_caller_may_tighten_a_tier_that_pins_nothing(lyra: Lyra, sim: Simulator) -> None:
    mine = {"zdr": True, "order": ["openai"], "allow_fallbacks": False}
    c = await lyra.complete(task="code_generation", messages=MSG, provider=mine)
    body = chat_bodies(sim)[-1]
    assert body["provider"] == mine  # specialized has no profile: the caller's object, as given
    assert "service_tier" not in body
    assert c.profile is not None and c.profile["tier"] == "specialized"


async def test_a_model_over_the_ceiling_is_never_tried(engine_for: Callable[..., Any], sim: Simulator) -> None:
    async with engine_for("provider = { zdr = true, max_price = { prompt = 3, completion = 15 } }\n") as engine:
        c = await engine.complete(task="risk_assessment", messages=MSG)
    assert [b["model"] for b in chat_bodies(sim)] == ["openai/gpt-4o"]  # opus-4.8 (5/25) was not sent
    assert c.model == "openai/gpt-4o"
    skipped = c.attempts[0]
    assert (skipped.model, skipped.outcome, skipped.error_kind) == (
        "anthropic/claude-opus-4.8", "skipped", "over_max_price")
    assert "prompt 5 > 3, completion 25 > 15" in skipped.message
    assert [a.outcome for a in c.attempts] == ["skipped", "ok"]


async def test_no_candidate_under_the_ceiling_is_a_one_line_refusal(engine_for: Callable[..., Any],
                                                                   sim: Simulator) -> None:
    async with engine_for("provider = { max_price = { prompt = 3, completion = 15 } }\n") as engine:
        with pytest.raises(NoModelAvailable) as caught:
            await engine.complete(tier="premium", model="anthropic/claude-opus-4.8", messages=MSG)
    message = str(caught.value)
    assert message.startswith("tier premium: every candidate model costs more than its price ceiling "
                              "max_price = { prompt = 3, completion = 15 }"), message
    assert "anthropic/claude-opus-4.8: prompt 5 > 3" in message and "\n" not in message
    assert chat_bodies(sim) == []  # nothing was sent


async def test_a_panel_member_call_carries_its_tier_profile(lyra: Lyra, sim: Simulator) -> None:
    result = await lyra.consensus(messages=MSG, panel="quick", cascade=False)
    members = {b["model"]: b for b in chat_bodies(sim)}
    assert set(members) == {"google/gemini-2.5-flash-lite", "openai/gpt-4o-mini", "anthropic/claude-3-haiku"}
    for body in members.values():  # a panel asks on its task's tier (signal_generation: advanced)
        assert body["provider"] == {"zdr": True, "data_collection": "deny", "require_parameters": True,
                                    "max_price": {"prompt": 10, "completion": 30}}
    answered = [v for v in result.votes if v.status in ("vote", "abstain")]
    assert answered and all(v.profile is not None and v.profile["tier"] == "advanced" for v in answered)


async def test_the_request_row_in_the_ledger_carries_the_fingerprint(lyra: Lyra) -> None:
    c = await lyra.complete(task="risk_assessment", messages=MSG, response_format=SCHEMA)
    assert lyra.ledger is not None and c.profile is not None
    rows = lyra.ledger.rows(since_ts=0, kind="request")
    assert [r.profile for r in rows] == [c.profile["fingerprint"]]
