"""Which tiers an endpoint can reach, checked against a client's allowed tiers."""

from __future__ import annotations

from collections.abc import Iterable

from lyra.config import Settings
from lyra.engine import Lyra
from lyra.service.auth import Client
from lyra.service.errors import ApiError, bad_request


def tier_of_model(lyra: Lyra, model: str) -> str:
    """The tier whose budget a model's calls are charged to: the configured tier, else the catalogue's."""
    for name, tier in lyra.settings.tiers.items():
        if model in tier.models:
            return name
    info = lyra.catalog.find(model)
    return info.tier if info is not None else "unknown"


def panel_tiers(lyra: Lyra, panel: str) -> set[str]:
    """Every tier a panel's members (and the cheaper panel it escalates from) are charged to."""
    settings = lyra.settings
    found = settings.panels.get(panel)
    if found is None:
        configured = ", ".join(settings.panels)
        raise bad_request("panel", f"panel: unknown panel {panel!r}; configured: {configured}")
    tiers = {tier_of_model(lyra, m.model) for m in found.members}
    if found.escalate_from is not None and found.escalate_from in settings.panels:
        tiers |= panel_tiers(lyra, found.escalate_from)
    return tiers


def task_tier(settings: Settings, task: str) -> str | None:
    found = settings.tasks.get(task)
    return found.tier if found is not None else None


def require_tiers(client: Client, tiers: Iterable[str], what: str) -> None:
    """403 when `what` would use a tier the client may not."""
    refused = sorted(set(tiers) - set(client.settings.tiers))
    if refused:
        raise ApiError(403, f"client {client.name!r} may not use tier {', '.join(map(repr, refused))}, which "
                            f"{what} needs (allowed: {', '.join(client.settings.tiers)})",
                       type="permission_error", code="tier_not_allowed")
