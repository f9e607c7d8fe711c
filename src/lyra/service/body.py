"""Reading a request body without letting it grow past the gateway's bound."""

from __future__ import annotations

from starlette.requests import Request

from lyra.service.errors import ApiError


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, or ApiError 413 as soon as it is known to pass `limit` bytes."""
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
    async for chunk in request.stream():
        received += len(chunk)
        if received > limit:
            raise _too_large(limit)  # a chunked body that lied by omission
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> ApiError:
    return ApiError(413, f"the request body is larger than this gateway accepts ({limit:,} bytes)",
                    code="request_too_large")
