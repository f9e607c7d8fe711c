"""The `stall` fault: a stream that stops halfway and waits, so that a client hangs up on it."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from lyra.simulator.aborts import settle_abort
from lyra.simulator.chat_request import ChatRequest
from lyra.simulator.reply import Reply, settle
from lyra.simulator.sse import COMMENT, DONE, frame, open_stream, opening, play, split
from lyra.simulator.state import KeyAccount, SimulatorState
from lyra.simulator.tokens import count_text
from lyra.simulator.wire import chunk, usage_chunk

_POLL_S = 0.01  # how often a stalled stream checks that its client is still there


async def stalled_stream(state: SimulatorState, request: web.Request, req: ChatRequest, reply: Reply,
                         account: KeyAccount, hang_s: float, share: float = 0.5) -> web.StreamResponse:
    """`share` of the content (half; 0: none, the headers only), then a pause (real time) until the
    client hangs up, hang_s pass or shutdown.

    A hang-up is billed by `settle_abort`; a client that waits it out gets the rest as usual.
    """
    resp = await open_stream(request, reply)
    deltas = split(reply.content)
    half = max(1, int(len(deltas) * share)) if share > 0 else 0
    sent = count_text("".join(deltas[:half]))
    try:
        await play(resp, opening(reply, deltas[:half]))
        deadline = time.monotonic() + hang_s
        while time.monotonic() < deadline and not state.stopping.is_set():
            await asyncio.sleep(_POLL_S)
            await resp.write(COMMENT)  # raises once the client has gone
    except ConnectionResetError:
        settle_abort(state, req, reply, account, sent)
        return resp
    except asyncio.CancelledError:  # the server cancels the handler of a client that hung up
        settle_abort(state, req, reply, account, sent)
        raise
    head = reply.head()
    rest = b"".join(frame(chunk(head, d)) for d in deltas[half:])
    usage = settle(state, req, reply, account, streamed=True)
    closing = (frame(chunk(head, "", reply.finish_reason, reply.native_finish_reason))
               + frame(usage_chunk(head, usage, state.next_usage_form())) + DONE)
    await resp.write(rest + closing)
    await resp.write_eof()
    return resp


__all__ = ["stalled_stream"]
