"""Chat answers in the Responses API's shapes: output items, usage, and the Response object itself.

Pure functions over the JSON the chat route answers with (a chat.completion, or the parts of one a
stream carries), so /v1/responses says exactly what /v1/chat/completions says, in the other shape.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from lyra.ids import new_id

# Finish reasons that leave a response incomplete, and the reason the Responses API gives.
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


@dataclass(frozen=True, slots=True)
class Shell:
    """What a response is before its answer: its id, when it began, and the request settings it echoes."""

    echo: Mapping[str, Any]
    id: str = field(default_factory=lambda: f"resp_{new_id()}")
    created_at: int = field(default_factory=lambda: int(time.time()))


def item_id(prefix: str) -> str:
    """A fresh output item id: msg_, rs_ or fc_ followed by a unique suffix."""
    return f"{prefix}_{new_id()}"


def status_of(finish_reason: object) -> tuple[str, dict[str, Any] | None]:
    """A response's status and incomplete_details for the answer's finish reason."""
    reason = _INCOMPLETE.get(finish_reason) if isinstance(finish_reason, str) else None
    return ("incomplete", {"reason": reason}) if reason else ("completed", None)


def usage_of(usage: object) -> dict[str, Any] | None:
    """Chat usage as Responses usage (input/output tokens and their details), keeping OpenRouter's cost."""
    if not isinstance(usage, Mapping):
        return None
    prompt, completion = _int(usage.get("prompt_tokens")), _int(usage.get("completion_tokens"))
    prompt_details = _mapping(usage.get("prompt_tokens_details"))
    completion_details = _mapping(usage.get("completion_tokens_details"))
    out: dict[str, Any] = {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": _int(prompt_details.get("cached_tokens")),
                                 "cache_write_tokens": _int(prompt_details.get("cache_write_tokens"))},
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": _int(completion_details.get("reasoning_tokens"))},
        "total_tokens": _int(usage.get("total_tokens")) or prompt + completion,
    }
    if "cost" in usage:
        out["cost"] = usage["cost"]
    return out


def logprobs_of(choice: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A chat choice's token logprobs in output_text's shape (the same fields, never null)."""
    logprobs = _mapping(choice.get("logprobs"))
    tokens = logprobs.get("content")
    if not isinstance(tokens, list):
        return []
    return [{**_token(token), "top_logprobs": [_token(top) for top in token.get("top_logprobs") or []
                                               if isinstance(top, Mapping)]}
            for token in tokens if isinstance(token, Mapping)]


def _token(token: Mapping[str, Any]) -> dict[str, Any]:
    return {"token": str(token.get("token") or ""), "logprob": token.get("logprob") or 0.0,
            "bytes": list(token.get("bytes") or [])}


def message_item(id: str, text: str, *, status: str, logprobs: list[dict[str, Any]] | None = None,
                 refusal: str | None = None) -> dict[str, Any]:
    """An assistant message with one output_text part (and a refusal part when the model refused)."""
    content: list[dict[str, Any]] = [{"type": "output_text", "text": text, "annotations": [],
                                      "logprobs": logprobs or []}]
    if refusal:
        content.append({"type": "refusal", "refusal": refusal})
    return {"type": "message", "id": id, "status": status, "role": "assistant", "content": content}


def reasoning_item(id: str, text: str, details: list[Any] | None = None) -> dict[str, Any]:
    """The model's reasoning text; OpenRouter's reasoning_details travel as `encrypted_content`, which a
    client passes back unchanged in its next `input` (as OpenRouter asks of reasoning details)."""
    item: dict[str, Any] = {"type": "reasoning", "id": id, "summary": [],
                            "content": [{"type": "reasoning_text", "text": text}] if text else []}
    if details:
        item["encrypted_content"] = orjson.dumps(details).decode()
    return item


def function_call_item(id: str, call_id: str, name: str, arguments: str, *, status: str) -> dict[str, Any]:
    return {"type": "function_call", "id": id, "call_id": call_id, "name": name, "arguments": arguments,
            "status": status}


def output_of(message: Mapping[str, Any], choice: Mapping[str, Any], *, status: str) -> list[dict[str, Any]]:
    """A chat message as output items: reasoning first, then the text, then one item per tool call."""
    items: list[dict[str, Any]] = []
    reasoning = message.get("reasoning")
    details = message.get("reasoning_details")
    text_of_reasoning = reasoning if isinstance(reasoning, str) else ""
    details_list = details if isinstance(details, list) else None
    if text_of_reasoning or details_list:
        items.append(reasoning_item(item_id("rs"), text_of_reasoning, details_list))
    content = message.get("content")
    text = content if isinstance(content, str) else ""
    refusal = message.get("refusal") if isinstance(message.get("refusal"), str) else None
    calls = [call for call in message.get("tool_calls") or [] if isinstance(call, Mapping)]
    if text or refusal or not calls:
        items.append(message_item(item_id("msg"), text, status=status, logprobs=logprobs_of(choice),
                                  refusal=refusal))
    for call in calls:
        function = _mapping(call.get("function"))
        items.append(function_call_item(item_id("fc"), str(call.get("id") or item_id("call")),
                                        str(function.get("name") or ""), str(function.get("arguments") or ""),
                                        status=status))
    return items


def response_object(shell: Shell, *, model: str, status: str, output: list[dict[str, Any]],
                    usage: dict[str, Any] | None, incomplete: dict[str, Any] | None = None,
                    error: dict[str, Any] | None = None, provider: object = None) -> dict[str, Any]:
    """A Response object: its settings as the request gave them, and the answer so far."""
    body: dict[str, Any] = {
        "id": shell.id,
        "object": "response",
        "created_at": shell.created_at,
        "status": status,
        "error": error,
        "incomplete_details": incomplete,
        **shell.echo,
        "model": model,
        "output": output,
        "usage": usage,
    }
    if provider is not None:
        body["provider"] = provider  # OpenRouter's extra, as on chat answers
    return body


def from_chat_completion(chat: Mapping[str, Any], shell: Shell) -> dict[str, Any]:
    """The Response object for a chat.completion answered by the chat route."""
    choices = chat.get("choices")
    choice = _mapping(choices[0]) if isinstance(choices, list) and choices else {}
    status, incomplete = status_of(choice.get("finish_reason"))
    output = output_of(_mapping(choice.get("message")), choice, status=status)
    model = str(chat.get("model") or shell.echo.get("model") or "")
    return response_object(shell, model=model, status=status, output=output,
                           usage=usage_of(chat.get("usage")), incomplete=incomplete,
                           provider=chat.get("provider"))


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _int(value: object) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0
