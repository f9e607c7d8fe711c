"""Server-sent events: keep-alive comments, paced content deltas, the closing frames."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web

from lyra.simulator.aborts import settle_abort
from lyra.simulator.chat_request import ChatRequest
from lyra.simulator.reply import Reply, settle
from lyra.simulator.state import KeyAccount, SimulatorState
from lyra.simulator.tokens import count_text
from lyra.simulator.wire import chunk, usage_chunk

COMMENT = b": OPENROUTER PROCESSING\n\n"
DONE = b"data: [DONE]\n\n"
_LONG_WAIT_S = 1.0  # a wait before the first token this long earns a second keep-alive comment
_MAX_DELTAS = 8


def frame(data: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


def split(content: str) -> list[str]:
    """Content cut into a few deltas, as a model streams it."""
    count = max(1, min(_MAX_DELTAS, len(content) // 24))
    size = -(-len(content) // count) or 1
    return [content[i : i + size] for i in range(0, len(content), size)] or [""]


def opening(reply: Reply, deltas: list[str]) -> list[tuple[float, bytes]]:
    """Keep-alive comments, the wait for the first token, then the content deltas."""
    ttft = reply.delay_s * reply.profile.ttft_share
    steps: list[tuple[float, bytes]] = [(0.0, COMMENT)]
    if ttft > _LONG_WAIT_S:
        steps.append((ttft / 2, COMMENT))
        ttft /= 2
    per_delta = (reply.delay_s - reply.delay_s * reply.profile.ttft_share) / max(1, len(deltas))
    head = reply.head()
    for index, delta in enumerate(deltas):
        steps.append((ttft if index == 0 else per_delta, frame(chunk(head, delta))))
    return steps


async def play(resp: web.StreamResponse, steps: list[tuple[float, bytes]],
               written: list[int] | None = None) -> None:
    """Write the frames, sleeping where a step asks to; zero-delay frames go out together.

    `written`, when given, gets the count of steps written so far (what reached a client that
    hangs up meanwhile).
    """
    pending: list[bytes] = []
    for delay, data in steps:
        if delay > 0:
            if pending:
                await resp.write(b"".join(pending))
                if written is not None:
                    written[0] += len(pending)
                pending = []
            await asyncio.sleep(delay)
        pending.append(data)
    if pending:
        await resp.write(b"".join(pending))
        if written is not None:
            written[0] += len(pending)


async def open_stream(request: web.Request, reply: Reply) -> web.StreamResponse:
    resp = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Generation-Id": reply.gen_id,
        }
    )
    await resp.prepare(request)
    return resp


async def stream_reply(
    state: SimulatorState,
    request: web.Request,
    req: ChatRequest,
    reply: Reply,
    account: KeyAccount,
) -> web.StreamResponse:
    resp = await open_stream(request, reply)
    deltas = split(reply.content)
    steps = opening(reply, deltas)
    written = [0]
    try:
        await play(resp, steps, written)
    except (ConnectionResetError, asyncio.CancelledError):
        # The client hung up (the server cancels its handler): billed as its provider bills an abort.
        sent = deltas[: max(0, written[0] - (len(steps) - len(deltas)))]
        settle_abort(state, req, reply, account, count_text("".join(sent)))
        raise
    usage = settle(state, req, reply, account, streamed=True)
    head = reply.head()
    closing = (
        frame(chunk(head, "", reply.finish_reason, reply.native_finish_reason))
        + frame(usage_chunk(head, usage, state.next_usage_form()))
        + DONE
    )
    await resp.write(closing)
    await resp.write_eof()
    return resp
