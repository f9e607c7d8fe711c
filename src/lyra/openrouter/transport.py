"""The aiohttp session that speaks to OpenRouter (or anything with the same wire format)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import aiohttp
import orjson

from lyra.errors import FailureKind, StreamInterrupted, UpstreamError, UpstreamTimeout
from lyra.openrouter.wire import (
    ChatResult,
    SSEDecoder,
    StreamDelta,
    decode_chat_response,
    decode_chunk,
    error_from_payload,
)
from lyra.redact import mask_url


class OpenRouterTransport:
    """Sends requests to one OpenRouter base URL over a shared aiohttp session.

    Converts every aiohttp, timeout and body error into an UpstreamError subclass, keeping
    the original as `__cause__`. Keys are passed per call and never stored or logged here.
    """

    def __init__(
        self,
        *,
        base_url: str,
        app_title: str = "Lyra Trading System",
        app_url: str = "",
        max_connections: int = 200,
        name: str = "OpenRouter",
    ) -> None:
        """An empty `app_title` sends no attribution headers (an upstream that is not OpenRouter);
        `name` is how network errors name the far end."""
        self.base_url = base_url.rstrip("/")
        self.name = name
        self._chat_url = f"{self.base_url}/chat/completions"
        self._static_headers = {"Content-Type": "application/json"}
        if app_title:
            self._static_headers.update({"X-OpenRouter-Title": app_title, "X-Title": app_title})
        if app_url:
            self._static_headers["HTTP-Referer"] = app_url
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._headers_by_key: dict[str, dict[str, str]] = {}

    def __repr__(self) -> str:
        return f"OpenRouterTransport(base_url={mask_url(self.base_url)!r})"

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._max_connections, ttl_dns_cache=300)
            # No session-wide timeout: each call runs under its own deadline, one timer per call.
            self._session = aiohttp.ClientSession(
                connector=connector, json_serialize=lambda o: orjson.dumps(o).decode(),
                timeout=aiohttp.ClientTimeout(total=None),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _headers(self, api_key: str) -> dict[str, str]:
        headers = self._headers_by_key.get(api_key)
        if headers is None:
            headers = {**self._static_headers}
            if api_key:  # a local server may need none
                headers["Authorization"] = f"Bearer {api_key}"
            self._headers_by_key[api_key] = headers
        return headers

    async def chat(self, body: bytes, *, api_key: str, timeout_s: float) -> ChatResult:
        """POST a non-streamed chat completion and parse it."""
        try:
            async with asyncio.timeout(timeout_s):
                async with self.session.post(
                    self._chat_url, data=body, headers=self._headers(api_key)
                ) as response:
                    raw = await response.read()
                    return decode_chat_response(response.status, response.headers, raw)
        except TimeoutError as exc:
            raise UpstreamTimeout(f"no answer within {timeout_s:.1f}s", status=408, kind=FailureKind.TIMEOUT,
                                  retryable=True, maybe_billed=True) from exc
        except aiohttp.ClientError as exc:
            raise _network_error(exc, self.name) from exc

    async def stream(self, body: bytes, *, api_key: str, timeout_s: float,
                     on_generation_id: Callable[[str], None] | None = None) -> AsyncIterator[StreamDelta]:
        """POST a streamed chat completion and yield its deltas until [DONE].

        `timeout_s` bounds the wait for the response and for each following read. `on_generation_id`
        gets the X-Generation-Id header, which arrives before the first token (so that a call
        abandoned while it waits can still be reconciled).
        """
        try:
            async with asyncio.timeout(timeout_s) as deadline:
                async with self.session.post(
                    self._chat_url, data=body, headers=self._headers(api_key)
                ) as response:
                    if response.status >= 400:
                        decode_chat_response(response.status, response.headers, await response.read())
                    generation_id = response.headers.get("X-Generation-Id")
                    if on_generation_id is not None and generation_id:
                        on_generation_id(generation_id)
                    decoder = SSEDecoder()
                    done = False
                    async for chunk in response.content.iter_any():
                        deadline.reschedule(asyncio.get_running_loop().time() + timeout_s)
                        for data in decoder.feed(chunk):
                            delta = decode_chunk(data)
                            if delta is None:
                                done = True
                                break
                            yield delta
                        if done:
                            break
                    if not done:
                        for data in decoder.flush():
                            if decode_chunk(data) is None:
                                done = True
                    if not done:
                        raise StreamInterrupted("stream closed before [DONE]", kind=FailureKind.NETWORK,
                                                retryable=True, maybe_billed=True)
        except TimeoutError as exc:
            raise UpstreamTimeout(f"stream stalled for {timeout_s:.1f}s", status=408,
                                  kind=FailureKind.TIMEOUT, retryable=True, maybe_billed=True) from exc
        except aiohttp.ClientError as exc:
            raise _network_error(exc, self.name) from exc

    async def get_json(self, path: str, *, api_key: str | None = None, timeout_s: float = 15.0,
                       params: Mapping[str, str] | None = None) -> dict[str, Any]:
        """GET one of OpenRouter's JSON endpoints (/models, /key, /generation)."""
        headers = self._headers(api_key) if api_key else self._static_headers
        try:
            async with asyncio.timeout(timeout_s):
                async with self.session.get(f"{self.base_url}{path}", headers=headers,
                                            params=params) as response:
                    raw = await response.read()
        except TimeoutError as exc:
            raise UpstreamTimeout(f"GET {path}: no answer within {timeout_s:.1f}s", status=408,
                                  kind=FailureKind.TIMEOUT, retryable=True) from exc
        except aiohttp.ClientError as exc:
            raise _network_error(exc, self.name) from exc
        try:
            payload = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise UpstreamError(f"GET {path}: body is not JSON", status=response.status,
                                kind=FailureKind.MALFORMED, retryable=True) from exc
        if response.status >= 400 or not isinstance(payload, dict):
            raise error_from_payload(response.status, payload if isinstance(payload, dict) else {},
                                     response.headers)
        return payload

    async def list_models(self) -> list[dict[str, Any]]:
        payload = await self.get_json("/models")
        data = payload.get("data")
        return [m for m in data if isinstance(m, dict)] if isinstance(data, list) else []

    async def generation(self, generation_id: str, *, api_key: str, attempts: int = 5,
                         first_delay_s: float = 0.5) -> dict[str, Any]:
        """Stats for one generation; /generation answers 404 for a while, so retry with backoff."""
        delay = first_delay_s
        for attempt in range(attempts):
            try:
                payload = await self.get_json("/generation", api_key=api_key,
                                              params={"id": generation_id})
                data = payload.get("data")
                return data if isinstance(data, dict) else {}
            except UpstreamError as exc:
                if exc.status != 404 or attempt == attempts - 1:
                    raise
                await asyncio.sleep(delay)
                delay *= 2
        return {}


def _network_error(exc: aiohttp.ClientError, far_end: str = "OpenRouter") -> UpstreamError:
    name = type(exc).__name__
    # A refused connection never reached OpenRouter; a dropped one may have been served and billed.
    sent = not isinstance(exc, aiohttp.ClientConnectorError)
    return UpstreamError(f"network error talking to {far_end} ({name})", status=0, kind=FailureKind.NETWORK,
                         retryable=True, maybe_billed=sent)
