"""POST /chat/completions: read the request, pick the model, answer (or fail as asked)."""

from __future__ import annotations

import asyncio

import orjson
from aiohttp import web

from lyra.simulator import error_bodies as errors
from lyra.simulator.admission import admit
from lyra.simulator.chat_request import parse_chat
from lyra.simulator.error_bodies import SimError
from lyra.simulator.fault_answers import answer_with_fault
from lyra.simulator.reply import make_reply, settle
from lyra.simulator.responses import bearer_token, error_response, json_response
from lyra.simulator.sse import stream_reply
from lyra.simulator.state import SimulatorState
from lyra.simulator.wire import completion_body


async def handle_chat(state: SimulatorState, request: web.Request) -> web.StreamResponse:
    """Answer one chat completion as OpenRouter would."""
    state.stats.calls += 1
    token = bearer_token(request)
    if token is None:
        return error_response(errors.no_credentials())
    account = state.account(token)
    state.stats.by_key[account.label] += 1
    if account.revoked:
        return error_response(errors.user_not_found())
    try:
        payload = orjson.loads(await request.read())
    except orjson.JSONDecodeError:
        return error_response(errors.bad_request("Request body is not valid JSON"))
    if isinstance(payload, dict):
        state.received.append(payload)
    parsed = parse_chat(payload, state.default_model)
    if isinstance(parsed, SimError):
        return error_response(parsed)
    admitted = admit(state, token, account, parsed)
    if isinstance(admitted, SimError):
        return error_response(admitted)
    reply = make_reply(state, parsed, admitted)
    fired = admitted.fired
    if fired is not None:
        return await answer_with_fault(state, request, parsed, reply, fired)
    if parsed.stream:
        return await stream_reply(state, request, parsed, reply, account)
    if reply.delay_s > 0:
        await asyncio.sleep(reply.delay_s)
    body = completion_body(
        gen_id=reply.gen_id,
        created=reply.created,
        model_id=reply.served_id,
        provider=reply.model.provider,
        content=reply.content,
        finish_reason=reply.finish_reason,
        native_finish_reason=reply.native_finish_reason,
        usage=settle(state, parsed, reply, account, streamed=False),
        choices=reply.choice_bodies(),
        service_tier=reply.service_tier,
    )
    return json_response(200, body, {"X-Generation-Id": reply.gen_id})
