"""The model catalogue: prices, context sizes, tiers; load, look up and compare with /models."""

from __future__ import annotations

import logging
import time
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any

import orjson

from lyra.errors import ConfigError
from lyra.money import token_cost_nanos
from lyra.paths import listing_cache_path

TIERS = ("premium", "advanced", "specialized", "fast")
_VIRTUAL_SUFFIXES = (":nitro", ":floor", ":online", ":exacto", ":thinking", ":extended")


@dataclass(frozen=True, slots=True)
class PriceOverride:
    """A price that replaces the listed one from a prompt size on, or in some hours of the day.

    OpenRouter lists these as `pricing.overrides[]`; an entry with no `min_prompt_tokens` (an
    hours-of-day window) has `min_prompt_tokens = 0`, so a worst case always considers it.
    """

    min_prompt_tokens: int
    prompt_per_m: Decimal
    completion_per_m: Decimal
    audio_per_m: Decimal | None = None


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """One model: its prices in USD per million tokens and its limits.

    The optional fields price what is not a text token, for the worst case that the budget
    reserves (see lyra.estimate): `request_usd` per request, `image_usd` per input image,
    `image_tokens` the most prompt tokens one image can cost (models that bill images as
    tokens), `audio_tokens` / `file_tokens` the same for one audio or file part, `audio_per_m`
    the price of audio tokens, `reasoning_per_m` the price of internal reasoning tokens,
    `cache_write_per_m` the price of writing the prompt cache, `cache_read_per_m` of reading it
    (lyra.catalog.usage_cost prices a call's reported usage with them). None means unknown: a part that
    needs an unknown price cannot be bounded, and its request is refused.
    """

    id: str
    tier: str
    prompt_per_m: Decimal
    completion_per_m: Decimal
    context: int
    max_output: int
    provider: str = "OpenRouter"
    knowledge_cutoff: str | None = None
    expiration_date: str | None = None  # OpenRouter's `expiration_date`: the day the model goes away
    status: str = "active"
    successor: str | None = None
    price_seen: str | None = None
    request_usd: Decimal | None = None
    image_usd: Decimal | None = None
    image_tokens: int | None = None
    audio_per_m: Decimal | None = None
    audio_tokens: int | None = None
    file_tokens: int | None = None
    reasoning_per_m: Decimal | None = None
    cache_write_per_m: Decimal | None = None
    input_modalities: tuple[str, ...] = ("text",)
    price_overrides: tuple[PriceOverride, ...] = ()
    cache_read_per_m: Decimal | None = None  # pricing.input_cache_read: a prompt token read from the cache

    @property
    def is_free(self) -> bool:
        return self.id.endswith(":free") or (self.prompt_per_m == 0 and self.completion_per_m == 0)

    @property
    def retired(self) -> bool:
        return self.status == "retired"

    def cost_nanos(self, prompt_tokens: int, completion_tokens: int, *, round_up: bool = False) -> int:
        """Estimated cost of a call in nano-dollars at the listed prices."""
        return token_cost_nanos(prompt_tokens, self.prompt_per_m, round_up=round_up) + (
            token_cost_nanos(completion_tokens, self.completion_per_m, round_up=round_up)
        )


@dataclass(frozen=True, slots=True)
class CatalogCheck:
    """How configured model ids compare with a live /models listing."""

    retired: dict[str, list[str]] = field(default_factory=dict)  # id -> candidate replacements
    live: list[str] = field(default_factory=list)
    price_changes: dict[str, tuple[Decimal, Decimal, Decimal, Decimal]] = field(default_factory=dict)
    expiring: dict[str, str] = field(default_factory=dict)  # live id -> the expiration_date it lists


class Catalog:
    """An immutable set of models, looked up by id (virtual suffixes like :nitro are ignored)."""

    def __init__(self, models: Iterable[ModelInfo]) -> None:
        self._models: dict[str, ModelInfo] = {m.id: m for m in models}

    def __contains__(self, model_id: object) -> bool:
        return isinstance(model_id, str) and self.find(model_id) is not None

    def __iter__(self) -> Iterator[ModelInfo]:
        return iter(self._models.values())

    def __len__(self) -> int:
        return len(self._models)

    def find(self, model_id: str) -> ModelInfo | None:
        """The model for an id, or None; `:nitro`-style routing suffixes map to the base id."""
        found = self._models.get(model_id)
        if found is not None:
            return found
        for suffix in _VIRTUAL_SUFFIXES:
            if model_id.endswith(suffix):
                return self._models.get(model_id[: -len(suffix)])
        return None

    def get(self, model_id: str) -> ModelInfo:
        found = self.find(model_id)
        if found is None:
            raise KeyError(model_id)
        return found

    def in_tier(self, tier: str) -> list[ModelInfo]:
        return [m for m in self._models.values() if m.tier == tier]

    def merged(self, extra: Iterable[ModelInfo]) -> Catalog:
        """A catalogue with `extra` added; curated entries win over refreshed ones."""
        combined = {m.id: m for m in extra}
        combined.update(self._models)
        return Catalog(combined.values())

    def check_against(
        self, configured: Iterable[str], live_models: Iterable[Mapping[str, Any]]
    ) -> CatalogCheck:
        """Name configured ids that the live listing no longer serves, with candidates."""
        live = {str(m.get("id")): m for m in live_models if m.get("id")}
        result = CatalogCheck(live=sorted(live))
        for model_id in sorted(set(configured)):
            if model_id in live:
                expires = _listed_date(live[model_id].get("expiration_date"))
                if expires is not None:
                    result.expiring[model_id] = expires
                entry = self.find(model_id)
                live_price = _listing_price(live[model_id])
                if live_price is not None and entry is not None and (
                    (entry.prompt_per_m, entry.completion_per_m) != live_price
                ):
                    result.price_changes[model_id] = (
                        entry.prompt_per_m, entry.completion_per_m, *live_price
                    )
                continue
            result.retired[model_id] = self._candidates(model_id, live)
        return result

    def _candidates(self, model_id: str, live: Mapping[str, Any]) -> list[str]:
        entry = self.find(model_id)
        picks: list[str] = []
        if entry is not None and entry.successor and entry.successor in live:
            picks.append(entry.successor)
        author = model_id.split("/", 1)[0]
        tier = entry.tier if entry else None
        for m in self._models.values():
            if m.id in live and m.id not in picks and m.id.startswith(author + "/") and (
                tier is None or m.tier == tier
            ):
                picks.append(m.id)
        return picks[:3]


def _listed_date(value: Any) -> str | None:
    """A listing's date ("2026-12-31") as written, or None when absent or not a date."""
    if isinstance(value, date):  # a TOML date
        return value.isoformat()
    if not isinstance(value, str):
        return None
    try:
        date.fromisoformat(value[:10])
    except ValueError:
        return None
    return value[:10]


def _listing_price(entry: Mapping[str, Any]) -> tuple[Decimal, Decimal] | None:
    pricing = entry.get("pricing") or {}
    try:
        per_token_in = Decimal(str(pricing["prompt"]))
        per_token_out = Decimal(str(pricing["completion"]))
    except (KeyError, InvalidOperation):
        return None
    return (per_token_in * 1_000_000).normalize(), (per_token_out * 1_000_000).normalize()


def _per_million(value: Any) -> Decimal | None:
    """A per-token listing price as USD per 1M tokens; None when absent, zero or not a number."""
    per_unit = _listed_usd(value)
    return None if per_unit is None else (per_unit * 1_000_000).normalize()


def _listed_usd(value: Any) -> Decimal | None:
    """A listing price as it stands (per request, per image); None when absent, zero or not a number.

    Mid-2025 listings carry `"image": "0"` even for models that bill images as prompt tokens, so
    a zero says nothing about the cost and is read as unknown.
    """
    if value is None or isinstance(value, bool):
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return None
    return amount.normalize() if amount.is_finite() and amount > 0 else None


def _listing_overrides(
    pricing: Mapping[str, Any], base: tuple[Decimal, Decimal]
) -> tuple[PriceOverride, ...]:
    found: list[PriceOverride] = []
    for row in pricing.get("overrides") or ():
        if not isinstance(row, Mapping):
            continue
        try:
            min_prompt = int(row.get("min_prompt_tokens") or 0)
        except (TypeError, ValueError):
            min_prompt = 0  # unreadable condition: assume it always applies
        found.append(PriceOverride(
            min_prompt_tokens=max(0, min_prompt),
            prompt_per_m=_per_million(row.get("prompt")) or base[0],
            completion_per_m=_per_million(row.get("completion")) or base[1],
            audio_per_m=_per_million(row.get("audio")),
        ))
    return tuple(found)


def _listing_modalities(entry: Mapping[str, Any]) -> tuple[str, ...]:
    architecture = entry.get("architecture") or {}
    listed = architecture.get("input_modalities") if isinstance(architecture, Mapping) else None
    if not isinstance(listed, list):
        return ("text",)
    return tuple(sorted({str(m) for m in listed} | {"text"}))


def _listing_image_usd(pricing: Mapping[str, Any], prompt_per_m: Decimal) -> Decimal | None:
    image = _listed_usd(pricing.get("image"))
    # The 2026-08 listing gives `image` equal to the per-token prompt price for every model that
    # has one (all Gemini, which bills images as prompt tokens): that is a token price, not the
    # price of an image, so it cannot bound an image's cost.
    if image is None or (image * 1_000_000).normalize() == prompt_per_m:
        return None
    return image


def model_from_listing(entry: Mapping[str, Any]) -> ModelInfo | None:
    """A ModelInfo from one entry of OpenRouter's /models listing, or None if it has no price."""
    price = _listing_price(entry)
    model_id = entry.get("id")
    if price is None or not isinstance(model_id, str) or price[0] < 0 or price[1] < 0:
        return None
    top = entry.get("top_provider") or {}
    context = int(entry.get("context_length") or top.get("context_length") or 0)
    max_output = int(top.get("max_completion_tokens") or context or 4096)
    pricing = entry.get("pricing") or {}
    write = [p for p in (_per_million(pricing.get("input_cache_write")),
                         _per_million(pricing.get("input_cache_write_1h"))) if p is not None]
    return ModelInfo(
        id=model_id,
        tier="unassigned",
        prompt_per_m=price[0],
        completion_per_m=price[1],
        context=context,
        max_output=max_output,
        knowledge_cutoff=entry.get("knowledge_cutoff"),
        expiration_date=_listed_date(entry.get("expiration_date")),
        request_usd=_listed_usd(pricing.get("request")),
        image_usd=_listing_image_usd(pricing, price[0]),
        audio_per_m=_per_million(pricing.get("audio")),
        reasoning_per_m=_per_million(pricing.get("internal_reasoning")),
        cache_write_per_m=max(write) if write else None,
        input_modalities=_listing_modalities(entry),
        price_overrides=_listing_overrides(pricing, price),
        cache_read_per_m=_per_million(pricing.get("input_cache_read")),
    )


_MODALITIES = frozenset({"text", "image", "file", "audio", "video"})


def _optional_decimal(row: Mapping[str, Any], name: str) -> Decimal | None:
    value = row.get(name)
    if value is None:
        return None
    amount = Decimal(str(value))
    if not amount.is_finite() or amount < 0:
        raise InvalidOperation(name)
    return amount


def _optional_count(row: Mapping[str, Any], name: str, source: str) -> int | None:
    value = row.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{source}: model {row.get('id')!r}: {name} must be a whole number >= 0")
    return value


def _modalities_from_toml(row: Mapping[str, Any], source: str) -> tuple[str, ...]:
    listed = row.get("input_modalities", ["text"])
    if not isinstance(listed, list) or not set(map(str, listed)) <= _MODALITIES:
        raise ConfigError(f"{source}: model {row.get('id')!r}: input_modalities must be a list of "
                          f"{', '.join(sorted(_MODALITIES))}")
    return tuple(sorted(set(map(str, listed)) | {"text"}))


def _overrides_from_toml(row: Mapping[str, Any], source: str) -> tuple[PriceOverride, ...]:
    found: list[PriceOverride] = []
    for item in row.get("price_override", []):
        found.append(PriceOverride(
            min_prompt_tokens=_optional_count(item, "min_prompt_tokens", source) or 0,
            prompt_per_m=Decimal(str(item["prompt_per_m"])),
            completion_per_m=Decimal(str(item["completion_per_m"])),
            audio_per_m=_optional_decimal(item, "audio_per_m"),
        ))
    return tuple(found)


def _model_from_toml(row: Mapping[str, Any], source: str) -> ModelInfo:
    try:
        tier = str(row["tier"])
        if tier not in TIERS:
            raise ConfigError(
                f"{source}: model {row.get('id')!r}: unknown tier {tier!r}; use one of {', '.join(TIERS)}"
            )
        return ModelInfo(
            id=str(row["id"]),
            tier=tier,
            prompt_per_m=Decimal(str(row["prompt_per_m"])),
            completion_per_m=Decimal(str(row["completion_per_m"])),
            context=int(row["context"]),
            max_output=int(row["max_output"]),
            provider=str(row.get("provider", "OpenRouter")),
            knowledge_cutoff=row.get("knowledge_cutoff"),
            expiration_date=_listed_date(row.get("expiration_date")),
            status=str(row.get("status", "active")),
            successor=row.get("successor"),
            price_seen=row.get("price_seen"),
            request_usd=_optional_decimal(row, "request_usd"),
            image_usd=_optional_decimal(row, "image_usd"),
            image_tokens=_optional_count(row, "image_tokens", source),
            audio_per_m=_optional_decimal(row, "audio_per_m"),
            audio_tokens=_optional_count(row, "audio_tokens", source),
            file_tokens=_optional_count(row, "file_tokens", source),
            reasoning_per_m=_optional_decimal(row, "reasoning_per_m"),
            cache_write_per_m=_optional_decimal(row, "cache_write_per_m"),
            input_modalities=_modalities_from_toml(row, source),
            price_overrides=_overrides_from_toml(row, source),
            cache_read_per_m=_optional_decimal(row, "cache_read_per_m"),
        )
    except KeyError as exc:
        raise ConfigError(f"{source}: model {row.get('id')!r} lacks field {exc.args[0]!r}") from exc
    except InvalidOperation as exc:
        raise ConfigError(f"{source}: model {row.get('id')!r} has a price that is not a number >= 0") from exc


def load_catalog(path: Path | None = None, *, listing: Path | bool = True) -> Catalog:
    """The curated catalogue shipped with Lyra (or a TOML file of the same shape), widened by the
    cached live listing: any model OpenRouter lists can then be named, priced and budgeted.

    `listing`: True reads the cache `lyra models --refresh` writes (for the shipped catalogue
    only), False none, a path that file. Curated entries win over listed ones of the same id.
    """
    if path is None:
        text = resources.files("lyra").joinpath("data/catalog.toml").read_text("utf-8")
        source = "lyra/data/catalog.toml"
        listing = listing_cache_path() if listing is True else listing
    else:
        try:
            text = path.read_text("utf-8")
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the catalogue ({exc.strerror})") from exc
        source = str(path)
    try:
        rows = tomllib.loads(text).get("model", [])
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML ({exc})") from exc
    curated = [_model_from_toml(row, source) for row in rows]
    known = {m.id for m in curated}
    listed = _cached_listing(listing, explicit=path is not None) if isinstance(listing, Path) else []
    return Catalog([*curated, *(m for m in listed if m.id not in known)])


def _cached_listing(path: Path, *, explicit: bool) -> list[ModelInfo]:
    """The cache's models; a damaged default cache is set aside with a warning, not fatal."""
    try:
        return load_listing_cache(path)
    except ConfigError as exc:
        if explicit:
            raise
        logging.getLogger("lyra.catalog.models").warning("%s; only the curated catalogue is used", exc)
        return []


def save_listing_cache(entries: list[dict[str, Any]], path: Path, *, source: str) -> None:
    """Write a live /models listing where `load_catalog` finds it (atomically: a reader never sees half)."""
    payload = {"source": source, "fetched_at": time.time(), "data": entries}
    partial = path.with_suffix(".json.partial")
    partial.write_bytes(orjson.dumps(payload))
    partial.replace(path)


def load_listing_cache(path: Path) -> list[ModelInfo]:
    """Models from a cached copy of the live /models listing (`lyra models --refresh` writes it)."""
    if not path.exists():
        return []
    try:
        payload = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"{path}: the cached model listing is not JSON; delete it and refresh") from exc
    entries = payload.get("data", []) if isinstance(payload, dict) else []
    return [m for m in (model_from_listing(e) for e in entries) if m is not None]
