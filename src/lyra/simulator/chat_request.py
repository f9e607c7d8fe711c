"""The chat request as the simulator reads it: checked shape, candidate models, token count."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lyra.catalog.models import ModelInfo
from lyra.simulator import error_bodies as errors
from lyra.simulator.chat_options import ChatOptions, parse_options
from lyra.simulator.error_bodies import SimError
from lyra.simulator.tokens import count_messages


@dataclass(slots=True)
class ChatRequest:
    """The parts of a chat request the simulator acts on."""

    payload: dict[str, Any]
    candidates: list[str]
    stream: bool
    max_tokens: int | None
    prompt_tokens: int
    user: str | None
    options: ChatOptions = field(default_factory=ChatOptions)


def parse_chat(payload: Any, default_model: ModelInfo | None) -> ChatRequest | SimError:
    """Check the request's shape; unknown fields are ignored, as OpenRouter does."""
    if not isinstance(payload, dict):
        return errors.bad_request("Request body must be a JSON object")
    messages = payload.get("messages")
    if messages is None and isinstance(payload.get("prompt"), str):
        messages = [{"role": "user", "content": payload["prompt"]}]
        payload = {**payload, "messages": messages}
    if not isinstance(messages, list) or not messages:
        return errors.bad_request('Input required: "messages" must be a non-empty array')
    candidates: list[str] = []
    model = payload.get("model")
    if isinstance(model, str) and model:
        candidates.append(model)
    models = payload.get("models")
    if models is not None:
        if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
            return errors.bad_request('"models" must be an array of model ids')
        candidates += [m for m in models if m not in candidates]
    if not candidates:
        if default_model is None:
            return errors.bad_request('"model" is required')
        candidates.append(default_model.id)
    max_tokens = payload.get("max_tokens", payload.get("max_completion_tokens"))
    if max_tokens is not None and (
        not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1
    ):
        return errors.bad_request('"max_tokens" must be a positive integer')
    user = payload.get("user")
    options = parse_options(payload)
    if isinstance(options, SimError):
        return options
    return ChatRequest(
        payload=payload,
        candidates=candidates,
        stream=payload.get("stream") is True,
        max_tokens=max_tokens,
        prompt_tokens=count_messages(messages) + options.extra_prompt_tokens,
        user=user if isinstance(user, str) else None,
        options=options,
    )
