"""Target portfolio weights computed from the per-asset features of a rebalancing prompt."""

from __future__ import annotations

import math
import random
import re
from collections.abc import Mapping
from typing import Any

import orjson

from lyra.simulator.decision import FEATURE_NAMES, _with_timeframes, score_features
from lyra.simulator.profiles import ModelProfile
from lyra.simulator.tokens import message_text

SCHEMA_NAME = "portfolio_weights"
_FENCE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\r?\n(.*?)```", re.S)
# A score of 1 asks for this weight: more than the usual 40 % cap, so that the limits have work to do.
_FULL_WEIGHT = 0.6


def portfolio_answer(
    response_format: Mapping[str, Any], messages: list[Any], profile: ModelProfile, rng: random.Random
) -> str | None:
    """The JSON answer to a `portfolio_weights` schema, or None when the request is not one.

    Each asset's weight is its feature score (the one single-asset decisions use, with the model's
    bias and noise) times 0.6, negative for a bearish score: a model that does not know the limits
    and sometimes asks for more than they allow.
    """
    spec = response_format.get("json_schema")
    if not isinstance(spec, Mapping) or spec.get("name") != SCHEMA_NAME:
        return None
    assets = _assets(messages)
    if assets is None:
        return None
    weights: dict[str, float] = {}
    cited: list[str] = []
    for label, block in assets.items():
        features = {
            k.lower(): float(v) for k, v in block.items() if k.lower() in FEATURE_NAMES and _number(v)
        }
        features = _with_timeframes(features, block.get("timeframes"))
        score, _ = score_features(features, None)
        noisy = max(-1.0, min(1.0, score + profile.bias + rng.gauss(0.0, profile.noise)))
        weights[label] = round(noisy * _FULL_WEIGHT, 4) + 0.0
        cited.append(f"{label} score {score:+.2f}")
    reason = ("weights follow each asset's feature score: " + "; ".join(cited))[:400]
    return orjson.dumps({"weights": weights, "reason": reason}).decode()


def _assets(messages: list[Any]) -> dict[str, dict[str, Any]] | None:
    for m in reversed(messages):
        if not isinstance(m, dict):
            continue
        for block in _FENCE.findall(message_text(m.get("content"))):
            try:
                data = orjson.loads(block)
            except orjson.JSONDecodeError:
                continue
            assets = data.get("assets") if isinstance(data, dict) else None
            if isinstance(assets, dict):
                return {str(k): v for k, v in assets.items() if isinstance(v, dict)}
    return None


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


__all__ = ["SCHEMA_NAME", "portfolio_answer"]
