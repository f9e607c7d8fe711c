"""Property: whatever body a client sends to POST /v1/responses, the gateway never answers 5xx, and
every refusal is OpenAI's error shape. The same mutations as the other routes' fuzz (every value
replaced by each kind of junk, every field deleted, a field added everywhere, then hypothesis)."""

from __future__ import annotations

import json
from typing import Any

from gateway_support import MESSAGES
from hypothesis import given
from hypothesis import strategies as st
from test_service_fuzz import (
    SETTINGS,
    assert_never_5xx_and_error_shaped,
    mutated,
    port,
    post,
    table_mutations,
)

__all__ = ["port"]  # the fuzz module's gateway fixture, one for this module

RESPONSES: dict[str, Any] = {
    "model": "tier:fast", "instructions": "Answer briefly.",
    "input": [
        *MESSAGES,
        {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
         "content": [{"type": "output_text", "text": "ok", "annotations": []}]},
        {"role": "user", "content": [{"type": "input_text", "text": "And ETH?"}]},
    ],
    "max_output_tokens": 16, "temperature": 0.2, "top_p": 0.9, "seed": 7, "stream": False, "store": False,
    "user": "u1", "metadata": {"desk": "crypto"},
    "text": {"format": {"type": "json_schema", "name": "s", "schema": {"type": "object"}, "strict": False}},
    "provider": {"order": ["openai"], "allow_fallbacks": True},
}


def test_the_unmutated_body_is_served(port: int) -> None:
    status, answer = post(port, "/v1/responses", json.dumps(RESPONSES).encode())
    assert status == 200, answer[:500]
    assert json.loads(answer)["object"] == "response"


def test_no_single_mutation_of_a_valid_body_is_a_5xx(port: int) -> None:
    failures = []
    for described, raw in table_mutations(RESPONSES):
        try:
            assert_never_5xx_and_error_shaped(*post(port, "/v1/responses", raw), raw)
        except AssertionError as exc:
            failures.append(f"{described}: {str(exc)[:300]}")
    assert not failures, "\n".join(failures)


@SETTINGS
@given(data=st.data())
def test_a_mutated_responses_body_is_never_a_5xx(port: int, data: st.DataObject) -> None:
    raw = mutated(RESPONSES, data)
    assert_never_5xx_and_error_shaped(*post(port, "/v1/responses", raw), raw)
