"""A plain OpenAI-compatible chat server for tests: not the simulator, and nothing of OpenRouter's.

It answers POST /v1/chat/completions (JSON, or SSE with `stream: true`) and GET /v1/models in
OpenAI's shape: ids `chatcmpl-...`, `usage` with token counts and no cost, no `provider`, no
`X-Generation-Id`. It records every body and the headers it was sent, can require a bearer key,
fail its next N calls with a status, and be stopped (a dead upstream: connections refused).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

DECISION = ('{"action": "BUY", "confidence": 0.9, "rationale": "fine-tuned view", "horizon": "1h", '
            '"stop_loss": null, "take_profit": null}')


@dataclass
class OpenAIServer:
    """One loopback server; `base_url` ends in /v1 as vLLM's and llama.cpp's do."""

    models: list[str] = field(default_factory=lambda: ["my-signal-ft"])
    api_key: str | None = None  # when set, every call must carry `Authorization: Bearer <api_key>`
    content: str = DECISION
    listing_pricing: dict[str, dict[str, str]] = field(default_factory=dict)  # id -> OpenRouter-shaped pricing
    bodies: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    report_usage: bool = True  # False: answers without `usage`, as some servers stream
    fail_next: int = 0
    fail_status: int = 500
    _runner: web.AppRunner | None = None
    port: int = 0
    _ids: itertools.count[int] = field(default_factory=itertools.count)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def calls(self) -> int:
        return len(self.bodies)

    async def start(self) -> OpenAIServer:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def _refusal(self, request: web.Request) -> web.Response | None:
        if self.api_key is not None and request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return _error(401, "Incorrect API key provided", "invalid_api_key")
        return None

    async def _models(self, request: web.Request) -> web.Response:
        if (refused := self._refusal(request)) is not None:
            return refused
        data = []
        for model in self.models:
            entry: dict[str, Any] = {"id": model, "object": "model", "created": 1700000000, "owned_by": "me"}
            if model in self.listing_pricing:
                entry["pricing"] = self.listing_pricing[model]
            data.append(entry)
        return web.json_response({"object": "list", "data": data})

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        self.bodies.append(body)
        self.headers.append(dict(request.headers))
        if (refused := self._refusal(request)) is not None:
            return refused
        if self.fail_next > 0:
            self.fail_next -= 1
            return _error(self.fail_status, "The server had an error while processing your request.", "server_error")
        if body.get("model") not in self.models:
            return _error(404, f"The model `{body.get('model')}` does not exist", "model_not_found")
        prompt = sum(len(str(m.get("content", ""))) // 4 + 4 for m in body["messages"])
        words = self.content.split(" ")
        completion = len(words)
        ident = f"chatcmpl-{next(self._ids):06d}"
        usage = {"prompt_tokens": prompt, "completion_tokens": completion,
                 "total_tokens": prompt + completion}
        if not body.get("stream"):
            answer = {
                "id": ident, "object": "chat.completion", "created": 1700000000, "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": self.content},
                             "logprobs": None, "finish_reason": "stop"}],
                "usage": usage, "system_fingerprint": "fp_test"}
            if not self.report_usage:
                del answer["usage"]
            return web.json_response(answer)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for i, word in enumerate(words):
            piece = word if i == 0 else " " + word
            await response.write(_sse({"id": ident, "object": "chat.completion.chunk", "created": 1700000000,
                                       "model": body["model"], "choices": [
                                           {"index": 0, "delta": {"content": piece}, "finish_reason": None}]}))
        await response.write(_sse({"id": ident, "object": "chat.completion.chunk", "created": 1700000000,
                                   "model": body["model"],
                                   "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
        if self.report_usage and (body.get("stream_options") or {}).get("include_usage"):
            await response.write(_sse({"id": ident, "object": "chat.completion.chunk", "created": 1700000000,
                                       "model": body["model"], "choices": [], "usage": usage}))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


def _sse(payload: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def _error(status: int, message: str, code: str) -> web.Response:
    return web.json_response({"error": {"message": message, "type": "invalid_request_error", "param": None,
                                        "code": code}}, status=status)
