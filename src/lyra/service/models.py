"""GET /v1/models and /v1/models/{id}: what a client may ask for, in OpenRouter's listing shape.

Entries are the `tier:` and `task:` names the client may use, then every catalogued model whose
tier the client is allowed, with OpenRouter's fields: `pricing` in USD per token as decimal strings,
`context_length`, `top_provider`, `created` (when the price was read off OpenRouter's listing).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from lyra.catalog.models import ModelInfo
from lyra.service.access import tier_of_model
from lyra.service.auth import Client
from lyra.service.errors import ApiError
from lyra.service.gateway import Gateway, gateway_of

_PER_TOKEN = Decimal(1_000_000)


async def list_models(request: Request) -> Response:
    gateway = gateway_of(request)
    client = await gateway.admit(request)
    return _json({"object": "list", "data": visible_models(gateway, client)})


async def get_model(request: Request) -> Response:
    gateway = gateway_of(request)
    client = await gateway.admit(request)
    wanted = str(request.path_params["model_id"])
    found = next((entry for entry in visible_models(gateway, client) if entry["id"] == wanted), None)
    if found is None:
        raise ApiError(404, f"model {wanted!r} is not one this client may use; GET /v1/models lists them",
                       param="model", code="model_not_found")
    return _json(found)


def visible_models(gateway: Gateway, client: Client) -> list[dict[str, Any]]:
    """The entries a client may use: its tiers and tasks, then the models those tiers allow."""
    lyra, settings = gateway.lyra, gateway.lyra.settings
    allowed = set(client.settings.tiers)
    data = [_entry(f"tier:{name}", "lyra", tier=name) for name in settings.tiers if name in allowed]
    data += [_entry(f"task:{name}", "lyra", tier=task.tier)
             for name, task in settings.tasks.items() if task.tier in allowed]
    data += [_model(info, tier) for info in sorted(lyra.catalog, key=lambda m: m.id)
             if not info.retired and (tier := tier_of_model(lyra, info.id)) in allowed]
    return data


def _entry(model_id: str, owner: str, **extra: Any) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": 0, "owned_by": owner, **extra}


def _model(info: ModelInfo, tier: str) -> dict[str, Any]:
    return {
        "id": info.id, "object": "model", "created": _created(info.price_seen),
        "owned_by": info.id.partition("/")[0], "name": info.id, "tier": tier,
        "context_length": info.context,
        "pricing": {"prompt": _per_token(info.prompt_per_m), "completion": _per_token(info.completion_per_m)},
        "top_provider": {"context_length": info.context, "max_completion_tokens": info.max_output},
        "knowledge_cutoff": info.knowledge_cutoff,
        "expiration_date": info.expiration_date,
    }


def _per_token(per_million: Decimal) -> str:
    """USD per token as OpenRouter writes it: a plain decimal string, "0.0000025"."""
    value = (per_million / _PER_TOKEN).normalize()
    return format(value, "f")


def _created(seen: str | None) -> int:
    """Epoch seconds of the month the price was read ("2026-08"), 0 when unknown."""
    if not seen:
        return 0
    try:
        return int(datetime.strptime(seen[:7], "%Y-%m").replace(tzinfo=UTC).timestamp())
    except ValueError:
        return 0


def _json(payload: dict[str, Any]) -> Response:
    return Response(orjson.dumps(payload), media_type="application/json")
