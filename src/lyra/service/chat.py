"""POST /v1/chat/completions: OpenAI's chat API, answered whole or streamed as SSE."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

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
from lyra.service.errors import ApiError, bad_request
from lyra.service.gateway import Gateway, gateway_of
from lyra.service.target import Target
from lyra.service.tenancy import ClientView, error_for
from lyra.types import ChoiceDelta

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
    route = _route(gateway, call, client)
    if call.stream:
        return await _stream(gateway, call, route, client, tags)
    bypass = wants_fresh(request)
    completion = await gateway.lyra.complete(
        messages=call.messages, **route, **call.options(), client=client.name,
        cache="bypass" if bypass else "use", tags=tags)
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


def _route(gateway: Gateway, call: ChatCall, client: Client) -> dict[str, Any]:
    """The engine's route for `model`, or for `model` then a `models` fallback list, each one checked
    against what the client may use as `model` is; Lyra itself walks the list, across its keys."""
    target = gateway.targets.resolve(call.model, client, call.max_tokens)
    if not call.models:
        return _target_route(target)
    if target.model is None:
        raise bad_request("models", f"models: a fallback list takes catalogue model ids, and model "
                                    f"{call.model[:64]!r} names a tier or a task")
    fallbacks = []
    for index, name in enumerate(call.models):
        where = f"models[{index}]"
        try:
            found = gateway.targets.resolve(name, client, call.max_tokens)
        except ApiError as exc:  # named as the entry at fault, not as `model`
            raise ApiError(exc.status, f"{where}: {exc.message.partition(': ')[2]}", type=exc.type,
                           param=where if exc.param else None, code=exc.code) from None
        if found.model is None:
            raise bad_request(where, f"{where}: {name[:64]!r} is not a catalogue model id (tier: and "
                                     "task: cannot be fallbacks)")
        fallbacks.append(found.model)
    return {"model": target.model, "models": fallbacks}


def _target_route(target: Target) -> dict[str, Any]:
    return {"task": target.task, "tier": target.tier, "model": target.model}


async def _stream(gateway: Gateway, call: ChatCall, route: dict[str, Any], client: Client,
                  tags: tuple[str, ...]) -> Response:
    """Start the stream before answering, so a refusal or failure still gets its own status."""
    stream = gateway.lyra.stream(messages=call.messages, **route, **call.options(), client=client.name,
                                 tags=tags)
    pieces = stream.deltas()
    try:
        first: ChoiceDelta | None = await anext(pieces)
    except StopAsyncIteration:
        first = None
    # Every chunk names the served model (known from the upstream's first chunk), not the target.
    # The cost is not known yet: it comes in the final usage chunk (usage.cost).
    model = {MODEL_HEADER: stream.model} if stream.model else {}
    return _sse(_events(ChunkWriter(stream.model or call.model), first, pieces, stream, client, gateway.view),
                model)


async def _events(writer: ChunkWriter, first: ChoiceDelta | None, pieces: AsyncIterator[ChoiceDelta],
                  stream: CompletionStream, client: Client, view: ClientView) -> AsyncIterator[bytes]:
    try:
        if first is not None:
            yield writer.delta(first)
            async for piece in pieces:
                yield writer.delta(piece)
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
