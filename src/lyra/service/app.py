"""The gateway's ASGI app: an OpenAI-compatible API in front of one Lyra engine."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from lyra.engine import Lyra
from lyra.errors import LyraError
from lyra.observe.metrics import Metrics
from lyra.service import chat, consensus, dashboard, decide, health, models, report, responses, usage
from lyra.service.audit import audit_record
from lyra.service.errors import ApiError, from_unexpected
from lyra.service.gateway import Gateway, caller_of, gateway_of
from lyra.service.middleware import AnswerUnexpected, ObserveRequests
from lyra.service.options import ServiceOptions
from lyra.service.ratelimit import RateLimitHeaders
from lyra.service.tenancy import error_for

CONFIG_ENV = "LYRA_SERVE_CONFIG"
ACCESS_LOG_ENV = "LYRA_SERVE_ACCESS_LOG"
BODY_TIMEOUT_ENV = "LYRA_SERVE_BODY_TIMEOUT"

ROUTES = [
    Route("/v1/chat/completions", chat.chat_completions, methods=["POST"]),
    Route("/v1/responses", responses.responses, methods=["POST"]),
    Route("/v1/consensus", consensus.consensus, methods=["POST"]),
    Route("/v1/decide", decide.decide, methods=["POST"]),
    Route("/v1/models", models.list_models, methods=["GET"]),
    Route("/v1/models/{model_id:path}", models.get_model, methods=["GET"]),
    Route("/v1/usage", usage.usage, methods=["GET"]),
    Route("/v1/budget", usage.budget, methods=["GET"]),
    Route("/v1/report", report.report, methods=["GET"]),
    Route("/v1/audit/{ref}", audit_record, methods=["GET"]),
    Route("/dashboard", dashboard.dashboard, methods=["GET"]),
    Mount("/static", app=dashboard.static_files(), name="static"),
    Route("/metrics", health.metrics, methods=["GET"]),
    Route("/healthz", health.healthz, methods=["GET"]),
    Route("/readyz", health.readyz, methods=["GET"]),
]


def create_app(
    lyra: Lyra, *, options: ServiceOptions | None = None, metrics: Metrics | None = None
) -> Starlette:
    """An app serving `lyra`, which it starts on startup and closes (flushing the ledger) on shutdown."""
    options = options or ServiceOptions()
    metrics = metrics or Metrics()
    lyra.add_recorder(metrics)
    gateway = Gateway(lyra, metrics, options)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await gateway.start()
        try:
            yield
        finally:
            await gateway.stop()

    app = Starlette(
        routes=ROUTES,
        lifespan=lifespan,
        middleware=[Middleware(ObserveRequests, metrics=metrics, log_requests=options.access_log),
                    Middleware(RateLimitHeaders), Middleware(AnswerUnexpected)],
        exception_handlers={ApiError: _api_error, LyraError: _lyra_error, HTTPException: _http_error,
                            Exception: _unexpected},
    )
    app.state.gateway = gateway
    return app


def app_from_env() -> Starlette:
    """The app each `lyra serve` worker builds: the config file named by LYRA_SERVE_CONFIG."""
    path = os.environ.get(CONFIG_ENV) or None
    access_log = os.environ.get(ACCESS_LOG_ENV) == "1"
    body_timeout = os.environ.get(BODY_TIMEOUT_ENV)
    options = (ServiceOptions(access_log=access_log, body_timeout_s=float(body_timeout)) if body_timeout
               else ServiceOptions(access_log=access_log))
    return create_app(Lyra.from_config(path), options=options)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return exc.response()


async def _lyra_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LyraError)
    return error_for(exc, caller_of(request), gateway_of(request).view).response()


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    codes = {404: "not_found", 405: "method_not_allowed"}
    message = f"{request.method} {request.url.path}: {exc.detail}"
    return ApiError(exc.status_code, message, code=codes.get(exc.status_code)).response()


async def _unexpected(request: Request, exc: Exception) -> Response:
    """The last resort, for an exception outside AnswerUnexpected (in ObserveRequests itself)."""
    return from_unexpected(exc, f"{request.method} {request.url.path}").response()
