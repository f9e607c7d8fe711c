"""The request body an upstream that is not OpenRouter gets: OpenAI chat-completions fields only."""

from __future__ import annotations

from typing import Any

import orjson

from lyra.types import CompletionRequest

# What OpenAI's chat completions take and OpenAI-compatible servers (vLLM, Ollama, llama.cpp,
# Together, Fireworks) accept. OpenRouter's own fields (provider, models, usage.include,
# transforms, reasoning, session_id, its service tiers) are never sent: a strict server refuses
# unknown fields, and provider preferences mean nothing there.
_PASSED = ("response_format", "seed", "user", "tools", "tool_choice", "parallel_tool_calls", "logprobs",
           "top_logprobs")


def openai_body(request: CompletionRequest, *, model: str, max_tokens: int, temperature: float | None,
                stream: bool) -> bytes:
    """The JSON body for `model` (the id as the upstream names it, without the `NAME:` prefix)."""
    body: dict[str, Any] = {"model": model, "messages": request.messages, "max_tokens": max_tokens}
    if temperature is not None:
        body["temperature"] = temperature
    for name in _PASSED:
        value = getattr(request, name)
        if value is not None:
            body[name] = value
    if request.n != 1:
        body["n"] = request.n
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}  # the usage the cost is computed from
    return orjson.dumps(body)
