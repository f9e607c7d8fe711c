"""Decision parsing: strict, with repair of the common wrappings only."""

from __future__ import annotations

import pytest

from lyra.consensus.decision import Abstention, Decision, parse_decision

GOOD = '{"action": "BUY", "confidence": 0.8, "rationale": "MACD up", "horizon": "4h", "stop_loss": 95.5, "take_profit": null}'


@pytest.mark.parametrize("text", [
    GOOD,
    f"```json\n{GOOD}\n```",
    f"Here is my decision:\n```\n{GOOD}\n```\nGood luck.",
    f"Sure. {GOOD}",
    GOOD.replace('"BUY"', '"buy"'),
])
def test_valid_and_repairable_answers_parse(text: str) -> None:
    parsed = parse_decision(text)
    assert isinstance(parsed, Decision)
    assert (parsed.action, parsed.confidence, parsed.stop_loss, parsed.take_profit) == ("BUY", 0.8, 95.5, None)


@pytest.mark.parametrize(("text", "reason"), [
    ("I would buy here.", "no JSON object"),
    ("[1, 2]", "not an object"),
    (GOOD.replace('"BUY"', '"ACCUMULATE"'), "action 'ACCUMULATE'"),
    (GOOD.replace("0.8", "80"), "outside 0..1"),
    (GOOD.replace("0.8", '"high"'), "not a number"),
    (GOOD.replace('"MACD up"', '""'), "rationale is missing"),
    ('{"action": "SELL", "confidence": 0.9', "no JSON object"),
])
def test_invalid_answers_are_abstentions_with_reasons(text: str, reason: str) -> None:
    parsed = parse_decision(text)
    assert isinstance(parsed, Abstention)
    assert reason in parsed.reason


def test_rationale_is_bounded() -> None:
    parsed = parse_decision(GOOD.replace("MACD up", "x" * 5000))
    assert isinstance(parsed, Decision) and len(parsed.rationale) == 500
