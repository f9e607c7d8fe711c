"""The JSON-Schema toolkit behind structured outputs: generated values always conform."""

from __future__ import annotations

import random
from typing import Any

import pytest

from lyra.simulator.schema import MISSING, conforms, fit, generate

SCHEMAS: list[dict[str, Any]] = [
    {"type": "integer", "exclusiveMinimum": 0, "exclusiveMaximum": 3},
    {"type": "number", "minimum": 10},
    {"type": "string", "minLength": 5, "maxLength": 8},
    {"type": ["string", "null"], "enum": ["a", "b", None]},
    {"type": "array", "items": {"type": "boolean"}, "minItems": 2, "maxItems": 4},
    {"const": "fixed"},
    {"type": "string", "format": "date-time"},
    {
        "definitions": {"Level": {"type": "integer", "minimum": 1, "maximum": 3}},
        "type": "object",
        "properties": {
            "level": {"$ref": "#/definitions/Level"},
            "meta": {
                "allOf": [
                    {"type": "object", "properties": {"a": {"type": "number"}}, "required": ["a"]},
                    {"properties": {"b": {"type": "null"}}, "required": ["b"]},
                ]
            },
            "either": {"oneOf": [{"type": "null"}, {"type": "string", "maxLength": 3}]},
        },
        "required": ["level", "meta", "either"],
        "additionalProperties": False,
    },
]


@pytest.mark.parametrize("schema", SCHEMAS)
def test_generated_values_conform(schema: dict[str, Any]) -> None:
    for seed in range(20):
        value = generate(schema, schema, random.Random(seed))
        assert conforms(value, schema, schema), (schema, value)


def test_conforms_rejects_what_breaks_the_schema() -> None:
    schema = SCHEMAS[-1]
    good = {"level": 2, "meta": {"a": 1.5, "b": None}, "either": "ab"}
    assert conforms(good, schema, schema)
    assert not conforms({**good, "level": 4}, schema, schema)
    assert not conforms({**good, "extra": 1}, schema, schema)
    assert not conforms({**good, "either": "abcd"}, schema, schema)
    assert not conforms({k: v for k, v in good.items() if k != "meta"}, schema, schema)
    assert not conforms(True, {"type": "integer"}, {})


def test_fit_maps_enum_spelling_and_aliases_and_clips_numbers() -> None:
    side = {"enum": ["long", "short", "flat"]}
    assert fit("LONG", side, side) == "long"
    assert fit("BUY", side, side, aliases=("LONG",)) == "long"
    assert fit("SIDEWAYS", side, side) is MISSING
    assert fit(1.7, {"type": "number", "maximum": 1}, {}) == 1
    assert fit(0.42, {"type": "integer", "minimum": 0, "maximum": 100}, {}) == 0
    assert fit(None, {"type": "number"}, {}) is MISSING
    assert fit("x" * 300, {"type": "string", "maxLength": 280}, {}) == "x" * 280


def test_recursive_schemas_stop_growing() -> None:
    tree = {
        "$defs": {
            "Node": {
                "type": "object",
                "properties": {
                    "name": {"type": "string"},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
                },
            }
        },
        "$ref": "#/$defs/Node",
    }
    value = generate(tree, tree, random.Random(1))
    assert isinstance(value, dict) and "name" in value
