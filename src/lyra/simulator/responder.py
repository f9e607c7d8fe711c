"""What a simulated model answers: schema-shaped JSON, trading decisions, or a short sentence."""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Mapping
from typing import Any

import orjson

from lyra.catalog.models import ModelInfo
from lyra.simulator import schema as js
from lyra.simulator.decision import ACTION_ALIASES, Decision, decide, find_market_view
from lyra.simulator.desk import desk_overlay, schema_name
from lyra.simulator.portfolio_answer import portfolio_answer
from lyra.simulator.profiles import profile_for
from lyra.simulator.tokens import message_text

_PREAMBLES = (
    "Here is my assessment.",
    "Based on the indicators provided, my decision is:",
    "Decision:",
    "After weighing momentum, trend and mean reversion:",
)
_SENTENCES = (
    "{model} (simulated) read the request about {topic}; this is a canned reply, not an assessment.",
    "Simulated reply from {model}: on {topic}, the short answer is to keep things as they are.",
    "{model} here, answering as a simulator: {topic} looks routine; no live data was consulted.",
)
# Schema property names, lower case, that receive each field of a decision.
_DECISION_FIELDS: dict[str, str] = {
    "action": "action", "signal": "action", "decision": "action", "direction": "action",
    "recommendation": "action", "side": "action",
    "confidence": "confidence", "conviction": "confidence", "probability": "confidence",
    "rationale": "rationale", "reasoning": "rationale", "reason": "rationale",
    "explanation": "rationale", "justification": "rationale", "summary": "rationale",
    "horizon": "horizon", "timeframe": "horizon", "time_horizon": "horizon",
    "stop_loss": "stop_loss", "stop": "stop_loss", "stop_price": "stop_loss",
    "take_profit": "take_profit", "target": "take_profit", "target_price": "take_profit",
}
_TEXT_FIELDS = frozenset({"answer", "text", "content", "summary", "explanation", "message"})


def request_rng(seed: int, model_id: str, payload: Mapping[str, Any]) -> random.Random:
    """An RNG fixed by the simulator seed, the model and what the request asks."""
    try:
        key = orjson.dumps(
            [seed, model_id, payload.get("messages"), payload.get("response_format"),
             payload.get("seed")],
            option=orjson.OPT_SORT_KEYS,
        )
    except TypeError:
        key = repr((seed, model_id, payload.get("messages"))).encode()
    return random.Random(int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big"))


def respond(model: ModelInfo, payload: Mapping[str, Any], seed: int) -> str:
    """The full text a model would answer to a chat request, deterministically."""
    profile = profile_for(model)
    rng = request_rng(seed, model.id, payload)
    messages = payload.get("messages") or []
    view = find_market_view(messages)
    decision = decide(view, profile, rng) if view is not None else None
    response_format = payload.get("response_format")
    if isinstance(response_format, Mapping):
        kind = response_format.get("type")
        if kind == "json_schema":
            weights = portfolio_answer(response_format, messages, profile, rng)
            if weights is not None:
                return weights
            schema = _schema_of(response_format)
            sentence = _sentence(model.id, messages, rng)
            value = _schema_value(schema, decision, sentence, rng)
            value = desk_overlay(schema_name(response_format), value, messages)
            return orjson.dumps(_risk_overlay(value, messages, decision)).decode()
        if kind == "json_object":
            if decision is not None:
                return orjson.dumps(decision.as_dict()).decode()
            answer = {"model": model.id, "answer": _sentence(model.id, messages, rng)}
            return orjson.dumps(answer).decode()
    if decision is not None:
        return _wrap(decision, profile.fence_rate, profile.preamble_rate, rng)
    return _sentence(model.id, messages, rng)


_PROPOSED_TRADE = re.compile(r"\b(BUY|SELL)\s+\$([0-9][0-9,]*(?:\.[0-9]+)?)")


def _risk_overlay(value: Any, messages: list[Any], decision: Decision | None) -> Any:
    """A risk verdict on a proposed trade ("BUY $15,000"), judged against the model's own view.

    Agreeing with the trade approves it at full size, a neutral view halves it, an opposite view
    rejects it: a plausible risk desk, rather than a random number under the schema's minimum.
    """
    if not isinstance(value, dict) or "verdict" not in value or decision is None:
        return value
    text = " ".join(str(m.get("content", "")) for m in messages if isinstance(m, Mapping))
    found = _PROPOSED_TRADE.search(text)
    if found is None:
        return value
    side, notional = found.group(1), float(found.group(2).replace(",", ""))
    if decision.action == side:
        verdict, cap = "approve", notional
    elif decision.action == "HOLD":
        verdict, cap = "reduce", round(notional / 2, 2)
    else:
        verdict, cap = "reject", 0.0
    value["verdict"] = verdict
    for name in ("max_notional_usd", "max_notional"):
        if name in value:
            value[name] = cap
    return value


def _schema_of(response_format: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = response_format.get("json_schema")
    found = spec.get("schema") if isinstance(spec, Mapping) else response_format.get("schema")
    return found if isinstance(found, Mapping) else {"type": "object"}


def _schema_value(
    schema: Mapping[str, Any], decision: Decision | None, sentence: str, rng: random.Random
) -> Any:
    value = js.generate(schema, schema, rng)
    return _overlay(value, schema, schema, decision, sentence)


def _overlay(
    value: Any,
    schema: Any,
    root: Mapping[str, Any],
    decision: Decision | None,
    sentence: str,
) -> Any:
    """Put the decision (or the sentence) into the properties whose names ask for it."""
    if not isinstance(value, dict):
        return value
    properties = js.resolve(schema, root).get("properties") or {}
    for name, sub in properties.items():
        if name not in value:
            continue
        wanted = _wanted(name.lower(), js.resolve(sub, root), root, decision, sentence)
        if wanted is not js.MISSING:
            value[name] = wanted
        elif isinstance(value[name], dict):
            value[name] = _overlay(value[name], sub, root, decision, sentence)
    return value


def _wanted(
    name: str,
    sub: dict[str, Any],
    root: Mapping[str, Any],
    decision: Decision | None,
    sentence: str,
) -> Any:
    if decision is None:
        if name in _TEXT_FIELDS and "string" in js.types_of(sub) and "enum" not in sub:
            return js.fit(sentence, sub, root)
        return js.MISSING
    field = _DECISION_FIELDS.get(name)
    if field is None:
        return js.MISSING
    if field == "action":
        return js.fit(decision.action, sub, root, aliases=ACTION_ALIASES[decision.action])
    if field == "confidence":
        _, high = js.numeric_bounds(sub)
        scale = high if high is not None and high > 1.0 else 1.0  # e.g. a 0..100 schema
        return js.fit(round(decision.confidence * scale, 4), sub, root)
    return js.fit(getattr(decision, field), sub, root)


def _wrap(decision: Decision, fence_rate: float, preamble_rate: float, rng: random.Random) -> str:
    """The decision as a model writes it in plain text: bare, fenced, or after a sentence."""
    fenced = rng.random() < fence_rate
    preamble = rng.random() < preamble_rate
    if fenced:
        body = "```json\n" + orjson.dumps(decision.as_dict(), option=orjson.OPT_INDENT_2).decode()
        body += "\n```"
    else:
        body = orjson.dumps(decision.as_dict()).decode()
    if preamble:
        return _PREAMBLES[rng.randrange(len(_PREAMBLES))] + ("\n\n" if fenced else " ") + body
    return body


def _sentence(model_id: str, messages: list[Any], rng: random.Random) -> str:
    last = next(
        (
            message_text(m.get("content"))
            for m in reversed(messages)
            if isinstance(m, dict) and m.get("role") == "user"
        ),
        "",
    )
    words = last.split()[:8]
    topic = '"' + " ".join(words) + ('..."' if len(last.split()) > 8 else '"') if words else "it"
    return _SENTENCES[rng.randrange(len(_SENTENCES))].format(model=model_id, topic=topic)
