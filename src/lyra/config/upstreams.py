"""`[upstreams.NAME]`: OpenAI-compatible endpoints besides OpenRouter, and their `NAME:model-id` ids.

A fine-tuned or self-hosted model is served elsewhere (OpenAI, Together, Fireworks, vLLM, Ollama, a
llama.cpp server) behind the same chat-completions API. Such an upstream has its own base URL, its own
keys (names of `[keys.*]` entries whose secrets come from the environment; none for a local server),
its own prices (or those its `/models` listing gives) and its own daily cap. OpenRouter stays the
upstream of every id without a configured `NAME:` prefix.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from lyra.catalog.models import Catalog, ModelInfo
from lyra.errors import ConfigError
from lyra.redact import mask_url

_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
_MAX_USD = Decimal(1_000_000_000)


def _exact(value: object) -> object:
    """A TOML integer is an exact amount too (0 -> Decimal(0)); a bool is not a number."""
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    return value


# USD per million tokens, exact; 0 is a real price (a self-hosted model costs nothing per token).
PricePerM = Annotated[Decimal, BeforeValidator(_exact), Field(allow_inf_nan=False, ge=0, le=_MAX_USD)]
DailyUsd = Annotated[Decimal, BeforeValidator(_exact), Field(allow_inf_nan=False, gt=0, le=_MAX_USD)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class UpstreamModel(_Strict):
    """One model an upstream serves, with its prices: `id` as the upstream names it (no prefix)."""

    id: str = Field(min_length=1, max_length=200)
    prompt_per_m_usd: PricePerM
    completion_per_m_usd: PricePerM
    context: int = Field(32_768, gt=0, le=100_000_000)
    max_output: int | None = Field(None, gt=0, le=100_000_000)  # default: the context size

    @field_validator("id")
    @classmethod
    def _printable(cls, value: str) -> str:
        if not value.isprintable() or any(c.isspace() for c in value):
            raise ValueError("must be a model id without spaces")
        return value


class UpstreamSettings(_Strict):
    """One OpenAI-compatible endpoint: where it is, its keys, its prices and its daily cap."""

    base_url: str
    keys: list[str] = Field(default_factory=list)  # [keys.*] names; none: the server needs no key
    daily_usd: DailyUsd | None = None
    models: list[UpstreamModel] = Field(default_factory=list)
    # Read the prices of models not listed above from the upstream's GET /models when the engine
    # starts (OpenRouter-shaped `pricing`, USD per token); a model it does not price is refused.
    prices_from_models: bool = False

    @field_validator("base_url")
    @classmethod
    def _url(cls, value: str) -> str:
        from lyra.config.schema import check_http_url  # schema imports this module

        return check_http_url(value)

    @field_validator("models")
    @classmethod
    def _unique(cls, value: list[UpstreamModel]) -> list[UpstreamModel]:
        seen: set[str] = set()
        for i, model in enumerate(value):
            if model.id in seen:
                raise ValueError(f"models[{i}]: {model.id!r} is listed twice")
            seen.add(model.id)
        return value

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            yield name, mask_url(value) if name == "base_url" else value

    def priced(self, model_id: str) -> UpstreamModel | None:
        """The configured entry of a model id (without the prefix), or None."""
        return next((m for m in self.models if m.id == model_id), None)


def keyless_key(upstream: str) -> str:
    """The pseudo key name an upstream with no key (a local server) is called with, as the ledger shows it."""
    return f"{upstream}:keyless"


def split_model(model_id: str, upstreams: Mapping[str, object]) -> tuple[str, str] | None:
    """(upstream, the id it is sent as) for `NAME:model-id` with a configured NAME; None for OpenRouter's.

    OpenRouter's own ids carry a `/` before any `:` (`openai/gpt-oss-20b:free`), so they never
    read as a prefix.
    """
    name, colon, rest = model_id.partition(":")
    if not colon or not rest or name not in upstreams:
        return None
    return name, rest


def check_upstream_names(upstreams: Mapping[str, UpstreamSettings], keys: Mapping[str, object],
                         openrouter_keys: Mapping[str, list[str]]) -> None:
    """Refuse a bad upstream name, an unknown key, or a key shared with OpenRouter or another upstream.

    `openrouter_keys` maps a field (`tiers.fast.keys`) to the keys it names: an upstream's key
    is its own, so that its secret is never sent to OpenRouter (nor OpenRouter's to it).
    """
    owner: dict[str, str] = {}
    for name, upstream in upstreams.items():
        if not _NAME.match(name) or name == "openrouter":
            raise ValueError(f"upstreams.{name}: not an upstream name (lower-case letters, digits, - and _, "
                             "starting with a letter; not 'openrouter', the default upstream)")
        for i, key in enumerate(upstream.keys):
            if key not in keys:
                raise ValueError(f"upstreams.{name}.keys[{i}]: unknown key {key!r}; add a [keys.{key}] "
                                 "entry (its env names the variable holding the secret)")
            if key in owner:
                raise ValueError(f"upstreams.{name}.keys[{i}]: key {key!r} is upstream "
                                 f"{owner[key]!r}'s already; an upstream's key is its own")
            owner[key] = name
    for where, names in openrouter_keys.items():
        for i, key in enumerate(names):
            if key in owner:
                raise ValueError(f"{where}[{i}]: key {key!r} belongs to upstream {owner[key]!r}; "
                                 "OpenRouter's requests never use it (the upstream's models do)")


def price_refusal(model_id: str, upstreams: Mapping[str, UpstreamSettings], *,
                  listing_read: bool = False) -> str | None:
    """Why a `NAME:model-id` cannot be priced (one line naming the model and its upstream), or None.

    Before the engine starts, a model left to the upstream's /models listing is accepted;
    `listing_read` says the listing has been read and the model was not in it.
    """
    split = split_model(model_id, upstreams)
    if split is None:
        return None
    name, sent = split
    upstream = upstreams[name]
    if upstream.priced(sent) is not None or (upstream.prices_from_models and not listing_read):
        return None
    listing = " nor by its /models listing" if upstream.prices_from_models else ""
    return (f"model {model_id!r} has no known price on upstream {name!r} (not in upstreams.{name}.models"
            f"{listing}); add {{ id = {sent!r}, prompt_per_m_usd = ..., completion_per_m_usd = ... }} "
            f"to upstreams.{name}.models (0 and 0 for a self-hosted model)")


def catalog_models(upstreams: Mapping[str, UpstreamSettings]) -> list[ModelInfo]:
    """The configured upstream models as catalogue entries, ids prefixed `NAME:`."""
    found: list[ModelInfo] = []
    for name, upstream in upstreams.items():
        for m in upstream.models:
            found.append(ModelInfo(
                id=f"{name}:{m.id}", tier="unassigned", prompt_per_m=m.prompt_per_m_usd,
                completion_per_m=m.completion_per_m_usd, context=m.context,
                max_output=m.max_output or m.context, provider=name,
                # Nothing beyond text can be priced on an upstream of Lyra's own choosing.
                input_modalities=("text",)))
    return found


def priced_catalog(catalog: Catalog, upstreams: Mapping[str, UpstreamSettings],
                   model_ids: Iterable[str]) -> Catalog:
    """`catalog` with the configured upstream models, for a command that prices them without starting
    an engine (`lyra plan`); ConfigError naming the first of `model_ids` left without a price (one
    only its upstream's /models would price: that listing is read by a started engine)."""
    merged = catalog.merged(catalog_models(upstreams))
    for model_id in model_ids:
        if split_model(model_id, upstreams) is not None and merged.find(model_id) is None:
            raise ConfigError(price_refusal(model_id, upstreams, listing_read=True) or model_id)
    return merged


__all__ = [
    "UpstreamModel",
    "UpstreamSettings",
    "catalog_models",
    "check_upstream_names",
    "keyless_key",
    "price_refusal",
    "priced_catalog",
    "split_model",
]
