"""A tier's profile at request time: the provider preferences sent, the service tier, the price ceiling.

The merge rule, between the tier's `provider` profile and a caller's own `provider` object:

- privacy and cost bounds take the stricter of the two: `zdr`, `enforce_distillable_text` and
  `require_parameters` are true if either says so; `data_collection` is "deny" if either says so;
  each `max_price` part is the lower of the two; `ignore` is the union of both lists; `only` and
  `quantizations` are the profile's where it sets them. A caller can tighten a pinned tier, never
  loosen it (zdr off, data_collection "allow", a higher ceiling).
- routing preferences (`order`, `sort`, `allow_fallbacks`, `preferred_min_throughput`,
  `preferred_max_latency`) are the caller's where it gives them, else the profile's.
- a request for structured output (any `response_format`) on a tier with a provider profile is
  sent with `require_parameters: true`, unless the profile sets `require_parameters = false`:
  OpenRouter otherwise drops a parameter an endpoint does not support, schema included.
- the profile's `service_tier` is pinned.

The tier's own `max_price` is also enforced here: a candidate whose catalogue price is over it is
never tried (`RoutePlan` -> `within_ceiling`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from lyra.catalog.models import ModelInfo
from lyra.config.provider import ProviderSettings, describe_ceiling, price_excess
from lyra.config.schema import TierSettings

_STRICTER_TRUE = ("zdr", "enforce_distillable_text", "require_parameters")
_PINNED = ("only", "quantizations")
_PRICE_PARTS = ("prompt", "completion", "request", "image")


@dataclass(frozen=True, slots=True)
class TierProfile:
    """One tier's pinned provider preferences and service tier, from `[tiers.NAME]`."""

    tier: str
    provider: ProviderSettings | None = None
    service_tier: str | None = None
    # The profile's own preferences as sent, and what a caller without a `provider` is sent
    # (structured or not): worked out once, not on every attempt. Read-only.
    _pinned: dict[str, Any] = field(init=False, repr=False, compare=False)
    _plain: dict[bool, dict[str, Any] | None] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        pinned = self.provider.model_dump(exclude_none=True) if self.provider is not None else {}
        object.__setattr__(self, "_pinned", pinned)
        object.__setattr__(self, "_plain", {structured: self._merge(None, structured=structured)
                                            for structured in (False, True)})

    @classmethod
    def of(cls, name: str, tier: TierSettings) -> TierProfile | None:
        """The tier's profile, or None when it sets neither `provider` nor `service_tier`."""
        if tier.provider is None and tier.service_tier is None:
            return None
        return cls(name, tier.provider, tier.service_tier)

    def provider_for(self, caller: Mapping[str, Any] | None, *,
                     structured: bool) -> Mapping[str, Any] | None:
        """The `provider` object to send: the caller's merged under the profile (module docstring).

        Without a caller's own object the answer is the one worked out at construction (read-only)."""
        if not caller:
            return self._plain[structured]
        return self._merge(caller, structured=structured)

    def _merge(self, caller: Mapping[str, Any] | None, *, structured: bool) -> dict[str, Any] | None:
        merged: dict[str, Any] = dict(caller or {})
        if self.provider is None:
            return merged or None
        for name, value in self._pinned.items():
            if name in _STRICTER_TRUE:
                merged[name] = bool(value) or merged.get(name) is True
            elif name == "data_collection":
                merged[name] = "deny" if "deny" in (value, merged.get(name)) else value
            elif name == "max_price":
                merged[name] = _lower_prices(value, merged.get(name))
            elif name == "ignore":
                theirs = merged.get(name)
                extra = [p for p in theirs if isinstance(p, str)] if isinstance(theirs, list) else []
                merged[name] = list(dict.fromkeys([*value, *extra]))
            elif name in _PINNED or name not in merged:
                merged[name] = value
        if structured and self.provider.require_parameters is not False:
            merged["require_parameters"] = True
        return merged

    def ceiling_excess(self, model: ModelInfo) -> str | None:
        """Why `model` is over this tier's `max_price`, or None (no ceiling, or it fits)."""
        ceiling = self.provider.max_price if self.provider is not None else None
        return price_excess(model, ceiling) if ceiling is not None else None

    def refusal(self, over: list[tuple[str, str]]) -> str:
        """The one line for a request none of whose candidates fits under the ceiling."""
        ceiling = self.provider.max_price if self.provider is not None else None
        shown = describe_ceiling(ceiling) if ceiling is not None else "max_price"
        example = f" ({over[0][0]}: {over[0][1]})" if over else ""
        return (f"tier {self.tier}: every candidate model costs more than its price ceiling {shown} "
                f"(USD per million tokens){example}; raise tiers.{self.tier}.provider.max_price or "
                "route to a cheaper model")


def _lower_prices(pinned: Mapping[str, Any], caller: Any) -> dict[str, Any]:
    """Each part of `max_price` at the lower of the two; a caller's non-number is ignored."""
    lowered = dict(pinned)
    if not isinstance(caller, Mapping):
        return lowered
    for part in _PRICE_PARTS:
        theirs = _decimal(caller.get(part))
        if theirs is None:
            continue
        ours = lowered.get(part)
        lowered[part] = theirs if ours is None or theirs < ours else ours
    return lowered


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() and number >= 0 else None


def for_wire(value: Any) -> Any:
    """A provider object ready for orjson: each Decimal as the exact JSON number it is, never a float."""
    if isinstance(value, Decimal):
        return orjson.Fragment(format(value, "f").encode())
    if isinstance(value, Mapping):
        return {k: for_wire(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [for_wire(v) for v in value]
    return value


def for_record(value: Any) -> Any:
    """A provider object as JSON data for a ledger or audit record: Decimals as their exact text."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, Mapping):
        return {str(k): for_record(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [for_record(v) for v in value]
    return value


def profile_record(*, tier: str | None, model: str, served_model: str | None,
                   provider: Mapping[str, Any] | None, service_tier: str | None) -> dict[str, Any]:
    """What a decision records of one call: the exact model, the preferences sent and a fingerprint.

    The fingerprint (12 hex digits) is the same for two calls exactly when the model id, the
    provider object and the service tier sent were the same.
    """
    sent = {"model": model, "provider": for_record(provider) if provider else None,
            "service_tier": service_tier}
    digest = hashlib.sha256(orjson.dumps(sent, option=orjson.OPT_SORT_KEYS)).hexdigest()[:12]
    return {"tier": tier, **sent, "served_model": served_model, "fingerprint": digest}


__all__ = ["TierProfile", "for_record", "for_wire", "profile_record"]
