"""A tier's provider profile in lyra.toml: OpenRouter's provider preferences, a price ceiling, exact ids.

`[tiers.NAME] provider = {...}` takes OpenRouter's `provider` object (reference section 2 and 8);
`service_tier` sits beside it. Decision tiers must name exact model ids: an alias such as
`~anthropic/claude-sonnet-latest` resolves to a different model as new ones ship, so a decision
made through it cannot be replayed.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from lyra.catalog.models import ModelInfo

_MAX_PRICE_USD = Decimal(1_000_000)
_MAX_RATE = Decimal(10**9)


def _exact(value: object) -> object:
    """A TOML integer is an exact amount too (5 -> Decimal(5)); a bool is not a number."""
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    return value


Price = Annotated[Decimal, BeforeValidator(_exact), Field(allow_inf_nan=False, ge=0, le=_MAX_PRICE_USD)]
Amount = Annotated[Decimal, BeforeValidator(_exact), Field(allow_inf_nan=False, ge=0, le=_MAX_RATE)]
Quantization = Literal["int4", "int8", "fp4", "mxfp4", "nvfp4", "fp6", "fp8", "mxfp8", "fp16", "bf16",
                       "fp32", "unknown"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class MaxPriceSettings(_Strict):
    """OpenRouter's `max_price`: USD per million prompt / completion tokens, per request, per image."""

    prompt: Price | None = None
    completion: Price | None = None
    request: Price | None = None
    image: Price | None = None


class Percentiles(_Strict):
    """A throughput (tokens/s) or latency (s) preference by percentile, as OpenRouter takes it."""

    p50: Amount | None = None
    p75: Amount | None = None
    p90: Amount | None = None
    p99: Amount | None = None


class ProviderSettings(_Strict):
    """OpenRouter's provider preferences for every request of a tier (2026 fields)."""

    order: list[str] | None = None
    allow_fallbacks: bool | None = None
    # None: sent as true whenever a request asks for structured output (a response_format).
    require_parameters: bool | None = None
    data_collection: Literal["allow", "deny"] | None = None
    zdr: bool | None = None
    enforce_distillable_text: bool | None = None
    only: list[str] | None = None
    ignore: list[str] | None = None
    quantizations: list[Quantization] | None = None
    sort: Literal["price", "throughput", "latency"] | None = None
    preferred_min_throughput: Amount | Percentiles | None = None
    preferred_max_latency: Amount | Percentiles | None = None
    max_price: MaxPriceSettings | None = None


def is_alias(model_id: str) -> bool:
    """True for ids OpenRouter resolves to whatever model is current: `~author/...`, `...-latest`, routers."""
    base = model_id.split(":", 1)[0]
    return "~" in model_id or base.endswith("-latest") or model_id.startswith("openrouter/")


def alias_error(where: str, model_id: str) -> str:
    return (f"{where}: {model_id!r} is an alias that OpenRouter resolves to a different model over time; "
            "a decision tier needs an exact model id (see `lyra models`), or its decisions cannot be "
            "replayed")


def price_excess(model: ModelInfo, ceiling: MaxPriceSettings) -> str | None:
    """Why `model`'s catalogue price is over `ceiling`, or None when it fits.

    The listed price and every price override that can apply to any prompt (an hours-of-day
    window) count; an override that starts above a prompt size is left to OpenRouter's own
    filter, which gets the same ceiling as `provider.max_price`.
    """
    always = [o for o in model.price_overrides if o.min_prompt_tokens == 0]
    prompt = max([model.prompt_per_m, *(o.prompt_per_m for o in always)])
    completion = max([model.completion_per_m, *(o.completion_per_m for o in always)])
    over = [f"{name} {price} > {limit}" for name, price, limit in (
        ("prompt", prompt, ceiling.prompt), ("completion", completion, ceiling.completion),
        ("request", model.request_usd, ceiling.request), ("image", model.image_usd, ceiling.image),
    ) if limit is not None and price is not None and price > limit]
    return ", ".join(over) or None


def describe_ceiling(ceiling: MaxPriceSettings) -> str:
    """`max_price = { prompt = 1, completion = 2 }`, as the configuration writes it."""
    parts = [f"{name} = {value}" for name, value in ceiling.model_dump(exclude_none=True).items()]
    return "max_price = { " + ", ".join(parts) + " }"


__all__ = ["MaxPriceSettings", "Percentiles", "ProviderSettings", "alias_error", "describe_ceiling",
           "is_alias", "price_excess"]
