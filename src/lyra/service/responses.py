"""POST /v1/responses: OpenAI's Responses API in its stateless form, answered through the chat route.

A request becomes the chat call it means, which the chat route answers (auth, tiers, budget caps,
rate limits, caching, ledger and headers all as for /v1/chat/completions); its chat.completion, or
its stream of chunks, is then said again as a Response object or as Responses events.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from decimal import Decimal
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from lyra.errors import LyraError
from lyra.money import json_default
from lyra.service.body import read_body
from lyra.service.chat import answer_chat
from lyra.service.errors import ApiError, from_unexpected
from lyra.service.gateway import gateway_of
from lyra.service.responses_render import Shell, from_chat_completion
from lyra.service.responses_request import as_responses_error, chat_call, parse_responses
from lyra.service.responses_stream import Event, ResponseEvents
from lyra.service.tenancy import error_for

_WHERE = "POST /v1/responses"
_HEADERS_OF_BODY = {"content-length", "content-type"}


async def responses(request: Request) -> Response:
    gateway = gateway_of(request)
    client = await gateway.admit(request)
    call = parse_responses(await read_body(request, gateway.options), gateway.options)
    try:
        answer = await answer_chat(request, gateway, client, chat_call(call, gateway.options))
    except ApiError as exc:
        raise as_responses_error(exc) from None
    except LyraError as exc:  # as the app answers it, as this client may see it, in Responses' names
        raise as_responses_error(error_for(exc, client, gateway.view)) from None
    shell = Shell(echo=call.echo)
    if isinstance(answer, StreamingResponse):
        # The chat route's stream, headers and hang-up handling, carrying Responses events instead.
        answer.body_iterator = response_events(answer.body_iterator, ResponseEvents(shell))
        return answer
    headers = {k: v for k, v in answer.headers.items() if k.lower() not in _HEADERS_OF_BODY}
    return Response(whole_response(bytes(answer.body), shell), media_type="application/json", headers=headers)


def whole_response(chat_completion: bytes, shell: Shell) -> bytes:
    """A chat.completion body as a Response object's body."""
    return _dumps(from_chat_completion(_loads(chat_completion), shell))


def _loads(raw: bytes) -> Any:
    # Numbers with a fraction as Decimal, so that `usage.cost` (0.0000000369) and logprobs are said
    # again exactly as the chat route said them, never through a float.
    return json.loads(raw, parse_float=Decimal)


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=json_default)


async def response_events(chat_sse: AsyncIterable[Any], events: ResponseEvents) -> AsyncIterator[bytes]:
    """Chat's SSE bytes in, Responses SSE events out; an error mid-stream, or a stream cut short,
    ends with response.failed, never with a connection left hanging."""
    buffer = b""
    try:
        async for data in chat_sse:
            buffer += data.encode() if isinstance(data, str) else bytes(data)
            *whole, buffer = buffer.split(b"\n\n")
            for raw in whole:
                out = _translate(raw, events)
                if out:
                    yield out
                if events.ended:
                    return
        yield frame(events.fail({"code": "stream_ended", "message": "the answer's stream ended early"}))
    except Exception as exc:  # a bug or an outage mid-stream: the client still learns the response failed
        if not events.ended:
            failure = from_unexpected(exc, _WHERE)
            yield frame(events.fail({"code": failure.code, "message": failure.message}))
    finally:
        close = getattr(chat_sse, "aclose", None)
        if close is not None:
            await close()


def _translate(raw: bytes, events: ResponseEvents) -> bytes:
    """One chat SSE event (`data: {...}`, `data: [DONE]` or a comment) as the Responses events it brings."""
    out: list[Event] = []
    for line in raw.split(b"\n"):
        if not line.startswith(b"data:"):
            continue  # a comment (`: keep-alive`) or a field chat's stream does not use
        data = line[5:].strip()
        if data == b"[DONE]":
            out += events.finish()
            continue
        payload = _loads(data)
        if isinstance(payload, Mapping) and isinstance(payload.get("error"), Mapping):
            out += events.fail(payload["error"])
        elif isinstance(payload, Mapping):
            out += events.chunk(payload)
    return frame(out)


def frame(events: list[Event]) -> bytes:
    """Events as SSE, each named by its type as OpenAI's are."""
    return b"".join(b"event: " + event["type"].encode() + b"\ndata: " + _dumps(event) + b"\n\n"
                    for event in events)
