"""The body of POST /v1/chat/completions: validated, bounded, and every error naming its field."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from lyra.service.attribution import metadata_tags, parse_user
from lyra.service.errors import bad_request
from lyra.service.options import ServiceOptions
from lyra.service.validate import parse_body


class _Strict(BaseModel):
    # Strict: a string where a number belongs is the caller's bug, not something to coerce.
    model_config = ConfigDict(strict=True, extra="allow")


class ChatMessage(_Strict):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None


class ResponseFormat(_Strict):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _schema_given(self) -> ResponseFormat:
        if self.type == "json_schema" and not self.json_schema:
            raise ValueError("json_schema is required when type is 'json_schema'")
        return self


class StreamOptions(_Strict):
    include_usage: bool | None = None


class ChatBody(_Strict):
    """What OpenAI's SDKs send; fields Lyra has no use for (top_p, ...) are ignored."""

    model_config = ConfigDict(strict=True, extra="ignore")

    model: str = Field(min_length=1, max_length=256)
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    stream: bool | None = False
    stream_options: StreamOptions | None = None
    response_format: ResponseFormat | None = None
    seed: int | None = None
    provider: dict[str, Any] | None = None
    n: int | None = None
    tools: list[Any] | None = None
    functions: list[Any] | None = None
    user: Any = None  # checked by attribution.parse_user
    metadata: Any = None  # checked by attribution.metadata_tags


@dataclass(frozen=True, slots=True)
class ChatCall:
    """A validated chat request, ready to route."""

    model: str
    messages: list[dict[str, Any]]
    max_tokens: int | None
    temperature: float | None
    stream: bool
    response_format: dict[str, Any] | None
    seed: int | None
    provider: dict[str, Any] | None
    user: str | None = None  # OpenAI's `user`: the caller's end user, for attribution
    tags: tuple[str, ...] = ()  # from OpenAI's `metadata` (key:value); chat.py adds the header's


def parse_chat(raw: bytes, options: ServiceOptions) -> ChatCall:
    """Validate a request body, or raise ApiError 400 naming the field at fault."""
    body = parse_body(ChatBody, raw, union_hint="expected a string, a list of content parts or null")
    _refuse_unsupported(body)
    max_tokens = body.max_completion_tokens if body.max_completion_tokens is not None else body.max_tokens
    if max_tokens is not None and max_tokens > options.max_tokens:
        field = "max_completion_tokens" if body.max_completion_tokens is not None else "max_tokens"
        raise bad_request(field, f"{field}: {max_tokens} is more than this gateway allows "
                                 f"({options.max_tokens})")
    if len(body.messages) > options.max_messages:
        raise bad_request("messages", f"messages: {len(body.messages)} messages, more than this gateway "
                                      f"allows ({options.max_messages})")
    return ChatCall(
        model=body.model,
        messages=[m.model_dump(exclude_none=True) for m in body.messages],
        max_tokens=max_tokens,
        temperature=body.temperature,
        stream=bool(body.stream),
        response_format=body.response_format.model_dump(exclude_none=True) if body.response_format else None,
        seed=body.seed,
        provider=body.provider,
        user=parse_user(body.user),
        tags=metadata_tags(body.metadata),
    )


def _refuse_unsupported(body: ChatBody) -> None:
    """Fields that would change the answer's meaning and that Lyra cannot honour: refuse, not ignore."""
    if body.n is not None and body.n != 1:
        raise bad_request("n", "n: only one choice per request is supported (n = 1)",
                          code="unsupported_value")
    for name in ("tools", "functions"):
        if getattr(body, name):
            raise bad_request(name, f"{name}: tool calling is not supported by this gateway",
                              code="unsupported_parameter")


