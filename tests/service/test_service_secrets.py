"""No secret, an OpenRouter key or a client token, reaches a response, a log line or a metric."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import orjson
import pytest
from gateway_support import DESK_TOKEN, MESSAGES, SLOW_TOKEN, TIGHT_TOKEN, gateway_config_text, running

from lyra import Lyra
from lyra.service import ServiceOptions, create_app
from lyra.simulator import Fault, Simulator
from support import TOKENS, engine_env

CLIENT_TOKENS = (DESK_TOKEN, TIGHT_TOKEN, SLOW_TOKEN)


def secret_fragments() -> list[str]:
    """Each secret whole, and the distinctive middle of each, so a partial leak shows too."""
    secrets = [*TOKENS.values(), *CLIENT_TOKENS]
    return secrets + [s[len(s) // 3: len(s) // 3 + 12] for s in secrets]


@pytest.fixture
async def logged_gateway(sim: Simulator, tmp_path: Path) -> AsyncIterator[str]:
    path = tmp_path / "lyra.toml"
    path.write_text(gateway_config_text())
    environ = engine_env(sim) | {"LYRA_LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.db'}"}
    lyra = Lyra.from_config(path, environ=environ)
    async with running(create_app(lyra, options=ServiceOptions(access_log=True))) as url:
        yield url


async def test_no_secret_in_any_response_log_or_metric(
    logged_gateway: str, sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    base, root = logged_gateway, logged_gateway.removesuffix("/v1")
    seen: list[str] = []

    async def call(session: aiohttp.ClientSession, method: str, url: str, token: str | None,
                   body: object = None) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        data = orjson.dumps(body) if body is not None else None
        async with session.request(method, url, data=data, headers=headers) as r:
            seen.append(f"{r.status} {dict(r.headers)} {await r.text()}")

    chat = f"{base}/chat/completions"
    ok = {"model": "tier:fast", "messages": MESSAGES, "max_tokens": 40}
    async with aiohttp.ClientSession() as session:
        await call(session, "POST", chat, DESK_TOKEN, ok)
        await call(session, "POST", chat, DESK_TOKEN, ok | {"stream": True})
        await call(session, "POST", chat, TIGHT_TOKEN, ok)  # 402
        await call(session, "POST", chat, DESK_TOKEN, ok | {"model": "tier:premium"})  # 403
        await call(session, "POST", chat, DESK_TOKEN, {"model": "x"})  # 400
        await call(session, "POST", chat, TOKENS["premium"], ok)  # an OpenRouter key as a client token: 401
        await call(session, "POST", chat, DESK_TOKEN + "x", ok)  # 401
        sim.add_fault(Fault(kind="revoked_key", count=8))  # every key's 401 from upstream
        await call(session, "POST", chat, DESK_TOKEN, ok)
        sim.clear_faults()
        sim.add_fault(Fault(kind="server_error"))
        await call(session, "POST", chat, DESK_TOKEN, ok)  # 503
        sim.add_fault(Fault(kind="midstream_error"))
        await call(session, "POST", chat, DESK_TOKEN, ok | {"stream": True})
        sim.clear_faults()
        for path in ("/models", "/usage?since=1d&by=key", "/budget"):
            await call(session, "GET", base + path, DESK_TOKEN)
        for path in ("/metrics", "/healthz", "/readyz"):
            await call(session, "GET", root + path, None)
    statuses = {text.split(" ", 1)[0] for text in seen}
    assert {"200", "400", "401", "402", "403", "503"} <= statuses, statuses
    haystack = "\n".join(seen) + "\n" + caplog.text + "\n".join(repr(r.args) for r in caplog.records)
    assert '"path": "/v1/chat/completions"' in caplog.text or '"path":"/v1/chat/completions"' in caplog.text
    for fragment in secret_fragments():
        assert fragment not in haystack, f"a secret leaked: ...{fragment[:4]}..."
