"""Reading a request body within the gateway's bounds: its size, and how long it may take to arrive."""

from __future__ import annotations

import asyncio

from starlette.requests import ClientDisconnect, Request

from lyra.service.errors import ApiError
from lyra.service.options import ServiceOptions


async def read_body(request: Request, options: ServiceOptions) -> bytes:
    """The whole body; ApiError 413 as soon as it is known to pass `options.max_body_bytes`, 408 when
    it has not all arrived within `options.body_timeout_s` (a body shorter than its Content-Length,
    or one trickled a byte at a time)."""
    limit = options.max_body_bytes
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise ApiError(400, "Content-Length is not a number", code="invalid_header") from None
        if size > limit:
            raise _too_large(limit)
    chunks: list[bytes] = []
    received = 0
    deadline = asyncio.timeout(options.body_timeout_s)
    try:
        async with deadline:
            async for chunk in request.stream():
                received += len(chunk)
                if received > limit:
                    raise _too_large(limit)  # a chunked body that lied by omission
                chunks.append(chunk)
    except TimeoutError:
        if not deadline.expired():
            raise
        raise ApiError(408, f"the request body did not arrive within {options.body_timeout_s:g} s "
                            f"({received:,} bytes came)", code="request_timeout", close=True) from None
    except ClientDisconnect:
        # Nobody reads this answer; it only ends the request quietly instead of as an unexpected error.
        raise ApiError(400, "the client disconnected before its body arrived", code="client_disconnected",
                       close=True) from None
    return b"".join(chunks)


def _too_large(limit: int) -> ApiError:
    return ApiError(413, f"the request body is larger than this gateway accepts ({limit:,} bytes)",
                    code="request_too_large")
