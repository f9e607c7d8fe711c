"""Routing policy: task -> tier -> ordered candidate models and keys."""

from __future__ import annotations

from dataclasses import dataclass, replace

from lyra.catalog.models import Catalog, ModelInfo
from lyra.config import Settings
from lyra.config.upstreams import price_refusal
from lyra.errors import ConfigError, NoModelAvailable
from lyra.routing.profiles import TierProfile
from lyra.types import CompletionRequest


@dataclass(frozen=True, slots=True)
class RoutePlan:
    """Which models to try in which order, with which keys and per-attempt timeout."""

    task: str | None
    tier: str | None
    models: tuple[ModelInfo, ...]
    keys: tuple[str, ...]
    round_robin: bool
    attempt_timeout_s: float
    max_tokens: int | None
    temperature: float | None
    profile: TierProfile | None = None  # the tier's provider preferences, service tier and price ceiling

    def within_ceiling(self) -> tuple[RoutePlan, list[tuple[str, str]]]:
        """This plan without the models over the profile's `max_price`, and why each one was left out."""
        if self.profile is None:
            return self, []
        over = [(m, why) for m in self.models if (why := self.profile.ceiling_excess(m)) is not None]
        if not over:
            return self, []
        dropped = {m.id for m, _ in over}
        kept = tuple(m for m in self.models if m.id not in dropped)
        return replace(self, models=kept), [(m.id, why) for m, why in over]


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


class RoutePolicy:
    """Turns a request into a RoutePlan from the configuration and the catalogue."""

    def __init__(self, settings: Settings, catalog: Catalog) -> None:
        self._settings = settings
        self._catalog = catalog
        self._plans: dict[tuple[str | None, ...], RoutePlan] = {}

    def plan(self, request: CompletionRequest) -> RoutePlan:
        key = (request.task, request.tier, request.model, request.key, *(request.models or ()))
        cached = self._plans.get(key)
        if cached is None:
            cached = self._build(request)
            if request.key is not None:
                if request.key not in self._settings.keys:
                    known = ", ".join(self._settings.keys)
                    raise ConfigError(f"unknown key {request.key!r}; configured: {known}")
                keys = (request.key, *(k for k in cached.keys if k != request.key))
                cached = replace(cached, keys=keys, round_robin=False)
            if (tier := cached.tier) is not None:
                cached = replace(cached, profile=TierProfile.of(tier, self._settings.tiers[tier]))
            self._plans[key] = cached
        if request.max_tokens is None and request.temperature is None:
            return cached
        return replace(cached,
                       max_tokens=request.max_tokens if request.max_tokens is not None else cached.max_tokens,
                       temperature=request.temperature if request.temperature is not None
                       else cached.temperature)

    def _build(self, request: CompletionRequest) -> RoutePlan:
        s = self._settings
        if request.task is not None:
            task = s.tasks.get(request.task)
            if task is None:
                raise ConfigError(f"unknown task {request.task!r}; configured: {', '.join(s.tasks)}")
            tier = s.tiers[task.tier]
            models = _asked(request) or _dedupe([*task.models, *tier.models])
            keys = _dedupe([*task.keys, *tier.keys])
            return RoutePlan(request.task, task.tier, self._models(models), tuple(keys),
                             tier.selection == "round_robin", tier.timeout_s, task.max_tokens,
                             task.temperature)
        if request.tier is not None:
            tier_cfg = s.tiers.get(request.tier)
            if tier_cfg is None:
                raise ConfigError(f"unknown tier {request.tier!r}; configured: {', '.join(s.tiers)}")
            models = _asked(request) or list(tier_cfg.models)
            return RoutePlan(None, request.tier, self._models(models), tuple(tier_cfg.keys),
                             tier_cfg.selection == "round_robin", tier_cfg.timeout_s, None, None)
        asked = _asked(request)
        if not asked:
            raise ConfigError("a request needs a task, a tier or a model")
        infos = self._models(asked)
        info = infos[0]
        tier_name = info.tier if info.tier in s.tiers else self._tier_listing(info.id)
        if tier_name is None:
            return RoutePlan(None, None, infos, tuple(s.keys), False, s.retry.deadline_s, None,
                             None)
        tier = s.tiers[tier_name]
        tier_keys = (tuple(tier.keys) if len(infos) == 1
                     else tuple(_dedupe([*tier.keys, *self._keys_of(infos)])))
        return RoutePlan(None, tier_name, infos, tier_keys,
                         tier.selection == "round_robin", tier.timeout_s, None, None)

    def _keys_of(self, infos: tuple[ModelInfo, ...]) -> list[str]:
        """The keys of the tiers the fallback models belong to, after the first model's tier's."""
        keys: list[str] = []
        for info in infos:
            name = info.tier if info.tier in self._settings.tiers else self._tier_listing(info.id)
            keys += self._settings.tiers[name].keys if name is not None else []
        return keys

    def _tier_listing(self, model_id: str) -> str | None:
        for name, tier in self._settings.tiers.items():
            if model_id in tier.models:
                return name
        return None

    def _models(self, ids: list[str]) -> tuple[ModelInfo, ...]:
        found: list[ModelInfo] = []
        for model_id in ids:
            info = self._catalog.find(model_id)
            if info is None and (refusal := price_refusal(model_id, self._settings.upstreams,
                                                          listing_read=True)) is not None:
                raise NoModelAvailable(refusal)
            if info is None:
                raise NoModelAvailable(
                    f"model {model_id!r} is not in the catalogue, so it cannot be priced or "
                    "budgeted; cache OpenRouter's /models listing or pick a catalogued id"
                )
            found.append(info)
        return tuple(found)


def _asked(request: CompletionRequest) -> list[str]:
    """The models a request names, in order: `model` then its `models` fallback list (OpenRouter's)."""
    return _dedupe([*([request.model] if request.model else []), *(request.models or ())])
