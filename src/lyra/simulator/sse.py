"""Server-sent events: keep-alive comments, paced content deltas, the closing frames."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web

from lyra.simulator.aborts import settle_abort
from lyra.simulator.chat_request import ChatRequest
from lyra.simulator.choice_gen import SimChoice
from lyra.simulator.reply import Reply, settle
from lyra.simulator.state import KeyAccount, SimulatorState
from lyra.simulator.wire import choice_chunk, chunk, usage_chunk

COMMENT = b": OPENROUTER PROCESSING\n\n"
DONE = b"data: [DONE]\n\n"
_LONG_WAIT_S = 1.0  # a wait before the first token this long earns a second keep-alive comment
_MAX_DELTAS = 8


def frame(data: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(data) + b"\n\n"


def split(content: str) -> list[str]:
    """Content cut into a few deltas, as a model streams it."""
    count = max(1, min(_MAX_DELTAS, len(content) // 24))
    per_delta = -(-len(content) // count)
    size = max(4, -(-per_delta // 4) * 4)  # whole tokens of four characters, for the logprobs
    return [content[i : i + size] for i in range(0, len(content), size)] or [""]


def opening(reply: Reply, deltas: list[str]) -> list[tuple[float, bytes]]:
    """Keep-alive comments, the wait for the first token, then the content deltas (one choice)."""
    head = reply.head()
    return paced(reply, [frame(chunk(head, delta)) for delta in deltas])


def choice_deltas(head: dict[str, Any], choice: SimChoice) -> list[bytes]:
    """One choice's delta frames: reasoning, then tool-call fragments or content (with logprobs)."""
    frames: list[bytes] = []
    for piece in split(choice.reasoning or "") if choice.reasoning else []:
        detail = {"type": "reasoning.text", "text": piece, "format": "unknown", "index": 0}
        frames.append(frame(choice_chunk(head, choice.index,
                                         {"content": "", "reasoning": piece, "reasoning_details": [detail]})))
    for number, call in enumerate(choice.tool_calls):
        function = call["function"]
        opener = {"index": number, "id": call["id"], "type": "function",
                  "function": {"name": function["name"], "arguments": ""}}
        frames.append(frame(choice_chunk(head, choice.index, {"content": None, "tool_calls": [opener]})))
        for piece in _thirds(function["arguments"]):
            fragment = {"index": number, "function": {"arguments": piece}}
            delta = {"content": None, "tool_calls": [fragment]}
            frames.append(frame(choice_chunk(head, choice.index, delta)))
    if not choice.tool_calls:
        offset = 0
        for piece in split(choice.content):
            end = offset + len(piece)
            tokens = None if choice.logprobs is None else choice.logprobs[offset // 4 : -(-end // 4)]
            offset = end
            frames.append(frame(choice_chunk(head, choice.index, {"content": piece}, logprobs=tokens)))
    return frames


def _thirds(text: str) -> list[str]:
    size = max(1, -(-len(text) // 3))
    return [text[i : i + size] for i in range(0, len(text), size)]


def interleave(reply: Reply) -> list[bytes]:
    """Every choice's delta frames, taken in turn, as an upstream streaming n choices sends them."""
    head = reply.head()
    queues = [choice_deltas(head, c) for c in reply.choices]
    frames: list[bytes] = []
    for step in range(max(len(q) for q in queues)):
        frames += [q[step] for q in queues if step < len(q)]
    return frames


def paced(reply: Reply, frames: list[bytes]) -> list[tuple[float, bytes]]:
    """Keep-alive comments, the wait for the first token, then the frames spread over the latency."""
    ttft = reply.delay_s * reply.profile.ttft_share
    steps: list[tuple[float, bytes]] = [(0.0, COMMENT)]
    if ttft > _LONG_WAIT_S:
        steps.append((ttft / 2, COMMENT))
        ttft /= 2
    per_frame = (reply.delay_s - reply.delay_s * reply.profile.ttft_share) / max(1, len(frames))
    steps += [(ttft if index == 0 else per_frame, data) for index, data in enumerate(frames)]
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
    frames = interleave(reply)
    steps = paced(reply, frames)
    written = [0]
    try:
        await play(resp, steps, written)
    except (ConnectionResetError, asyncio.CancelledError):
        # The client hung up (the server cancels its handler): billed as its provider bills an abort,
        # the tokens sent being the share of the answer's frames that went out.
        sent = max(0, written[0] - (len(steps) - len(frames)))
        settle_abort(state, req, reply, account, reply.completion_tokens * sent // max(1, len(frames)))
        raise
    usage = settle(state, req, reply, account, streamed=True)
    head = reply.head()
    finishes = b"".join(
        frame(choice_chunk(head, c.index, {"content": ""}, c.finish_reason, c.native_finish_reason))
        for c in reply.choices)
    closing = finishes + frame(usage_chunk(head, usage, state.next_usage_form())) + DONE
    await resp.write(closing)
    await resp.write_eof()
    return resp
