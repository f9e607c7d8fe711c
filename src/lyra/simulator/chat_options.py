"""The optional fields of a chat request the simulator honours: tools, n, logprobs, reasoning, tier.

Malformed values get OpenRouter's 400; fields it does not know are ignored, as OpenRouter does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from lyra.simulator import error_bodies as errors
from lyra.simulator.error_bodies import SimError
from lyra.simulator.tokens import count_text

MAX_N = 128  # OpenAI's bound on n
MAX_TOP_LOGPROBS = 20
_EFFORTS = frozenset({"max", "xhigh", "high", "medium", "low", "minimal", "none"})


@dataclass(frozen=True, slots=True)
class Reasoning:
    """What the request asked of reasoning: whether to think, a token budget, whether to show it."""

    effort: str
    max_tokens: int | None
    exclude: bool


@dataclass(frozen=True, slots=True)
class ChatOptions:
    tools: tuple[dict[str, Any], ...] = ()
    tool_choice: str | dict[str, Any] = "auto"
    parallel_tool_calls: bool = True
    n: int = 1
    logprobs: bool = False
    top_logprobs: int = 0
    reasoning: Reasoning | None = None
    service_tier: str | None = None
    extra_prompt_tokens: int = 0  # tool definitions and earlier tool calls, which reach the prompt


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def parse_options(payload: dict[str, Any]) -> ChatOptions | SimError:
    tools = payload.get("tools")
    if tools is None:
        tools = []
    if not isinstance(tools, list) or not all(_is_tool(t) for t in tools):
        return errors.bad_request('"tools" must be an array of {"type": "function", "function": {"name"}}')
    names = tuple(t["function"]["name"] for t in tools)
    choice = payload.get("tool_choice", "auto")
    if choice is None:
        choice = "auto"
    if isinstance(choice, str):
        if choice not in ("auto", "none", "required"):
            return errors.bad_request('"tool_choice" must be "auto", "none", "required" or a function')
    elif isinstance(choice, dict):
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        if choice.get("type") != "function" or name not in names:
            return errors.bad_request('"tool_choice" names a function that is not among "tools"')
    else:
        return errors.bad_request('"tool_choice" must be a string or an object')
    if choice == "required" and not tools:
        return errors.bad_request('"tool_choice" is "required" but no "tools" were given')
    parallel = payload.get("parallel_tool_calls", True)
    n = payload.get("n", 1)
    if n is None:
        n = 1
    if not _is_int(n) or not 1 <= n <= MAX_N:
        return errors.bad_request(f'"n" must be an integer from 1 to {MAX_N}')
    logprobs = payload.get("logprobs") is True
    top = payload.get("top_logprobs") or 0
    if not _is_int(top) or not 0 <= top <= MAX_TOP_LOGPROBS:
        return errors.bad_request(f'"top_logprobs" must be an integer from 0 to {MAX_TOP_LOGPROBS}')
    reasoning = _reasoning(payload)
    if isinstance(reasoning, SimError):
        return reasoning
    tier = payload.get("service_tier")
    return ChatOptions(
        tools=tuple(tools), tool_choice=choice, parallel_tool_calls=parallel is not False, n=n,
        logprobs=logprobs, top_logprobs=top if logprobs else 0, reasoning=reasoning,
        service_tier=tier if isinstance(tier, str) else None,
        extra_prompt_tokens=_structure_tokens(payload),
    )


def _is_tool(tool: Any) -> bool:
    if not isinstance(tool, dict) or tool.get("type", "function") != "function":
        return False
    function = tool.get("function")
    return isinstance(function, dict) and isinstance(function.get("name"), str) and bool(function["name"])


def _reasoning(payload: dict[str, Any]) -> Reasoning | SimError | None:
    raw = payload.get("reasoning")
    if raw is None and isinstance(payload.get("reasoning_effort"), str):
        raw = {"effort": payload["reasoning_effort"]}
    if raw is None and payload.get("include_reasoning") is True:
        raw = {"enabled": True}
    if raw is None:
        return None
    if not isinstance(raw, dict):
        return errors.bad_request('"reasoning" must be an object')
    if raw.get("enabled") is False:
        return None
    effort = raw.get("effort", "medium")
    if effort not in _EFFORTS:
        return errors.bad_request(f'"reasoning.effort" must be one of {", ".join(sorted(_EFFORTS))}')
    budget = raw.get("max_tokens")
    if budget is not None and (not _is_int(budget) or budget < 0):
        return errors.bad_request('"reasoning.max_tokens" must be a non-negative integer')
    if effort == "none" and budget is None:
        return None
    return Reasoning(effort=effort, max_tokens=budget, exclude=raw.get("exclude") is True)


def _structure_tokens(payload: dict[str, Any]) -> int:
    """Prompt tokens of tool definitions and of the tool calls earlier messages carry."""
    parts: list[Any] = []
    if payload.get("tools"):
        parts.append(payload["tools"])
    for message in payload.get("messages") or []:
        if isinstance(message, dict) and message.get("tool_calls"):
            parts.append(message["tool_calls"])
    try:
        return sum(count_text(orjson.dumps(part).decode()) for part in parts)
    except TypeError:
        return 0
