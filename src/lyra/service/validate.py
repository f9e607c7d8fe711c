"""Validating a JSON request body against a pydantic model, every error naming its field."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from lyra.service.errors import ApiError, bad_request
from lyra.service.strict_json import check_json

M = TypeVar("M", bound=BaseModel)


def parse_body(model: type[M], raw: bytes, *, union_hint: str | None = None) -> M:
    """The body as `model`, or ApiError 400 naming the first field at fault (`bars[3].close`).

    Every route's body comes through here, so none reaches the engine with a value that orjson
    could not forward (an integer past 64 bits, NaN, a lone surrogate).
    """
    check_json(raw)
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise api_error(exc, union_hint=union_hint) from None


def api_error(exc: ValidationError, *, union_hint: str | None = None) -> ApiError:
    """The first validation error as a 400 naming its field; `union_hint` explains a failed union."""
    error = exc.errors(include_url=False)[0]
    if error["type"] == "json_invalid":
        detail = (error.get("ctx") or {}).get("error", "")
        message = f"the request body is not valid JSON: {detail}".rstrip(": ")
        return ApiError(400, message, code="invalid_json")
    param = field_path(error)
    if param is None and error["type"] == "value_error":  # a rule across fields
        return ApiError(400, str(error["msg"]).removeprefix("Value error, "), code="invalid_value")
    if param is None:
        return ApiError(400, "the request body must be a JSON object", code="invalid_json")
    if error["type"] == "missing":
        return bad_request(param, f"{param}: required field is missing", code="missing_required_parameter")
    message = str(error["msg"]).removeprefix("Value error, ")
    if union_hint is not None and any(_union_member(part) for part in error["loc"]):
        message = union_hint
    return bad_request(param, f"{param}: {message}")


def field_path(error: ErrorDetails) -> str | None:
    """OpenAI's spelling of a field path, skipping pydantic's names of union members."""
    text = ""
    for part in error["loc"]:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _union_member(part):
            continue  # a union member's name, not a field
        else:
            text += f".{part}" if text else str(part)
    return text or None


def _union_member(part: int | str) -> bool:
    """True for pydantic's name of a union member in an error location (`str`, `list[...]`)."""
    return isinstance(part, str) and ("[" in part or part in ("str", "int", "float", "none", "bool"))
