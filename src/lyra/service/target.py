"""What a request's `model` names: a catalogue id, `tier:<name>` or `task:<name>`; and who may use it."""

from __future__ import annotations

from dataclasses import dataclass

from lyra.catalog.models import Catalog, ModelInfo
from lyra.config import Settings
from lyra.service.auth import Client
from lyra.service.errors import ApiError, bad_request


@dataclass(frozen=True, slots=True)
class Target:
    """Where a request routes: exactly one of task, tier or model is set."""

    task: str | None = None
    tier: str | None = None
    model: str | None = None


class Targets:
    """Resolves `model` strings and checks them against a client's allowed tiers (cached)."""

    def __init__(self, settings: Settings, catalog: Catalog) -> None:
        self._settings = settings
        self._catalog = catalog
        self._resolved: dict[str, tuple[Target, str, ModelInfo | None]] = {}

    def resolve(self, name: str, client: Client, max_tokens: int | None) -> Target:
        """The target for `name`, or 400 (unknown, naming `model`), 403 (tier not allowed)."""
        found = self._resolved.get(name)
        if found is None:
            found = self._resolve(name)
            self._resolved[name] = found
        target, tier, info = found
        if tier not in client.settings.tiers:
            raise ApiError(403, f"model: client {client.name!r} may not use tier {tier!r} (allowed: "
                                f"{', '.join(client.settings.tiers)})", type="permission_error",
                           param="model", code="tier_not_allowed")
        if info is not None and max_tokens is not None and max_tokens > info.max_output:
            raise bad_request("max_tokens", f"max_tokens: {max_tokens} is more than {info.id} can produce "
                                            f"({info.max_output})")
        return target

    def _resolve(self, name: str) -> tuple[Target, str, ModelInfo | None]:
        s = self._settings
        kind, sep, rest = name.partition(":")
        if sep and kind == "tier":
            if rest not in s.tiers:
                raise _unknown(name, f"unknown tier {rest!r}; configured: {', '.join(s.tiers)}")
            return Target(tier=rest), rest, None
        if sep and kind == "task":
            task = s.tasks.get(rest)
            if task is None:
                raise _unknown(name, f"unknown task {rest!r}; configured: {', '.join(s.tasks)}")
            return Target(task=rest), task.tier, None
        info = self._catalog.find(name)
        if info is None:
            raise _unknown(name, f"unknown model {name!r}: use a catalogue id (GET /v1/models), "
                                 "tier:<name> or task:<name>")
        if info.retired:
            raise _unknown(name, f"model {name!r} is retired; use {info.successor or 'another model'}")
        return Target(model=name), self._tier_of(info), info

    def _tier_of(self, info: ModelInfo) -> str:
        """The tier whose budget a model's calls are charged to (as the budget governor decides)."""
        for tier_name, tier in self._settings.tiers.items():
            if info.id in tier.models:
                return tier_name
        return info.tier


def _unknown(name: str, message: str) -> ApiError:
    return bad_request("model", f"model: {message}", code="model_not_found")
