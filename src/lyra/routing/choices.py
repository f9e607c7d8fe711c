"""Streamed choices put back together: text, reasoning, tool calls and log-probabilities per index."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lyra.types import Choice, ChoiceDelta

# Fields of a streamed reasoning_details entry that arrive in pieces and are joined.
_JOINED = ("text", "summary", "data")


@dataclass(slots=True)
class _Partial:
    text: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    details: list[dict[str, Any]] = field(default_factory=list)
    logprobs: list[dict[str, Any]] = field(default_factory=list)
    calls: dict[int, dict[str, Any]] = field(default_factory=dict)
    finish_reason: str | None = None


class ChoiceBuilder:
    """Adds up one stream's deltas into the choices a non-streamed answer would have held."""

    def __init__(self) -> None:
        self._parts: dict[int, _Partial] = {}

    def add(self, delta: ChoiceDelta) -> None:
        part = self._parts.setdefault(delta.index, _Partial())
        if delta.text:
            part.text.append(delta.text)
        if delta.reasoning:
            part.reasoning.append(delta.reasoning)
        for detail in delta.reasoning_details:
            _add_detail(part.details, detail)
        part.logprobs.extend(delta.logprobs)
        for position, call in enumerate(delta.tool_calls):
            _add_call(part.calls, call, position)
        if delta.finish_reason:
            part.finish_reason = delta.finish_reason

    def choices(self) -> list[Choice]:
        """Every choice seen, in index order; one empty choice when the stream carried none."""
        if not self._parts:
            return [Choice()]
        built = []
        for index in sorted(self._parts):
            part = self._parts[index]
            calls = [part.calls[i] for i in sorted(part.calls)]
            finish = part.finish_reason
            if calls and finish in (None, "stop"):
                finish = "tool_calls"  # tool calls are trusted over a "stop" (reference section 8)
            built.append(Choice(
                index=index, text="".join(part.text), finish_reason=finish, tool_calls=calls,
                logprobs=part.logprobs or None, reasoning="".join(part.reasoning) or None,
                reasoning_details=part.details or None))
        return built


def _add_call(calls: dict[int, dict[str, Any]], delta: dict[str, Any], position: int) -> None:
    """Merge one tool-call fragment: the first names the call, later ones extend its arguments."""
    index = delta.get("index")
    key = index if isinstance(index, int) and not isinstance(index, bool) else position
    call = calls.setdefault(key, {"id": "", "type": "function", "function": {"name": "", "arguments": ""}})
    if isinstance(delta.get("id"), str) and delta["id"]:
        call["id"] = delta["id"]
    if isinstance(delta.get("type"), str):
        call["type"] = delta["type"]
    function = delta.get("function")
    if isinstance(function, dict):
        if isinstance(function.get("name"), str) and function["name"]:
            call["function"]["name"] = function["name"]
        if isinstance(function.get("arguments"), str):
            call["function"]["arguments"] += function["arguments"]


def _add_detail(details: list[dict[str, Any]], detail: dict[str, Any]) -> None:
    """A reasoning_details piece: joined to the previous entry of the same type and index, else new."""
    last = details[-1] if details else None
    if last is not None and all(last.get(name) == detail.get(name) for name in ("type", "index")):
        for name, value in detail.items():
            if name in _JOINED and isinstance(value, str) and isinstance(last.get(name), str):
                last[name] += value
            elif value is not None:
                last[name] = value
        return
    details.append(dict(detail))
