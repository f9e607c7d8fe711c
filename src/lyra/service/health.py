"""GET /healthz (the process answers), /readyz (the engine has started) and /metrics (Prometheus)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from lyra.observe.exposition import wants_openmetrics
from lyra.service.gateway import gateway_of
from lyra.service.tenancy import require_admin


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    if gateway_of(request).ready:
        return JSONResponse({"status": "ready"})
    return JSONResponse({"status": "starting or stopping"}, status_code=503)


async def metrics(request: Request) -> Response:
    """Prometheus metrics, for an admin token (a scraper's `authorization` credentials).

    They hold no secret, but they name every key and client and the desk's spend, which a
    client token may not read. OpenMetrics for a scraper that asks for it (Accept), else the
    text format 0.0.4.
    """
    gateway = gateway_of(request)
    require_admin(await gateway.admit(request), "/metrics")
    governor = gateway.lyra.budget
    caps = await governor.snapshot() if gateway.ready and governor is not None else []
    page = gateway.metrics.render(caps, openmetrics=wants_openmetrics(request.headers.get("accept")))
    return Response(page.body, media_type=page.content_type, headers={"vary": "accept"})
