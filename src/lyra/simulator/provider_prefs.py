"""The request's `provider` preferences as the simulator reads them: checked shape, and `max_price`.

Every 2026 field is accepted (reference section 2 and 8); a field of the wrong type is a 400, an
unknown one is ignored. `max_price` is a hard filter, as on OpenRouter: a model whose price is
over it has no endpoint left, which is a 404 (`constraint_filtered`) and lets `models` fall back.
The simulator has one endpoint per model, priced from the catalogue, and does not model providers'
data policies: `zdr`, `data_collection`, `order`, `only`, `ignore`, `sort` and the rest are
accepted and change nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from lyra.catalog.models import ModelInfo
from lyra.simulator import error_bodies as errors
from lyra.simulator.error_bodies import SimError, error_body

_DOCS_URL = "https://openrouter.ai/docs/guides/routing/provider-selection"
_BOOLS = ("allow_fallbacks", "require_parameters", "zdr", "enforce_distillable_text")
_LISTS = ("order", "only", "ignore")
_QUANTIZATIONS = frozenset({"int4", "int8", "fp4", "mxfp4", "nvfp4", "fp6", "fp8", "mxfp8", "fp16", "bf16",
                            "fp32", "unknown"})
_SORTS = ("price", "throughput", "latency", "exacto")
_PERCENTILES = ("p50", "p75", "p90", "p99")
_PRICES = ("prompt", "completion", "request", "image")


def check_provider(raw: Any) -> SimError | None:
    """A 400 naming the first malformed field of `provider`, or None when it is well formed (or absent)."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        return _invalid("provider", "an object")
    for name in _BOOLS:
        if name in raw and not isinstance(raw[name], bool):
            return _invalid(f"provider.{name}", "a boolean")
    for name in _LISTS:
        if name in raw and not _strings(raw[name]):
            return _invalid(f"provider.{name}", "an array of provider slugs")
    if "data_collection" in raw and raw["data_collection"] not in ("allow", "deny"):
        return _invalid("provider.data_collection", '"allow" or "deny"')
    if "quantizations" in raw and not (_strings(raw["quantizations"])
                                       and set(raw["quantizations"]) <= _QUANTIZATIONS):
        return _invalid("provider.quantizations", "an array of " + ", ".join(sorted(_QUANTIZATIONS)))
    if "sort" in raw and not _sort(raw["sort"]):
        return _invalid("provider.sort", '"price", "throughput", "latency", "exacto" or {by, partition}')
    for name in ("preferred_min_throughput", "preferred_max_latency"):
        if name in raw and not _preference(raw[name]):
            return _invalid(f"provider.{name}", "a number or an object of p50, p75, p90, p99")
    if "max_price" in raw:
        prices = raw["max_price"]
        if not isinstance(prices, Mapping) or any(
                part in prices and _number(prices[part]) is None for part in _PRICES):
            return _invalid("provider.max_price", "an object of prompt, completion, request, image prices")
    return None


def over_max_price(model: ModelInfo, raw: Any) -> bool:
    """True when `model`'s price is over the request's `provider.max_price` (a checked provider)."""
    prices = raw.get("max_price") if isinstance(raw, Mapping) else None
    if not isinstance(prices, Mapping):
        return False
    listed = {"prompt": model.prompt_per_m, "completion": model.completion_per_m,
              "request": model.request_usd, "image": model.image_usd}
    for part in _PRICES:
        limit = _number(prices.get(part)) if part in prices else None
        price = listed[part]
        if limit is not None and price is not None and price > limit:
            return True
    return False


def price_filtered(model_id: str) -> SimError:
    """OpenRouter's answer when `max_price` leaves a model no endpoint."""
    availability = {"code": "constraint_filtered", "retryable": False, "requested_models": [model_id],
                    "constraint": "max_price", "docs_url": _DOCS_URL}
    message = f"No endpoints found for {model_id} matching your price limits (provider.max_price)."
    body = error_body(404, message, {"error_type": "not_found"}, availability=availability)
    return SimError(404, body, fallback=True)


def _invalid(field: str, expected: str) -> SimError:
    return errors.bad_request(f'Invalid provider preferences: "{field}" must be {expected}')


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _sort(value: Any) -> bool:
    if isinstance(value, str):
        return value in _SORTS
    return isinstance(value, Mapping) and value.get("by", "price") in _SORTS and value.get(
        "partition", "model") in ("model", "none")


def _preference(value: Any) -> bool:
    if _number(value) is not None:
        return True
    return isinstance(value, Mapping) and all(
        k in _PERCENTILES and _number(v) is not None for k, v in value.items())


def _number(value: Any) -> Decimal | None:
    """A non-negative number (or numeric string, as OpenRouter's schema allows), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() and number >= 0 else None
