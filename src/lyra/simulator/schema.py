"""A small JSON-Schema toolkit: generate an instance, check one, fit a value into a schema.

It covers what structured-output schemas use: object/properties/required, enum/const,
string (min/maxLength, a few formats), number/integer bounds, boolean, array, null and
nullable, anyOf/oneOf/allOf, and local `$ref`s to `#/$defs` or `#/definitions`.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping
from typing import Any

Schema = Mapping[str, Any]
MISSING: Any = object()  # "no value fits"; compare with `is`
_WORDS = (
    "steady", "signal", "trend", "market", "volume", "range", "momentum", "support",
    "resistance", "liquidity", "breakout", "risk", "outlook", "neutral", "balanced",
)
_TYPE_ORDER = ("object", "array", "string", "number", "integer", "boolean", "null")
_MAX_DEPTH = 12  # recursive schemas (trees via $ref) stop growing here


def resolve(schema: Any, root: Schema) -> dict[str, Any]:
    """The schema with `$ref` followed and `allOf` merged into one mapping."""
    if not isinstance(schema, Mapping):
        return {}
    seen = 0
    while "$ref" in schema and seen < 32:
        target = _follow(str(schema["$ref"]), root)
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        schema = {**target, **rest}
        seen += 1
    if "allOf" in schema:
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        for part in schema["allOf"]:
            for key, value in resolve(part, root).items():
                if key == "properties" and "properties" in merged:
                    merged["properties"] = {**merged["properties"], **value}
                elif key == "required" and "required" in merged:
                    merged["required"] = [*merged["required"], *value]
                else:
                    merged.setdefault(key, value)
        return merged
    return dict(schema)


def _follow(ref: str, root: Schema) -> Mapping[str, Any]:
    if not ref.startswith("#"):
        return {}
    node: Any = root
    for raw in ref[1:].split("/"):
        if not raw:
            continue
        key = raw.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, Mapping) or key not in node:
            return {}
        node = node[key]
    return node if isinstance(node, Mapping) else {}


def types_of(schema: Mapping[str, Any]) -> list[str]:
    """The JSON types a (resolved) schema admits, most structured first."""
    declared = schema.get("type")
    if isinstance(declared, str):
        found = {declared}
    elif isinstance(declared, list):
        found = {str(t) for t in declared}
    elif "properties" in schema:
        found = {"object"}
    elif "items" in schema:
        found = {"array"}
    elif "enum" in schema or "const" in schema:
        return []
    else:
        found = set(_TYPE_ORDER)
    if schema.get("nullable") is True:
        found.add("null")
    return [t for t in _TYPE_ORDER if t in found]


def numeric_bounds(schema: Mapping[str, Any]) -> tuple[float | None, float | None]:
    """The inclusive-ish lower and upper bound of a numeric schema, when it has them."""
    lo = schema.get("minimum", schema.get("exclusiveMinimum"))
    hi = schema.get("maximum", schema.get("exclusiveMaximum"))
    lo = float(lo) if isinstance(lo, int | float) and not isinstance(lo, bool) else None
    hi = float(hi) if isinstance(hi, int | float) and not isinstance(hi, bool) else None
    return lo, hi


# --- generation --------------------------------------------------------------------------


def generate(
    schema: Any, root: Schema, rng: random.Random, *, text: str = "", depth: int = 0
) -> Any:
    """An instance of `schema`; strings are drawn from `text` when given."""
    s = resolve(schema, root)
    if "const" in s:
        return s["const"]
    enum = s.get("enum")
    if isinstance(enum, list) and enum:
        return enum[rng.randrange(len(enum))]
    options = s.get("anyOf") or s.get("oneOf")
    if isinstance(options, list) and options:
        non_null = [o for o in options if types_of(resolve(o, root)) != ["null"]]
        return generate((non_null or options)[0], root, rng, text=text, depth=depth + 1)
    kinds = [t for t in types_of(s) if t != "null"]
    if not kinds or (depth > _MAX_DEPTH and "null" in types_of(s)):
        return None
    kind = kinds[0] if "properties" in s or len(kinds) == 1 else _preferred(kinds)
    if depth > _MAX_DEPTH and kind in ("object", "array"):
        return {} if kind == "object" else []
    return _GENERATORS[kind](s, root, rng, text, depth)


def _preferred(kinds: list[str]) -> str:
    for kind in ("string", "number", "integer", "boolean", "object", "array"):
        if kind in kinds:
            return kind
    return kinds[0]


def _gen_object(s: Schema, root: Schema, rng: random.Random, text: str, depth: int) -> Any:
    properties = s.get("properties")
    if not isinstance(properties, Mapping):
        return {}
    return {
        name: generate(sub, root, rng, text=text, depth=depth + 1)
        for name, sub in properties.items()
    }


def _gen_array(s: Schema, root: Schema, rng: random.Random, text: str, depth: int) -> Any:
    low = int(s.get("minItems", 0))
    high = int(s.get("maxItems", max(low, 2)))
    size = max(low, min(high, max(low, 1) + rng.randrange(2)))
    items = s.get("items", {})
    if not isinstance(items, Mapping):
        items = {}
    return [generate(items, root, rng, text=text, depth=depth + 1) for _ in range(size)]


def _gen_string(s: Schema, root: Schema, rng: random.Random, text: str, depth: int) -> Any:
    fmt = s.get("format")
    if fmt == "date-time":
        value = "2026-08-01T12:00:00Z"
    elif fmt == "date":
        value = "2026-08-01"
    elif fmt in ("uri", "url"):
        value = "https://example.com/lyra"
    else:
        value = text or " ".join(rng.choice(_WORDS) for _ in range(3 + rng.randrange(4)))
    return fit_string(value, s)


def fit_string(value: str, s: Schema) -> str:
    """`value` cut to maxLength and padded to minLength."""
    max_len = s.get("maxLength")
    if isinstance(max_len, int) and len(value) > max_len:
        value = value[:max_len].rstrip() if max_len > 0 else ""
    min_len = s.get("minLength")
    if isinstance(min_len, int) and len(value) < min_len:
        value = value.ljust(min_len, ".")
    return value


def _gen_number(s: Schema, root: Schema, rng: random.Random, text: str, depth: int) -> Any:
    lo, hi = numeric_bounds(s)
    lo, hi = _default_range(lo, hi)
    value = round(rng.uniform(lo, hi), 4)
    return clip_number(value, s)


def _gen_integer(s: Schema, root: Schema, rng: random.Random, text: str, depth: int) -> Any:
    lo, hi = numeric_bounds(s)
    lo, hi = _default_range(lo, hi, span=100.0)
    exclusive_lo = "exclusiveMinimum" in s and "minimum" not in s
    exclusive_hi = "exclusiveMaximum" in s and "maximum" not in s
    low = math.floor(lo) + 1 if exclusive_lo else math.ceil(lo)
    high = math.ceil(hi) - 1 if exclusive_hi else math.floor(hi)
    return rng.randint(low, max(low, high))


def _default_range(lo: float | None, hi: float | None, span: float = 1.0) -> tuple[float, float]:
    if lo is None and hi is None:
        return 0.0, span
    if lo is None:
        assert hi is not None
        return hi - span, hi
    if hi is None:
        return lo, lo + span
    return lo, max(lo, hi)


def clip_number(value: float, s: Schema) -> float:
    """`value` moved inside the schema's bounds (strictly inside exclusive ones)."""
    lo, hi = numeric_bounds(s)
    if lo is not None and value < lo:
        value = lo
    if hi is not None and value > hi:
        value = hi
    if "exclusiveMinimum" in s and lo is not None and value <= lo:
        value = lo + (hi - lo) * 1e-3 if hi is not None else lo + 1e-3
    if "exclusiveMaximum" in s and hi is not None and value >= hi:
        value = hi - (hi - (lo if lo is not None else hi - 1.0)) * 1e-3
    return value


def _gen_boolean(s: Schema, root: Schema, rng: random.Random, text: str, depth: int) -> Any:
    return rng.random() < 0.5


_GENERATORS = {
    "object": _gen_object,
    "array": _gen_array,
    "string": _gen_string,
    "number": _gen_number,
    "integer": _gen_integer,
    "boolean": _gen_boolean,
}


# --- checking ----------------------------------------------------------------------------


def conforms(value: Any, schema: Any, root: Schema) -> bool:
    """Whether `value` is valid against `schema` (within the subset this module knows)."""
    s = resolve(schema, root)
    if "const" in s and value != s["const"]:
        return False
    enum = s.get("enum")
    if isinstance(enum, list) and value not in enum:
        return False
    for key in ("anyOf", "oneOf"):
        options = s.get(key)
        if isinstance(options, list) and not any(conforms(value, o, root) for o in options):
            return False
    kinds = types_of(s)
    if kinds and not any(_is_type(value, kind) for kind in kinds):
        return False
    if isinstance(value, dict):
        return _object_conforms(value, s, root)
    if isinstance(value, list):
        return _array_conforms(value, s, root)
    if isinstance(value, str):
        return _string_conforms(value, s)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _number_conforms(float(value), s)
    return True


def _is_type(value: Any, kind: str) -> bool:
    if kind == "null":
        return value is None
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "string":
        return isinstance(value, str)
    if kind == "array":
        return isinstance(value, list)
    return isinstance(value, dict)


def _object_conforms(value: dict[str, Any], s: Schema, root: Schema) -> bool:
    properties = s.get("properties") or {}
    for name in s.get("required") or ():
        if name not in value:
            return False
    if s.get("additionalProperties") is False and any(k not in properties for k in value):
        return False
    return all(conforms(v, properties[k], root) for k, v in value.items() if k in properties)


def _array_conforms(value: list[Any], s: Schema, root: Schema) -> bool:
    if len(value) < int(s.get("minItems", 0)):
        return False
    if "maxItems" in s and len(value) > int(s["maxItems"]):
        return False
    items = s.get("items")
    return not isinstance(items, Mapping) or all(conforms(v, items, root) for v in value)


def _string_conforms(value: str, s: Schema) -> bool:
    if "maxLength" in s and len(value) > int(s["maxLength"]):
        return False
    return not ("minLength" in s and len(value) < int(s["minLength"]))


def _number_conforms(value: float, s: Schema) -> bool:
    def bound(key: str) -> float | None:
        found = s.get(key)
        if isinstance(found, int | float) and not isinstance(found, bool):
            return float(found)
        return None

    low, high = bound("minimum"), bound("maximum")
    low_x, high_x = bound("exclusiveMinimum"), bound("exclusiveMaximum")
    return not (
        (low is not None and value < low)
        or (high is not None and value > high)
        or (low_x is not None and value <= low_x)
        or (high_x is not None and value >= high_x)
    )


# --- fitting -----------------------------------------------------------------------------


def fit(value: Any, schema: Any, root: Schema, *, aliases: Iterable[Any] = ()) -> Any:
    """`value` adapted to `schema` (enum case and aliases, bounds, length), or MISSING."""
    aliases = tuple(aliases)
    s = resolve(schema, root)
    enum = s.get("enum")
    if isinstance(enum, list):
        return _fit_enum([value, *aliases], enum)
    options = s.get("anyOf") or s.get("oneOf")
    if isinstance(options, list):
        for option in options:
            fitted = fit(value, option, root, aliases=aliases)
            if fitted is not MISSING:
                return fitted
        return MISSING
    kinds = types_of(s)
    if value is None:
        return None if conforms(None, s, root) else MISSING
    if isinstance(value, bool):
        candidate: Any = value
    elif isinstance(value, int | float):
        candidate = clip_number(float(value), s)
        if "integer" in kinds and "number" not in kinds:
            candidate = round(candidate)
    elif isinstance(value, str):
        candidate = fit_string(value, s)
    else:
        candidate = value
    return candidate if conforms(candidate, s, root) else MISSING


def _fit_enum(candidates: list[Any], enum: list[Any]) -> Any:
    for candidate in candidates:
        if candidate in enum:
            return candidate
        if isinstance(candidate, str):
            for member in enum:
                if isinstance(member, str) and member.lower() == candidate.lower():
                    return member
    return MISSING
