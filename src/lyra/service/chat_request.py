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


MAX_N = 8  # choices per request: each is billed, and the budget reserves n times the worst case
MAX_TOOLS = 128
MAX_MODELS = 8  # entries in a `models` fallback list
MAX_TOP_LOGPROBS = 20
_EFFORTS = ("max", "xhigh", "high", "medium", "low", "minimal", "none")


class ToolCallFunction(_Strict):
    name: str = Field(min_length=1, max_length=256)
    arguments: str


class ToolCall(_Strict):
    id: str = Field(min_length=1, max_length=256)
    type: Literal["function"] = "function"
    function: ToolCallFunction


class ChatMessage(_Strict):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[dict[str, Any]] | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = Field(None, min_length=1, max_length=256)

    @model_validator(mode="after")
    def _tool_fields(self) -> ChatMessage:
        if self.role == "tool" and self.tool_call_id is None:
            raise ValueError("a tool message needs the tool_call_id of the call it answers")
        if self.tool_calls is not None and self.role != "assistant":
            raise ValueError("only an assistant message carries tool_calls")
        return self


class FunctionDef(_Strict):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


class Tool(_Strict):
    type: Literal["function"]
    function: FunctionDef


class Reasoning(_Strict):
    effort: str | None = None
    max_tokens: int | None = Field(None, ge=0)
    exclude: bool | None = None
    enabled: bool | None = None


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
    n: int | None = Field(None, ge=1)
    tools: list[Tool] | None = Field(None, max_length=MAX_TOOLS)
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    functions: list[Any] | None = None
    function_call: Any = None
    logprobs: bool | None = None
    top_logprobs: int | None = Field(None, ge=0, le=MAX_TOP_LOGPROBS)
    reasoning: Reasoning | None = None
    reasoning_effort: str | None = None
    service_tier: str | None = Field(None, min_length=1, max_length=32)
    session_id: str | None = Field(None, min_length=1, max_length=256)
    user: Any = None  # checked by attribution.parse_user
    metadata: Any = None  # checked by attribution.metadata_tags
    models: list[str] | None = Field(None, min_length=1, max_length=MAX_MODELS)


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
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    n: int = 1
    logprobs: bool | None = None
    top_logprobs: int | None = None
    reasoning: dict[str, Any] | None = None
    service_tier: str | None = None
    session_id: str | None = None
    user: str | None = None  # OpenAI's `user`: the caller's end user, for attribution
    tags: tuple[str, ...] = ()  # from OpenAI's `metadata` (key:value); chat.py adds the header's
    models: list[str] | None = None  # the fallback list after `model`, as OpenRouter takes it

    def options(self) -> dict[str, Any]:
        """The engine options these fields become (besides the route and the budget)."""
        return {"max_tokens": self.max_tokens, "temperature": self.temperature,
                "response_format": self.response_format, "provider": self.provider, "seed": self.seed,
                "tools": self.tools, "tool_choice": self.tool_choice,
                "parallel_tool_calls": self.parallel_tool_calls, "n": self.n, "logprobs": self.logprobs,
                "top_logprobs": self.top_logprobs, "reasoning": self.reasoning,
                "service_tier": self.service_tier, "session_id": self.session_id, "user": self.user}


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
    reasoning = _reasoning(body, options)
    _check_tools(body)
    if body.top_logprobs is not None and not body.logprobs:
        raise bad_request("top_logprobs", "top_logprobs: needs logprobs set to true")
    return ChatCall(
        model=body.model,
        messages=[m.model_dump(exclude_none=True) for m in body.messages],
        max_tokens=max_tokens,
        temperature=body.temperature,
        stream=bool(body.stream),
        response_format=body.response_format.model_dump(exclude_none=True) if body.response_format else None,
        seed=body.seed,
        provider=body.provider,
        tools=[t.model_dump(exclude_none=True) for t in body.tools] if body.tools else None,
        tool_choice=body.tool_choice,
        parallel_tool_calls=body.parallel_tool_calls,
        n=body.n or 1,
        logprobs=body.logprobs,
        top_logprobs=body.top_logprobs,
        reasoning=reasoning,
        service_tier=body.service_tier,
        session_id=body.session_id,
        user=parse_user(body.user),
        tags=metadata_tags(body.metadata),
        models=body.models,
    )


def _refuse_unsupported(body: ChatBody) -> None:
    """Fields that would change the answer's meaning and that Lyra cannot honour: refuse, not ignore."""
    if body.n is not None and body.n > MAX_N:
        raise bad_request("n", f"n: {body.n} choices, more than this gateway allows ({MAX_N})",
                          code="unsupported_value")
    for name in ("functions", "function_call"):
        if getattr(body, name) is not None:
            raise bad_request(name, f"{name}: the legacy functions API is not supported; send tools "
                                    "and tool_choice instead", code="unsupported_parameter")


def _check_tools(body: ChatBody) -> None:
    """tool_choice as OpenAI takes it, naming a function among `tools` when it names one."""
    choice, names = body.tool_choice, [t.function.name for t in body.tools or []]
    if choice is None:
        if body.parallel_tool_calls is not None and not names:
            raise bad_request("parallel_tool_calls", "parallel_tool_calls: only allowed with tools")
        return
    if isinstance(choice, str):
        if choice not in ("auto", "none", "required"):
            raise bad_request("tool_choice", 'tool_choice: expected "auto", "none", "required" or '
                                             '{"type": "function", "function": {"name": ...}}')
        if choice == "required" and not names:
            raise bad_request("tool_choice", 'tool_choice: "required" needs tools')
        return
    function = choice.get("function")
    name = function.get("name") if isinstance(function, dict) else None
    if choice.get("type") != "function" or not isinstance(name, str):
        raise bad_request("tool_choice", 'tool_choice: expected {"type": "function", "function": '
                                         '{"name": ...}}')
    if name not in names:
        raise bad_request("tool_choice", f"tool_choice: function {name[:64]!r} is not among tools")


def _reasoning(body: ChatBody, options: ServiceOptions) -> dict[str, Any] | None:
    """`reasoning` (OpenRouter's), or OpenAI's `reasoning_effort` as its effort; bounded like max_tokens."""
    if body.reasoning is None and body.reasoning_effort is None:
        return None
    reasoning = body.reasoning.model_dump(exclude_none=True) if body.reasoning is not None else {}
    if body.reasoning_effort is not None:
        if "effort" in reasoning:
            raise bad_request("reasoning_effort", "reasoning_effort: give it or reasoning.effort, not both")
        reasoning["effort"] = body.reasoning_effort
    field = "reasoning.effort" if body.reasoning_effort is None else "reasoning_effort"
    effort = reasoning.get("effort")
    if effort is not None and effort not in _EFFORTS:
        raise bad_request(field, f"{field}: expected one of {', '.join(_EFFORTS)}")
    budget = reasoning.get("max_tokens")
    if budget is not None and budget > options.max_tokens:
        raise bad_request("reasoning.max_tokens", f"reasoning.max_tokens: {budget} is more than this "
                                                  f"gateway allows ({options.max_tokens})")
    return reasoning


