"""Faults that shape the answer itself: hangs, drops, garbage, and errors inside a 200."""

from __future__ import annotations

import asyncio
import contextlib
from decimal import Decimal
from typing import Any

import orjson
from aiohttp import web

from lyra.simulator import error_bodies as errors
from lyra.simulator.aborts import settle_abort
from lyra.simulator.chat_request import ChatRequest
from lyra.simulator.faults import FiredFault
from lyra.simulator.reply import Reply
from lyra.simulator.responses import bearer_token, error_response, json_response
from lyra.simulator.sse import COMMENT, DONE, frame, open_stream, opening, play, split
from lyra.simulator.stall import stalled_stream
from lyra.simulator.state import SimulatorState
from lyra.simulator.tokens import count_text
from lyra.simulator.wire import chunk, completion_body, usage_body

_HTML_ERROR = b"<html><head><title>502 Bad Gateway</title></head><body>cloudflare</body></html>"


async def answer_with_fault(
    state: SimulatorState,
    request: web.Request,
    req: ChatRequest,
    reply: Reply,
    fired: FiredFault,
) -> web.StreamResponse:
    kind = fired.fault.kind
    if kind == "timeout":
        # Real time, not scaled: it must outlast any client deadline. Ends early on shutdown.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(state.stopping.wait(), fired.fault.hang_s)
        return error_response(errors.timed_out())
    if kind == "stall" and req.stream:
        account = state.account(bearer_token(request) or "")
        return await stalled_stream(state, request, req, reply, account, fired.fault.hang_s,
                                    fired.fault.stall_share)
    if kind == "stall":  # a non-streamed call has nothing to cut: it hangs as a timeout does
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(state.stopping.wait(), fired.fault.hang_s)
        return error_response(errors.timed_out())
    if kind == "drop":
        response = await _drop(request, req, reply)
        if req.stream:  # OpenRouter sees its client go mid-stream: billed as an abort is
            settle_abort(state, req, reply, state.account(bearer_token(request) or ""),
                         count_text("".join(_dropped_part(reply))))
        return response
    if kind == "malformed":
        return await _malformed(request, req, reply, fired.ordinal)
    partial = kind == "midstream_error"
    if req.stream:
        return await _stream_error(request, reply, fired.ordinal, partial=partial)
    if kind == "error_in_200" and fired.ordinal % 2 == 0:
        error = errors.in_body_error(reply.model.provider, fired.ordinal)
        return json_response(200, {"error": error, "user_id": errors.USER_ID})
    return _choices_error(reply, fired.ordinal, partial=partial)


def _choices_error(reply: Reply, ordinal: int, *, partial: bool) -> web.Response:
    """A 200 whose only choice carries `error` and finish_reason "error" (never billed)."""
    content = reply.content[: len(reply.content) // 2] if partial else ""
    usage = usage_body(reply.model, reply.prompt_tokens, count_text(content), Decimal(0))
    usage["cost_details"]["upstream_inference_completions_cost"] = 0.0
    usage["cost_details"]["upstream_inference_prompt_cost"] = 0.0
    body = completion_body(
        gen_id=reply.gen_id,
        created=reply.created,
        model_id=reply.served_id,
        provider=reply.model.provider,
        content=content,
        finish_reason="error",
        native_finish_reason="error",
        usage=usage,
        error=errors.in_body_error(reply.model.provider, ordinal),
    )
    return json_response(200, body, {"X-Generation-Id": reply.gen_id})


async def _stream_error(
    request: web.Request, reply: Reply, ordinal: int, *, partial: bool
) -> web.StreamResponse:
    """Some content (or none), one error event, then the stream closes without [DONE]."""
    resp = await open_stream(request, reply)
    deltas = split(reply.content)
    steps = opening(reply, deltas[: max(1, len(deltas) // 2)]) if partial else [(0.0, COMMENT)]
    head = reply.head()
    event: dict[str, Any] = {**head, "error": errors.in_body_error(reply.model.provider, ordinal)}
    if partial or ordinal % 2:
        event["choices"] = [
            {
                "index": 0,
                "delta": {"content": ""},
                "finish_reason": "error",
                "native_finish_reason": "error",
            }
        ]
    steps.append((0.0, frame(event)))
    await play(resp, steps)
    await resp.write_eof()
    return resp


async def _malformed(
    request: web.Request, req: ChatRequest, reply: Reply, ordinal: int
) -> web.StreamResponse:
    """A 200 whose body cannot be parsed: cut-off JSON, or an HTML error page."""
    if req.stream:
        resp = await open_stream(request, reply)
        first = split(reply.content)[0]
        broken = b'data: {"id":"' + reply.gen_id.encode() + b'","choices":[{"delta":{"content":"'
        await play(
            resp,
            [(0.0, COMMENT), (0.0, frame(chunk(reply.head(), first))), (0.0, broken + b"\n\n")],
        )
        await resp.write(DONE)
        await resp.write_eof()
        return resp
    if ordinal % 2:
        body = _HTML_ERROR
    else:
        whole = orjson.dumps(
            completion_body(
                gen_id=reply.gen_id,
                created=reply.created,
                model_id=reply.served_id,
                provider=reply.model.provider,
                content=reply.content,
                finish_reason=reply.finish_reason,
                native_finish_reason=reply.native_finish_reason,
                usage={},
            )
        )
        body = whole[: len(whole) // 2]
    return web.Response(status=200, body=body, content_type="application/json")


async def _drop(request: web.Request, req: ChatRequest, reply: Reply) -> web.StreamResponse:
    """Close the connection with no error event: before any byte, or in the middle of a stream."""
    if req.stream:
        resp = await open_stream(request, reply)
        await play(resp, opening(reply, _dropped_part(reply)))
        _close(request)
        return resp
    _close(request)
    return web.Response(status=200)


def _dropped_part(reply: Reply) -> list[str]:
    """The deltas a dropped stream sends before the connection goes: the first half."""
    deltas = split(reply.content)
    return deltas[: max(1, len(deltas) // 2)]


def _close(request: web.Request) -> None:
    transport = request.transport
    if transport is not None:
        transport.close()
