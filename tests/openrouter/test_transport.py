"""The transport against a bare loopback server: bodies the simulator never sends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from aiohttp import web

from lyra import Lyra, UpstreamError
from lyra.openrouter import OpenRouterTransport
from support import fast_config_text

NO_COST = {"id": "gen-1-abc", "object": "chat.completion", "model": "openai/gpt-4o-mini", "provider": "OpenAI",
           "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "ok"}}],
           "usage": {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500}}


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    seen: list[dict[str, str]] = []

    async def chat(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.Response(body=orjson.dumps(NO_COST), content_type="application/json")

    app = web.Application()
    app.router.add_post("/api/v1/chat/completions", chat)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}/api/v1", seen
    await runner.cleanup()


async def test_missing_usage_cost_is_estimated_from_the_catalogue(
    upstream: tuple[str, list[dict[str, str]]], tmp_path: Path
) -> None:
    base_url, seen = upstream
    path = tmp_path / "lyra.toml"
    path.write_text(fast_config_text())
    env = {"OPENROUTER_API_KEY": "sk-or-v1-" + "ab" * 32, "LYRA_OPENROUTER_BASE_URL": base_url}
    async with Lyra.from_config(path, environ=env) as lyra:
        c = await lyra.complete(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert c.cost_estimated
    assert c.cost_nanos == 1000 * 150 + 500 * 600  # $0.15 and $0.60 per 1M tokens: 150 and 600 nano-$ a token
    headers = seen[0]
    assert headers["X-Title"] == "Lyra Trading System" and headers["X-OpenRouter-Title"] == "Lyra Trading System"
    assert headers["HTTP-Referer"].startswith("https://")
    assert headers["Authorization"] == f"Bearer {env['OPENROUTER_API_KEY']}"


async def test_connection_refused_is_a_network_error_not_billed() -> None:
    transport = OpenRouterTransport(base_url="http://127.0.0.1:9/api/v1")
    try:
        with pytest.raises(UpstreamError) as info:
            await transport.chat(b"{}", api_key="sk-or-v1-x", timeout_s=2)
    finally:
        await transport.close()
    assert info.value.kind == "network" and info.value.retryable
    assert not info.value.maybe_billed  # it never reached OpenRouter: nothing to hold against a cap
