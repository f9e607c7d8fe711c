"""Completions in OpenAI's shapes: a chat.completion, and chat.completion.chunk events for SSE."""

from __future__ import annotations

import time
from typing import Any

import orjson

from lyra.ids import new_id
from lyra.money import usd_json
from lyra.types import Choice, ChoiceDelta, Completion

DONE = b"data: [DONE]\n\n"


def completion_id(completion: Completion | None = None) -> str:
    """OpenRouter's generation id when there is one, else a fresh chatcmpl- id."""
    if completion is not None and completion.generation_id:
        return completion.generation_id
    return f"chatcmpl-{new_id()}"


def usage(completion: Completion) -> dict[str, Any]:
    """OpenAI's usage object plus OpenRouter's `cost` in USD."""
    return {
        "prompt_tokens": completion.prompt_tokens,
        "completion_tokens": completion.completion_tokens,
        "total_tokens": completion.prompt_tokens + completion.completion_tokens,
        "cost": usd_json(completion.cost_nanos),
        "completion_tokens_details": {"reasoning_tokens": completion.reasoning_tokens},
    }


def choices_of(completion: Completion) -> list[Choice]:
    """Every choice of an answer; one built from its own fields when it has no list (an older cache entry)."""
    return completion.choices or [Choice(
        text=completion.text, finish_reason=completion.finish_reason, tool_calls=completion.tool_calls,
        logprobs=completion.logprobs, reasoning=completion.reasoning,
        reasoning_details=completion.reasoning_details)]


def _message(choice: Choice) -> dict[str, Any]:
    """An assistant message in OpenAI's shape: content null beside tool calls with no text."""
    message: dict[str, Any] = {"role": "assistant",
                               "content": None if choice.tool_calls and not choice.text else choice.text,
                               "refusal": None}
    if choice.tool_calls:
        message["tool_calls"] = choice.tool_calls
    if choice.reasoning is not None:
        message["reasoning"] = choice.reasoning
    if choice.reasoning_details is not None:
        message["reasoning_details"] = choice.reasoning_details
    return message


def _logprobs(entries: list[dict[str, Any]] | None) -> dict[str, Any] | None:
    return None if entries is None else {"content": entries, "refusal": None}


def _finish(choice: Choice) -> str:
    return choice.finish_reason or ("tool_calls" if choice.tool_calls else "stop")


def chat_completion(completion: Completion) -> bytes:
    """The body of a non-streamed answer."""
    body: dict[str, Any] = {
        "id": completion_id(completion),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": completion.model,
        "provider": completion.provider,
        "system_fingerprint": None,
        "choices": [{"index": c.index, "message": _message(c), "finish_reason": _finish(c),
                     "logprobs": _logprobs(c.logprobs)} for c in choices_of(completion)],
        "usage": usage(completion),
    }
    if completion.service_tier is not None:
        body["service_tier"] = completion.service_tier
    return orjson.dumps(body)


class ChunkWriter:
    """Frames one streamed answer as SSE events of chat.completion.chunk objects."""

    def __init__(self, model: str) -> None:
        self.id = completion_id()
        self.model = model
        self.created = int(time.time())
        self._started: set[int] = set()  # choices whose first delta (with the role) went out

    def _event(self, payload: dict[str, Any]) -> bytes:
        return b"data: " + orjson.dumps(payload) + b"\n\n"

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> bytes:
        return self._event({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                            "model": self.model, "choices": choices, **extra})

    def text(self, piece: str) -> bytes:
        """A content delta of the first choice; the first one also carries the assistant role."""
        return self.delta(ChoiceDelta(text=piece))

    def delta(self, piece: ChoiceDelta) -> bytes:
        """One choice's delta: content, reasoning, tool-call fragments (as OpenAI frames them), logprobs.

        A choice's first delta also carries the assistant role. Finish reasons wait for `end`, which
        has the served answer's (tool calls trusted over a "stop").
        """
        delta: dict[str, Any] = {}
        if piece.index not in self._started:
            self._started.add(piece.index)
            delta["role"] = "assistant"
        if piece.text or not (piece.tool_calls or piece.reasoning or piece.reasoning_details):
            delta["content"] = piece.text
        if piece.reasoning:
            delta["reasoning"] = piece.reasoning
        if piece.reasoning_details:
            delta["reasoning_details"] = list(piece.reasoning_details)
        if piece.tool_calls:
            delta["tool_calls"] = [_tool_call_delta(c, n) for n, c in enumerate(piece.tool_calls)]
        choice: dict[str, Any] = {"index": piece.index, "delta": delta, "finish_reason": None}
        if piece.logprobs:
            choice["logprobs"] = _logprobs(list(piece.logprobs))
        return self._chunk([choice])

    def end(self, completion: Completion) -> bytes:
        """Each choice's finishing chunk, then a usage chunk (as OpenRouter always sends), then [DONE]."""
        self.model = completion.model
        choices = choices_of(completion)
        head = b"".join(self.text("") if c.index == 0 else self.delta(ChoiceDelta(index=c.index))
                        for c in choices if c.index not in self._started)
        extra: dict[str, Any] = {"provider": completion.provider}
        if completion.service_tier is not None:
            extra["service_tier"] = completion.service_tier
        finish = self._chunk([{"index": c.index, "delta": {}, "finish_reason": _finish(c)} for c in choices],
                             **extra)
        tail = self._chunk([], usage=usage(completion), **extra)
        return head + finish + tail + DONE

    def error(self, body: dict[str, object]) -> bytes:
        """An error after the stream began: the status is already sent, so it travels as an event."""
        return self._event(body)


def _tool_call_delta(fragment: dict[str, Any], position: int) -> dict[str, Any]:
    """A tool-call fragment as OpenAI streams it: its index always (its place in the chunk when the
    upstream left it out), id, type and name on the first."""
    index = fragment.get("index")
    known = isinstance(index, int) and not isinstance(index, bool)
    out: dict[str, Any] = {"index": index if known else position}
    for name in ("id", "type"):
        if fragment.get(name):
            out[name] = fragment[name]
    function = fragment.get("function")
    if isinstance(function, dict):
        out["function"] = {k: v for k, v in function.items() if k in ("name", "arguments") and v is not None}
    return out
