"""What a gateway client sees when OpenRouter's budgets refuse: the kind and the reset, no key names."""

from __future__ import annotations

import re
import time

import openai
import pytest
from gateway_support import MESSAGES

from lyra.simulator import Fault, Simulator
from support import KEY_NAMES, TOKENS

A_KEY_NAME = re.compile(r"\b(?:" + "|".join(KEY_NAMES) + r")\b")


def body_of(error: openai.APIStatusError) -> dict[str, object]:
    body = error.body
    assert isinstance(body, dict)
    return body


async def test_an_in_flight_budget_longer_than_the_deadline_is_a_429_with_retry_after(
    desk: openai.AsyncOpenAI, sim: Simulator
) -> None:
    sim.add_fault(Fault(kind="in_flight_budget", retry_after_s=120))  # the deadline is 10 s
    with pytest.raises(openai.RateLimitError) as caught:
        await desk.chat.completions.create(model="tier:fast", messages=MESSAGES, max_tokens=16)
    assert caught.value.response.headers["retry-after"] == "120"
    body = body_of(caught.value)
    assert body["code"] == "upstream_in_flight_budget" and body["type"] == "rate_limit_error"
    assert not A_KEY_NAME.search(str(body["message"]))
    assert sim.stats.calls == 1


async def test_a_workspace_budget_is_a_402_naming_the_reset_not_the_account(
    desk: openai.AsyncOpenAI, sim: Simulator
) -> None:
    sim.add_fault(Fault(kind="workspace_budget", interval="daily"))
    with pytest.raises(openai.APIStatusError) as caught:
        await desk.chat.completions.create(model="tier:fast", messages=MESSAGES, max_tokens=16)
    assert caught.value.status_code == 402
    body = body_of(caught.value)
    message = str(body["message"])
    assert body["code"] == "upstream_workspace_budget" and body["type"] == "insufficient_quota"
    assert "workspace_budget" in message and re.search(r"until \d{4}-\d\d-\d\dT00:00:00Z", message)
    assert "$" not in message and not A_KEY_NAME.search(message)  # neither the amounts nor a key
    assert int(caught.value.response.headers["retry-after"]) >= 1


async def test_every_key_retired_is_a_503_that_names_no_key(desk: openai.AsyncOpenAI, sim: Simulator) -> None:
    for token in TOKENS.values():
        sim.add_fault(Fault(kind="key_limit", key=token))
    before = time.time()
    with pytest.raises(openai.InternalServerError) as caught:
        await desk.chat.completions.create(model="tier:fast", messages=MESSAGES, max_tokens=16)
    after = time.time()
    assert caught.value.status_code == 503
    # A key limit with no period named is the UTC day's: the keys come back at midnight, and the
    # answer says when (the seconds from whenever the gateway answered, between before and after).
    midnight = (int(before) // 86_400 + 1) * 86_400
    assert midnight - after - 1 <= int(caught.value.response.headers["retry-after"]) <= midnight - before + 1
    body = body_of(caught.value)
    message = str(body["message"])
    assert body["code"] == "no_model_available"
    assert "key_limit" in message and "a shared key" in message
    assert not A_KEY_NAME.search(message), message
    for token in TOKENS.values():
        assert token not in message
