"""POST /v1/chat/completions: OpenAI's chat API, answered whole or streamed as SSE."""

from __future__ import annotations

from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from lyra.engine import CompletionStream
from lyra.errors import LyraError
from lyra.service.answer_headers import MODEL_HEADER, completion_headers
from lyra.service.attribution import TAGS_HEADER, header_tags, request_tags
from lyra.service.auth import Client
from lyra.service.body import read_body
from lyra.service.chat_render import ChunkWriter, chat_completion
from lyra.service.chat_request import ChatCall, parse_chat
from lyra.service.gateway import Gateway, gateway_of
from lyra.service.target import Target
from lyra.service.tenancy import ClientView, error_for

# A stream is never answered from the cache.
_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no", "Cache-Status": "lyra; fwd=bypass"}


async def chat_completions(request: Request) -> Response:
    gateway = gateway_of(request)
    client = await gateway.admit(request)
    call = parse_chat(await read_body(request, gateway.options), gateway.options)
    return await answer_chat(request, gateway, client, call)


async def answer_chat(request: Request, gateway: Gateway, client: Client, call: ChatCall) -> Response:
    """The chat route's answer to a validated call: a chat.completion, or a StreamingResponse of SSE
    chunks. POST /v1/responses answers through here too, so both share routing, caps and caching."""
    tags = request_tags(call.tags, header_tags(request.headers.get(TAGS_HEADER)))
    target = gateway.targets.resolve(call.model, client, call.max_tokens)
    if call.stream:
        return await _stream(gateway, call, target, client, tags)
    bypass = wants_fresh(request)
    completion = await gateway.lyra.complete(
        messages=call.messages, task=target.task, tier=target.tier, model=target.model,
        max_tokens=call.max_tokens, temperature=call.temperature, response_format=call.response_format,
        provider=call.provider, seed=call.seed, client=client.name, cache="bypass" if bypass else "use",
        user=call.user, tags=tags)
    spent = await completion_headers(gateway.lyra, client, completion)
    return Response(chat_completion(completion), media_type="application/json",
                    headers={"Cache-Status": cache_status(completion.cached, bypass=bypass), **spent})


def wants_fresh(request: Request) -> bool:
    """A request that asks not to be answered from the cache (`Cache-Control: no-cache` or `no-store`)."""
    directives = {d.strip().lower() for d in request.headers.get("cache-control", "").split(",")}
    return bool(directives & {"no-cache", "no-store"})


def cache_status(cached: bool, *, bypass: bool) -> str:
    """The RFC 9211 Cache-Status of an answer: served from Lyra's cache, or forwarded upstream and why."""
    if cached:
        return "lyra; hit"
    return "lyra; fwd=bypass" if bypass else "lyra; fwd=miss"


async def _stream(gateway: Gateway, call: ChatCall, target: Target, client: Client,
                  tags: tuple[str, ...]) -> Response:
    """Start the stream before answering, so a refusal or failure still gets its own status."""
    stream = gateway.lyra.stream(
        messages=call.messages, task=target.task, tier=target.tier, model=target.model,
        max_tokens=call.max_tokens, temperature=call.temperature, response_format=call.response_format,
        provider=call.provider, seed=call.seed, client=client.name, user=call.user, tags=tags)
    pieces = aiter(stream)
    try:
        first: str | None = await anext(pieces)
    except StopAsyncIteration:
        first = None
    # Every chunk names the served model (known from the upstream's first chunk), not the target.
    # The cost is not known yet: it comes in the final usage chunk (usage.cost).
    model = {MODEL_HEADER: stream.model} if stream.model else {}
    return _sse(_events(ChunkWriter(stream.model or call.model), first, pieces, stream, client, gateway.view),
                model)


async def _events(writer: ChunkWriter, first: str | None, pieces: AsyncIterator[str],
                  stream: CompletionStream, client: Client, view: ClientView) -> AsyncIterator[bytes]:
    try:
        if first is not None:
            yield writer.text(first)
            async for piece in pieces:
                yield writer.text(piece)
        yield writer.end(stream.completion)
    except LyraError as exc:
        yield writer.error(error_for(exc, client, view).body())  # as this client may see it
    finally:
        # A client that hangs up cancels us here; closing the engine's stream settles its budget.
        close = getattr(pieces, "aclose", None)
        if close is not None:
            await close()


class _EventStream(StreamingResponse):
    """Closes its events when the client hangs up, so the engine settles the budget at once, not at GC."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            close = getattr(self.body_iterator, "aclose", None)
            if close is not None:
                await close()


def _sse(events: AsyncIterator[bytes], extra: dict[str, str] | None = None) -> StreamingResponse:
    return _EventStream(events, media_type="text/event-stream", headers=_SSE_HEADERS | (extra or {}))
