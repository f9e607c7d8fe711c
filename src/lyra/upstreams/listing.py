"""Prices from an upstream's own GET /models, for `prices_from_models = true`."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from lyra.catalog.models import ModelInfo, model_from_listing
from lyra.config import Secret
from lyra.errors import UpstreamError
from lyra.log import get_logger
from lyra.upstreams.pool import Upstreams

log = get_logger("lyra.upstreams")


async def listed_models(upstreams: Upstreams, secrets: Mapping[str, Secret], *,
                        timeout_s: float = 10.0) -> list[ModelInfo]:
    """The models each upstream with `prices_from_models` prices in its /models, ids prefixed `NAME:`.

    Only entries with an OpenRouter-shaped `pricing` (USD per token, as Together's and OpenRouter's
    listings give) count; an entry without one is no price, and an upstream whose listing cannot be
    read is logged and left unpriced: a model of it that is not configured is then refused.
    Configured prices win over listed ones.
    """
    found: list[ModelInfo] = []
    for upstream in upstreams:
        if not upstream.settings.prices_from_models:
            continue
        secret = secrets.get(upstream.keys[0])
        try:
            payload = await upstream.transport.wire.get_json(
                "/models", api_key=secret.reveal() if secret else None, timeout_s=timeout_s)
        except UpstreamError as exc:
            log.warning("upstream %s: its /models listing cannot be read (%s); its unconfigured models "
                        "have no price and are refused", upstream.name, exc.kind)
            continue
        configured = {m.id for m in upstream.settings.models}
        data = payload.get("data")
        for entry in data if isinstance(data, list) else []:
            if not isinstance(entry, dict):
                continue
            info = model_from_listing(entry)
            if info is None or info.id in configured:
                continue
            found.append(dataclasses.replace(info, id=f"{upstream.name}:{info.id}", provider=upstream.name))
    return found

