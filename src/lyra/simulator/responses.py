"""Small HTTP helpers: the bearer token of a request, JSON and error responses."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from lyra.simulator.error_bodies import SimError


def bearer_token(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def json_response(
    status: int, body: Any, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps(body), content_type="application/json", headers=headers
    )


def error_response(error: SimError) -> web.Response:
    return json_response(error.status, error.body, error.headers or None)
