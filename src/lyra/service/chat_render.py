"""Completions in OpenAI's shapes: a chat.completion, and chat.completion.chunk events for SSE."""

from __future__ import annotations

import time
from typing import Any

import orjson

from lyra.ids import new_id
from lyra.money import usd_json
from lyra.types import Completion

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
    }


def chat_completion(completion: Completion) -> bytes:
    """The body of a non-streamed answer."""
    return orjson.dumps({
        "id": completion_id(completion),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": completion.model,
        "provider": completion.provider,
        "system_fingerprint": None,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": completion.text, "refusal": None},
            "finish_reason": completion.finish_reason or "stop",
            "logprobs": None,
        }],
        "usage": usage(completion),
    })


class ChunkWriter:
    """Frames one streamed answer as SSE events of chat.completion.chunk objects."""

    def __init__(self, model: str) -> None:
        self.id = completion_id()
        self.model = model
        self.created = int(time.time())
        self._first = True

    def _event(self, payload: dict[str, Any]) -> bytes:
        return b"data: " + orjson.dumps(payload) + b"\n\n"

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> bytes:
        return self._event({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                            "model": self.model, "choices": choices, **extra})

    def text(self, piece: str) -> bytes:
        """A content delta; the first one also carries the assistant role."""
        delta: dict[str, Any] = {"content": piece}
        if self._first:
            delta = {"role": "assistant", "content": piece}
            self._first = False
        return self._chunk([{"index": 0, "delta": delta, "finish_reason": None}])

    def end(self, completion: Completion) -> bytes:
        """The finishing chunk, then a usage chunk (as OpenRouter always sends), then [DONE]."""
        self.model = completion.model
        head = b"" if not self._first else self.text("")
        finish = self._chunk([{"index": 0, "delta": {}, "finish_reason": completion.finish_reason or "stop"}],
                             provider=completion.provider)
        tail = self._chunk([], provider=completion.provider, usage=usage(completion))
        return head + finish + tail + DONE

    def error(self, body: dict[str, object]) -> bytes:
        """An error after the stream began: the status is already sent, so it travels as an event."""
        return self._event(body)
