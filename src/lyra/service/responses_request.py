"""The body of POST /v1/responses, validated and translated into the chat body the chat route takes.

The gateway is stateless, as OpenRouter's /responses is: `store: true`, `previous_response_id` and
everything else that needs a stored response, conversation or prompt is refused with a 400 naming
the field. Every other error names its field too (`input[2].type`, `text.format.name`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from lyra.service.chat_request import ChatCall, parse_chat
from lyra.service.errors import ApiError, bad_request
from lyra.service.options import ServiceOptions
from lyra.service.responses_input import STATELESS, input_messages, shown, validated
from lyra.service.validate import parse_body

METADATA_MAX_PAIRS = 16  # OpenAI's bounds on `metadata`
METADATA_MAX_KEY = 64
METADATA_MAX_VALUE = 512
TOOL_CHOICES = ("none", "auto", "required")


class _Strict(BaseModel):
    # Strict: a string where a number belongs is the caller's bug, not something to coerce.
    model_config = ConfigDict(strict=True, extra="ignore")


class TextFormat(_Strict):
    type: Literal["text", "json_object", "json_schema"]
    name: str | None = Field(None, min_length=1, max_length=64)
    schema_: dict[str, Any] | None = Field(None, alias="schema")
    strict: bool | None = None
    description: str | None = None


class TextConfig(_Strict):
    format: TextFormat | None = None


class ReasoningConfig(_Strict):
    """OpenRouter's reasoning options; `summary` is accepted and not forwarded (chat has no such field)."""

    effort: Literal["max", "xhigh", "high", "medium", "low", "minimal", "none"] | None = None
    max_tokens: int | None = Field(None, ge=1)
    exclude: bool | None = None
    enabled: bool | None = None
    summary: str | None = None


class ResponsesBody(_Strict):
    """What OpenAI's SDKs send to /responses; fields Lyra has no use for (include, ...) are ignored."""

    model: str = Field(min_length=1, max_length=256)
    input: str | list[dict[str, Any]]
    instructions: str | None = None
    max_output_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    top_logprobs: int | None = Field(None, ge=0, le=20)
    text: TextConfig | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    parallel_tool_calls: bool | None = None
    reasoning: ReasoningConfig | None = None
    stream: bool | None = False
    user: str | None = Field(None, max_length=256)
    metadata: dict[str, str] | None = None
    truncation: Literal["auto", "disabled"] | None = None
    service_tier: str | None = None
    prompt_cache_key: str | None = None
    # OpenRouter's own, as chat takes them.
    seed: int | None = None
    provider: dict[str, Any] | None = None
    session_id: str | None = None
    models: list[str] | None = None
    # Stateful: refused unless absent, null or false.
    store: bool | None = None
    background: bool | None = None
    previous_response_id: Any = None
    conversation: Any = None
    prompt: Any = None


class FunctionTool(_Strict):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")  # OpenAI's rule
    description: str | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = None


@dataclass(frozen=True, slots=True)
class ResponsesCall:
    """A validated /responses request: the chat body to answer it with, and what the answer echoes."""

    chat_body: dict[str, Any]
    stream: bool
    echo: dict[str, Any]  # the request's settings as a Response object repeats them


def parse_responses(raw: bytes, options: ServiceOptions) -> ResponsesCall:
    """Validate a request body, or raise ApiError 400 naming the field at fault."""
    body = parse_body(ResponsesBody, raw, union_hint="expected a string or a list of input items")
    _refuse_stateful(body)
    if body.max_output_tokens is not None and body.max_output_tokens > options.max_tokens:
        raise bad_request("max_output_tokens", f"max_output_tokens: {body.max_output_tokens} is more than "
                                               f"this gateway allows ({options.max_tokens})")
    _check_metadata(body.metadata)
    messages = ([{"role": "system", "content": body.instructions}] if body.instructions is not None else [])
    messages += input_messages(body.input)
    if not messages:
        raise bad_request("input", "input: at least one input item is required")
    if len(messages) > options.max_messages:
        raise bad_request("input", f"input: {len(messages)} messages, more than this gateway allows "
                                   f"({options.max_messages})")
    tools = chat_tools(body.tools)
    tool_choice = chat_tool_choice(body.tool_choice)
    fmt = body.text.format if body.text is not None else None
    chat: dict[str, Any] = {
        "model": body.model,
        "messages": messages,
        "max_tokens": body.max_output_tokens,
        "temperature": body.temperature,
        "top_p": body.top_p,
        "stream": bool(body.stream),
        "response_format": chat_response_format(fmt),
        "tools": tools,
        "tool_choice": tool_choice,
        "parallel_tool_calls": body.parallel_tool_calls,
        "reasoning": _chat_reasoning(body.reasoning),
        "logprobs": True if body.top_logprobs is not None else None,
        "top_logprobs": body.top_logprobs or None,
        "user": body.user,
        "metadata": body.metadata,  # the chat route's attribution tags, where it reads them
        "seed": body.seed,
        "provider": body.provider,
        "service_tier": body.service_tier,
        "prompt_cache_key": body.prompt_cache_key,
        "session_id": body.session_id,
        "models": body.models,
    }
    return ResponsesCall(chat_body={k: v for k, v in chat.items() if v is not None}, stream=bool(body.stream),
                         echo=_echo(body))


def chat_call(call: ResponsesCall, options: ServiceOptions) -> ChatCall:
    """The chat route's own validation of the translated body; its rare errors name the Responses field."""
    try:
        return parse_chat(orjson.dumps(call.chat_body), options)
    except ApiError as exc:
        raise as_responses_error(exc) from None


# --- stateless ------------------------------------------------------------------------------


def _refuse_stateful(body: ResponsesBody) -> None:
    if body.store:
        raise bad_request("store", f"store: responses are not stored ({STATELESS}); send store: false "
                                   "or leave it out", code="unsupported_value")
    stored = (("previous_response_id", "a stored response"), ("conversation", "a stored conversation"),
              ("prompt", "a stored prompt"))
    for name, what in stored:
        if getattr(body, name) is not None:
            raise bad_request(name, f"{name}: it refers to {what}, and {STATELESS}; send the whole "
                                    "conversation in `input` instead", code="unsupported_parameter")
    if body.background:
        raise bad_request("background", f"background: a background response must be stored to be polled, "
                                        f"and {STATELESS}", code="unsupported_value")
    if body.truncation == "auto":
        raise bad_request("truncation", "truncation: 'auto' is not supported (the gateway never drops "
                                        "input items); use 'disabled'", code="unsupported_value")


def _check_metadata(metadata: dict[str, str] | None) -> None:
    if metadata is None:
        return
    if len(metadata) > METADATA_MAX_PAIRS:
        raise bad_request("metadata", f"metadata: {len(metadata)} pairs, at most {METADATA_MAX_PAIRS} "
                                      "allowed")
    for key, value in metadata.items():
        if len(key) > METADATA_MAX_KEY:
            raise bad_request("metadata", f"metadata: a key is longer than {METADATA_MAX_KEY} characters")
        if len(value) > METADATA_MAX_VALUE:
            raise bad_request(f"metadata.{key}", f"metadata.{key}: longer than {METADATA_MAX_VALUE} "
                                                 "characters")


# --- settings -> chat options -----------------------------------------------------------------


def chat_tools(tools: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """Responses' flat function tools ({type, name, parameters}) as chat tools ({type, function: {...}})."""
    if tools is None:
        return None
    chat: list[dict[str, Any]] = []
    for index, raw in enumerate(tools):
        where = f"tools[{index}]"
        if raw.get("type") != "function":
            raise bad_request(f"{where}.type", f"{where}.type: only function tools are supported, got "
                                               f"{shown(raw.get('type'))}", code="unsupported_value")
        tool = validated(FunctionTool, raw, where)
        function: dict[str, Any] = {"name": tool.name}
        for name in ("description", "parameters", "strict"):
            if getattr(tool, name) is not None:
                function[name] = getattr(tool, name)
        chat.append({"type": "function", "function": function})
    return chat or None


def chat_tool_choice(choice: Any) -> Any:
    """"none" / "auto" / "required" as they are; {type: "function", name} as chat's nested form."""
    if choice is None or choice in TOOL_CHOICES:
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = choice.get("name")
        if not isinstance(name, str) or not name:
            raise bad_request("tool_choice.name", "tool_choice.name: required, the function to call",
                              code="missing_required_parameter")
        return {"type": "function", "function": {"name": name}}
    raise bad_request("tool_choice", "tool_choice: expected 'none', 'auto', 'required' or "
                                     "{type: 'function', name}", code="unsupported_value")


def chat_response_format(fmt: TextFormat | None) -> dict[str, Any] | None:
    """`text.format` as chat's `response_format` (the schema nests under `json_schema`)."""
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return {"type": "json_object"}
    if fmt.name is None:
        raise bad_request("text.format.name", "text.format.name: required when type is 'json_schema'",
                          code="missing_required_parameter")
    if fmt.schema_ is None:
        raise bad_request("text.format.schema", "text.format.schema: required when type is 'json_schema'",
                          code="missing_required_parameter")
    schema: dict[str, Any] = {"name": fmt.name, "schema": fmt.schema_}
    if fmt.strict is not None:
        schema["strict"] = fmt.strict
    if fmt.description is not None:
        schema["description"] = fmt.description
    return {"type": "json_schema", "json_schema": schema}


def _chat_reasoning(reasoning: ReasoningConfig | None) -> dict[str, Any] | None:
    if reasoning is None:
        return None
    return reasoning.model_dump(exclude_none=True, exclude={"summary"}) or None


def _echo(body: ResponsesBody) -> dict[str, Any]:
    """The request's settings as a Response object repeats them (OpenAI's defaults where unset)."""
    text = body.text.model_dump(by_alias=True, exclude_none=True) if body.text is not None else {}
    text.setdefault("format", {"type": "text"})
    reasoning = body.reasoning.model_dump(exclude_none=True) if body.reasoning is not None else None
    tools = []
    for tool in body.tools or []:
        tools.append({"type": "function", "name": tool["name"], "description": tool.get("description"),
                      "parameters": tool.get("parameters"), "strict": tool.get("strict")})
    return {
        "instructions": body.instructions,
        "max_output_tokens": body.max_output_tokens,
        "metadata": body.metadata or {},
        "parallel_tool_calls": body.parallel_tool_calls if body.parallel_tool_calls is not None else True,
        "reasoning": reasoning,
        "temperature": body.temperature,
        "text": text,
        "tool_choice": body.tool_choice if body.tool_choice is not None else "auto",
        "tools": tools,
        "top_logprobs": body.top_logprobs,
        "top_p": body.top_p,
        "truncation": "disabled",
        "user": body.user,
        "store": False,
        "background": False,
        "previous_response_id": None,
        "model": body.model,  # replaced by the served model
    }


# --- errors naming the Responses field -------------------------------------------------------------


# Chat's fields as the Responses body calls them (a message's index is not its input item's).
_RENAMES = ((re.compile(r"^max_(completion_)?tokens$"), "max_output_tokens"),
            (re.compile(r"^messages\b.*$"), "input"),
            (re.compile(r"^response_format(\.json_schema)?"), "text.format"),
            (re.compile(r"^(tools\[\d+\]|tool_choice)\.function"), r"\1"))


def as_responses_error(exc: ApiError) -> ApiError:
    """An error of the chat route's, naming its field as the Responses body calls it."""
    if exc.param is None:
        return exc
    for pattern, name in _RENAMES:
        param, found = pattern.subn(name, exc.param, count=1)
        if found:
            message = exc.message.replace(exc.param, param, 1)
            return ApiError(exc.status, message, type=exc.type, param=param, code=exc.code,
                            retry_after=exc.retry_after, extra=exc.extra, close=exc.close)
    return exc
