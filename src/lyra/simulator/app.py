"""The aiohttp application: OpenRouter's routes under /api/v1 and a /_sim control surface."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from lyra.simulator import error_bodies as errors
from lyra.simulator.chat import handle_chat
from lyra.simulator.faults import Fault
from lyra.simulator.responses import bearer_token, error_response, json_response
from lyra.simulator.state import SimulatorState
from lyra.simulator.wire import generation_data, key_data, models_listing

API_PREFIX = "/api/v1"
STATE_KEY = web.AppKey("lyra_simulator_state", SimulatorState)
_MODELS_KEY = web.AppKey("lyra_simulator_models", bytes)
_MAX_BODY = 32 * 1024 * 1024  # long prompts are legitimate


def _state(request: web.Request) -> SimulatorState:
    return request.app[STATE_KEY]


async def chat_completions(request: web.Request) -> web.StreamResponse:
    return await handle_chat(_state(request), request)


async def list_models(request: web.Request) -> web.Response:
    body: bytes = request.app[_MODELS_KEY]
    return web.Response(body=body, content_type="application/json")


async def key_info(request: web.Request) -> web.Response:
    state = _state(request)
    token = bearer_token(request)
    if token is None:
        return error_response(errors.no_credentials())
    account = state.account(token)
    if account.revoked:
        return error_response(errors.user_not_found())
    return json_response(200, key_data(token, account))


async def generation(request: web.Request) -> web.Response:
    state = _state(request)
    token = bearer_token(request)
    if token is None:
        return error_response(errors.no_credentials())
    if state.account(token).revoked:
        return error_response(errors.user_not_found())
    generation_id = request.query.get("id", "")
    if not generation_id:
        return error_response(errors.bad_request('Query parameter "id" is required'))
    record = state.generation(generation_id)
    if record is None:
        return error_response(errors.generation_not_found(generation_id))
    return json_response(200, generation_data(record))


async def add_fault(request: web.Request) -> web.Response:
    try:
        data: Any = orjson.loads(await request.read())
        if not isinstance(data, dict):
            raise ValueError("the body must be a JSON object of Fault fields")
        fault = Fault.from_mapping(data)
    except (orjson.JSONDecodeError, ValueError) as exc:
        return error_response(errors.bad_request(str(exc)))
    _state(request).faults.add(fault)
    return json_response(201, {"ok": True, "fault": fault.as_dict()})


async def list_faults(request: web.Request) -> web.Response:
    return json_response(200, {"faults": [f.as_dict() for f in _state(request).faults.armed()]})


async def clear_faults(request: web.Request) -> web.Response:
    _state(request).faults.clear()
    return json_response(200, {"ok": True})


async def stats(request: web.Request) -> web.Response:
    return json_response(200, _state(request).stats.as_dict())


async def _on_shutdown(app: web.Application) -> None:
    # Wakes requests that simulate a hang, so shutting down does not wait for them.
    app[STATE_KEY].stopping.set()


def create_app(state: SimulatorState) -> web.Application:
    """The simulator's web application around one shared state."""
    app = web.Application(client_max_size=_MAX_BODY)
    app[STATE_KEY] = state
    # The listing never changes while serving: encode it once.
    app[_MODELS_KEY] = orjson.dumps(models_listing(state.catalog))
    app.on_shutdown.append(_on_shutdown)
    app.router.add_post(f"{API_PREFIX}/chat/completions", chat_completions)
    app.router.add_get(f"{API_PREFIX}/models", list_models)
    app.router.add_get(f"{API_PREFIX}/key", key_info)
    app.router.add_get(f"{API_PREFIX}/auth/key", key_info)
    app.router.add_get(f"{API_PREFIX}/generation", generation)
    app.router.add_post("/_sim/faults", add_fault)
    app.router.add_get("/_sim/faults", list_faults)
    app.router.add_delete("/_sim/faults", clear_faults)
    app.router.add_get("/_sim/stats", stats)
    return app
