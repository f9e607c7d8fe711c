"""GET /healthz (the process answers), /readyz (the engine has started) and /metrics (Prometheus)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from lyra.metrics import CONTENT_TYPE
from lyra.service.gateway import gateway_of


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> Response:
    if gateway_of(request).ready:
        return JSONResponse({"status": "ready"})
    return JSONResponse({"status": "starting or stopping"}, status_code=503)


async def metrics(request: Request) -> Response:
    """Unauthenticated, as scrapers expect; it holds names and numbers, never a secret."""
    gateway = gateway_of(request)
    governor = gateway.lyra.budget
    caps = await governor.snapshot() if gateway.ready and governor is not None else []
    return Response(gateway.metrics.exposition(caps), media_type=CONTENT_TYPE)
