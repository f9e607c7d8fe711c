"""The model catalogue: prices, context sizes, tiers; load, look up and compare with /models."""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any

import orjson

from lyra.errors import ConfigError
from lyra.money import token_cost_nanos

TIERS = ("premium", "advanced", "specialized", "fast")
_VIRTUAL_SUFFIXES = (":nitro", ":floor", ":online", ":exacto", ":thinking", ":extended")


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """One model: its prices in USD per million tokens and its limits."""

    id: str
    tier: str
    prompt_per_m: Decimal
    completion_per_m: Decimal
    context: int
    max_output: int
    provider: str = "OpenRouter"
    knowledge_cutoff: str | None = None
    status: str = "active"
    successor: str | None = None
    price_seen: str | None = None

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


def _listing_price(entry: Mapping[str, Any]) -> tuple[Decimal, Decimal] | None:
    pricing = entry.get("pricing") or {}
    try:
        per_token_in = Decimal(str(pricing["prompt"]))
        per_token_out = Decimal(str(pricing["completion"]))
    except (KeyError, InvalidOperation):
        return None
    return (per_token_in * 1_000_000).normalize(), (per_token_out * 1_000_000).normalize()


def model_from_listing(entry: Mapping[str, Any]) -> ModelInfo | None:
    """A ModelInfo from one entry of OpenRouter's /models listing, or None if it has no price."""
    price = _listing_price(entry)
    model_id = entry.get("id")
    if price is None or not isinstance(model_id, str) or price[0] < 0 or price[1] < 0:
        return None
    top = entry.get("top_provider") or {}
    context = int(entry.get("context_length") or top.get("context_length") or 0)
    max_output = int(top.get("max_completion_tokens") or context or 4096)
    return ModelInfo(
        id=model_id,
        tier="unassigned",
        prompt_per_m=price[0],
        completion_per_m=price[1],
        context=context,
        max_output=max_output,
        knowledge_cutoff=entry.get("knowledge_cutoff"),
    )


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
            status=str(row.get("status", "active")),
            successor=row.get("successor"),
            price_seen=row.get("price_seen"),
        )
    except KeyError as exc:
        raise ConfigError(f"{source}: model {row.get('id')!r} lacks field {exc.args[0]!r}") from exc
    except InvalidOperation as exc:
        raise ConfigError(f"{source}: model {row.get('id')!r} has a price that is not a number") from exc


def load_catalog(path: Path | None = None) -> Catalog:
    """Load the curated catalogue shipped with Lyra, or a TOML file of the same shape."""
    if path is None:
        text = resources.files("lyra").joinpath("data/catalog.toml").read_text("utf-8")
        source = "lyra/data/catalog.toml"
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
    return Catalog(_model_from_toml(row, source) for row in rows)


def load_listing_cache(path: Path) -> list[ModelInfo]:
    """Models from a cached copy of the live /models listing (see `lyra models --refresh`)."""
    if not path.exists():
        return []
    try:
        payload = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"{path}: the cached model listing is not JSON; delete it and refresh") from exc
    entries = payload.get("data", []) if isinstance(payload, dict) else []
    return [m for m in (model_from_listing(e) for e in entries) if m is not None]
