"""Refusing a request body that is JSON to a lenient parser but cannot travel further.

pydantic accepts integers of any size and NaN or Infinity; orjson, which forwards a body upstream
and hashes it for the cache, cannot encode either, so such a body would fail deep inside the engine.
Every body passes here first and gets a 400 naming the value at fault (`messages[0].extra`).
"""

from __future__ import annotations

import json
import math
import re

import orjson

from lyra.service.errors import ApiError, bad_request

INT_MIN = -(2**63)  # orjson's range: int64 for negatives, uint64 for the rest
INT_MAX = 2**64 - 1
# Only a run of 19+ digits can hold an integer orjson cannot encode; orjson itself reads one as a float.
_LONG_DIGITS = re.compile(rb"\d{19,}")


def check_json(raw: bytes) -> None:
    """Nothing, or ApiError 400 when `raw` is not strict JSON whose every integer fits in 64 bits."""
    try:
        orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _explain(raw, str(exc)) from None
    if _LONG_DIGITS.search(raw):
        try:
            parsed = json.loads(raw)  # strict JSON to orjson, so stdlib json reads it too
        except (ValueError, RecursionError):  # an integer of thousands of digits, or a deep nest
            raise ApiError(400, "the request body holds a number or a nesting too large for this API",
                           code="invalid_json") from None
        fault = _first_fault(parsed)
        if fault is not None:
            raise fault


def _explain(raw: bytes, detail: str) -> ApiError:
    """Which value stdlib json (lenient about NaN and surrogates) sees at fault, else orjson's reason."""
    try:
        parsed = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return ApiError(400, "the request body is not valid UTF-8", code="invalid_json")
    except (ValueError, RecursionError):
        parsed = None
    fault = _first_fault(parsed) if parsed is not None else None
    return fault or ApiError(400, f"the request body is not valid JSON: {detail}", code="invalid_json")


def _first_fault(value: object) -> ApiError | None:
    """The first integer, number or string in `value` that orjson cannot encode, as a 400 naming it."""
    stack: list[tuple[object, str]] = [(value, "")]
    while stack:
        item, where = stack.pop()
        problem = _problem(item)
        if problem is not None:
            return bad_request(where or "body", f"{where or 'body'}: {problem}")
        if isinstance(item, dict):
            stack.extend((child, _join(where, key)) for key, child in reversed(item.items()))
        elif isinstance(item, list):
            stack.extend((child, f"{where}[{i}]") for i, child in reversed(list(enumerate(item))))
    return None


def _problem(item: object) -> str | None:
    if isinstance(item, bool):
        return None
    if isinstance(item, int) and not INT_MIN <= item <= INT_MAX:
        return f"integer {_digits(item)} is outside the 64-bit range this API accepts"
    if isinstance(item, float) and not math.isfinite(item):
        return "NaN, Infinity and numbers beyond a double's range are not accepted"
    if isinstance(item, str) and _unencodable_str(item):
        return "not valid Unicode (a lone surrogate escape)"
    if isinstance(item, dict) and any(_unencodable_str(key) for key in item):
        return "a key is not valid Unicode (a lone surrogate escape)"
    return None


def _join(where: str, key: str) -> str:
    name = key if len(key) <= 64 else key[:64] + "..."
    return f"{where}.{name}" if where else name


def _unencodable_str(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _digits(value: int) -> str:
    """An integer as an error quotes it: its sign, its first digits and how many there are."""
    if value.bit_length() <= 80:
        return str(value)
    return f"{'-' if value < 0 else ''}of about {int(value.bit_length() * math.log10(2)) + 1} digits"
