"""The `input` of a Responses request as chat messages, each item and content part validated, and
every error naming its field from the body's root (`input[2].type`, `input[0].content[1].text`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from lyra.service.errors import ApiError, bad_request
from lyra.service.validate import api_error

ITEM_TYPES = ("message", "function_call", "function_call_output", "reasoning")
PART_TYPES = ("input_text", "output_text", "refusal", "input_image", "input_file")
STATELESS = "this gateway is stateless, as OpenRouter's /responses is"
M = TypeVar("M", bound=BaseModel)


class _Item(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")


class MessageItem(_Item):
    role: Literal["user", "assistant", "system", "developer"]
    content: str | list[dict[str, Any]]


class FunctionCallItem(_Item):
    call_id: str = Field(min_length=1, max_length=256)
    name: str = Field(min_length=1, max_length=256)
    arguments: str


class FunctionCallOutputItem(_Item):
    call_id: str = Field(min_length=1, max_length=256)
    output: str | list[dict[str, Any]]


class ReasoningItem(_Item):
    encrypted_content: str | None = None


class TextPart(_Item):
    text: str


class RefusalPart(_Item):
    refusal: str


class ImagePart(_Item):
    image_url: str | None = Field(None, min_length=1)
    file_id: str | None = None
    detail: Literal["low", "high", "auto"] | None = None


class FilePart(_Item):
    file_data: str | None = Field(None, min_length=1)
    file_url: str | None = Field(None, min_length=1)
    filename: str | None = None
    file_id: str | None = None


def input_messages(value: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`input` as chat messages: a string is one user message; items become messages in order, a
    function_call joins the assistant message before it, and a function_call_output is a tool message."""
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    messages: list[dict[str, Any]] = []
    details: list[Any] = []  # reasoning details from a reasoning item, for the next assistant message
    for index, raw in enumerate(value):
        where = f"input[{index}]"
        kind = _item_type(raw, where)
        if kind == "message":
            item = validated(MessageItem, raw, where)
            content = chat_content(item.content, f"{where}.content")
            message: dict[str, Any] = {"role": item.role, "content": content}
            if item.role == "assistant" and details:
                message["reasoning_details"], details = details, []
            messages.append(message)
        elif kind == "function_call":
            call = validated(FunctionCallItem, raw, where)
            last = messages[-1] if messages else None
            if last is None or last["role"] != "assistant":
                last = {"role": "assistant", "content": None}
                messages.append(last)
            if details:
                last.setdefault("reasoning_details", []).extend(details)
                details = []
            last.setdefault("tool_calls", []).append({
                "id": call.call_id, "type": "function",
                "function": {"name": call.name, "arguments": call.arguments}})
        elif kind == "function_call_output":
            result = validated(FunctionCallOutputItem, raw, where)
            messages.append({"role": "tool", "tool_call_id": result.call_id,
                             "content": chat_content(result.output, f"{where}.output", text_only=True)})
        else:
            details += _reasoning_details(validated(ReasoningItem, raw, where), where)
    return messages


def _item_type(raw: Mapping[str, Any], where: str) -> str:
    kind = raw.get("type")
    if kind is None and "role" in raw:
        return "message"  # OpenAI's "easy" input message leaves its type out
    if kind is None:
        raise bad_request(f"{where}.type", f"{where}.type: required field is missing",
                          code="missing_required_parameter")
    if kind == "item_reference":
        raise bad_request(f"{where}.type", f"{where}.type: 'item_reference' points at a stored item, and "
                                           f"{STATELESS}; send the item itself", code="unsupported_value")
    if kind not in ITEM_TYPES:
        raise bad_request(f"{where}.type", f"{where}.type: unsupported input item type {shown(kind)}; "
                                           f"supported: {', '.join(ITEM_TYPES)}", code="unsupported_value")
    return str(kind)


def chat_content(content: str | list[dict[str, Any]], where: str, *, text_only: bool = False) -> Any:
    """Content parts as chat parts; one text part (the common case) as a plain string."""
    if isinstance(content, str):
        return content
    parts = [_chat_part(part, f"{where}[{i}]", text_only) for i, part in enumerate(content)]
    if len(parts) == 1 and parts[0]["type"] == "text":
        return parts[0]["text"]
    return parts


def _chat_part(raw: Mapping[str, Any], where: str, text_only: bool) -> dict[str, Any]:
    kind = raw.get("type")
    allowed = ("input_text", "output_text") if text_only else PART_TYPES
    if kind not in allowed:
        raise bad_request(f"{where}.type", f"{where}.type: unsupported content part type {shown(kind)}; "
                                           f"supported: {', '.join(allowed)}", code="unsupported_value")
    if kind in ("input_text", "output_text"):
        return {"type": "text", "text": validated(TextPart, raw, where).text}
    if kind == "refusal":  # an earlier answer's refusal, passed back: what the assistant said
        return {"type": "text", "text": validated(RefusalPart, raw, where).refusal}
    if kind == "input_image":
        image = validated(ImagePart, raw, where)
        if image.image_url is None:
            raise _no_file_ids(where, "image_url")
        url: dict[str, Any] = {"url": image.image_url}
        if image.detail is not None:
            url["detail"] = image.detail
        return {"type": "image_url", "image_url": url}
    file = validated(FilePart, raw, where)
    data = file.file_data or file.file_url
    if data is None:
        raise _no_file_ids(where, "file_data")
    return {"type": "file", "file": {"filename": file.filename or "file", "file_data": data}}


def shown(kind: object) -> str:
    """A `type` value as an error quotes it: a string (cut short), else what it is."""
    return repr(kind)[:80] if isinstance(kind, str) else "missing" if kind is None else "not a string"


def _no_file_ids(where: str, field: str) -> ApiError:
    return bad_request(f"{where}.{field}", f"{where}.{field}: required (file ids need OpenAI's file "
                                           f"storage, and {STATELESS})", code="missing_required_parameter")


def _reasoning_details(item: ReasoningItem, where: str) -> list[Any]:
    """The reasoning details a Lyra answer carried in `encrypted_content` (its JSON), to pass back unchanged
    as OpenRouter asks; a reasoning item without them has nothing the next call needs."""
    if item.encrypted_content is None:
        return []
    try:
        details = orjson.loads(item.encrypted_content)
    except orjson.JSONDecodeError:
        details = None
    if not isinstance(details, list):
        raise bad_request(f"{where}.encrypted_content", f"{where}.encrypted_content: not reasoning details "
                                                        "this gateway produced")
    return details


def validated(model: type[M], raw: Mapping[str, Any], where: str) -> M:
    """`raw` as `model`, or a 400 whose field is spelled from the body's root (`input[2].content[0].text`)."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        error = api_error(exc, union_hint="expected a string or a list of content parts")
    inner = error.param
    if inner is None:
        raise ApiError(400, f"{where}: {error.message}", param=where, code=error.code)
    param = f"{where}{inner}" if inner.startswith("[") else f"{where}.{inner}"
    raise ApiError(400, f"{param}: {error.message.removeprefix(f'{inner}: ')}", param=param, code=error.code)
