"""GET /v1/models: the catalogue, and the tier: and task: names a client may use, in OpenAI's list shape."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from lyra.catalog.models import ModelInfo
from lyra.service.gateway import gateway_of


async def list_models(request: Request) -> Response:
    gateway = gateway_of(request)
    client = await gateway.admit(request)
    settings = gateway.lyra.settings
    allowed = set(client.settings.tiers)
    data: list[dict[str, Any]] = []
    data += [_entry(f"tier:{name}", "lyra", tier=name) for name in settings.tiers if name in allowed]
    data += [_entry(f"task:{name}", "lyra", tier=task.tier)
             for name, task in settings.tasks.items() if task.tier in allowed]
    data += [_model(info) for info in sorted(gateway.lyra.catalog, key=lambda m: m.id) if not info.retired]
    return Response(orjson.dumps({"object": "list", "data": data}), media_type="application/json")


def _entry(model_id: str, owner: str, **extra: Any) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": 0, "owned_by": owner, **extra}


def _model(info: ModelInfo) -> dict[str, Any]:
    return _entry(
        info.id, info.id.partition("/")[0], tier=info.tier, context_length=info.context,
        max_output=info.max_output,
        pricing={"prompt_per_m_usd": str(info.prompt_per_m),
                 "completion_per_m_usd": str(info.completion_per_m)},
    )
