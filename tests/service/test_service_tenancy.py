"""Tenants are isolated: each client token reads only its own usage, caps, report and decisions,
and no answer to a client names another client or one of the desk's keys; the admin sees all."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from gateway_support import DESK_TOKEN, MESSAGES, OPS_TOKEN, SLOW_TOKEN, TIGHT_TOKEN
from quant_support import QUANT_TOKEN, quant_gateway

from lyra.config import ClientSettings
from lyra.errors import BudgetExceeded, NoModelAvailable
from lyra.service.auth import Client
from lyra.service.errors import ApiError
from lyra.service.tenancy import ClientView, budget_refusal, error_for
from lyra.simulator import Simulator
from support import KEY_NAMES

CLIENTS = {"desk": DESK_TOKEN, "slow": SLOW_TOKEN, "quant": QUANT_TOKEN, "tight": TIGHT_TOKEN}
OPS = {"Authorization": f"Bearer {OPS_TOKEN}"}
CHAT = {"model": "tier:fast", "messages": MESSAGES, "max_tokens": 30}
SEEN_BY_CLIENTS: list[tuple[str, str]] = []  # (client, body) of every answer a client got


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def call(session: aiohttp.ClientSession, method: str, url: str, token: str,
               body: object = None) -> tuple[int, Any]:
    data = orjson.dumps(body) if body is not None else None
    async with session.request(method, url, data=data, headers=auth(token)) as r:
        raw = await r.read()
    name = next((n for n, t in CLIENTS.items() if t == token), None)
    if name is not None:
        SEEN_BY_CLIENTS.append((name, raw.decode("utf-8", "replace")))
    return r.status, orjson.loads(raw) if raw.startswith((b"{", b"[")) else raw.decode()


def names_no_other(name: str, text: str) -> list[str]:
    """Other clients' names, and key names, that appear in a text a client `name` was given."""
    found = [other for other in CLIENTS
             if other != name and (f"client:{other}" in text or f"'{other}'" in text)]
    found += [key for key in KEY_NAMES if f"key:{key}" in text or f"via key {key}" in text
              or f'"key":"{key}"' in text or f"key_tokens:{key}" in text]
    return found


@pytest.fixture
async def desk_traffic(sim: Simulator, tmp_path: Path) -> Any:
    """A gateway where desk made 3 chats, quant 2 and a consensus and a pipeline decision, and
    tight was refused by its own cap (slow, limited to 2 requests a minute, only reads)."""
    SEEN_BY_CLIENTS.clear()
    async with quant_gateway(sim, tmp_path) as base, aiohttp.ClientSession() as session:
        for token, count in ((DESK_TOKEN, 3), (QUANT_TOKEN, 2)):
            for _ in range(count):
                status, body = await call(session, "POST", f"{base}/chat/completions", token, CHAT)
                assert status == 200, body
        status, body = await call(session, "POST", f"{base}/consensus", QUANT_TOKEN,
                                  {"messages": MESSAGES, "panel": "trade", "notional": 15000})
        assert status == 200, body
        status, body = await call(session, "POST", f"{base}/decide", QUANT_TOKEN, {"sample": "GOOGL"})
        assert status == 200, body
        status, body = await call(session, "POST", f"{base}/chat/completions", TIGHT_TOKEN, CHAT)
        assert status == 402, body
        yield base, session


async def test_usage_by_client_shows_a_client_its_own_line_and_the_admin_every_line(desk_traffic: Any) -> None:
    base, session = desk_traffic
    status, usage = await call(session, "GET", f"{base}/usage?by=client", OPS_TOKEN)
    groups = {line["group"]: line["requests"] for line in usage["data"]}
    assert groups["desk"] == 3 and groups["quant"] > 2 and groups["tight"] == 1 and "slow" not in groups
    for name in ("desk", "quant", "slow"):
        status, usage = await call(session, "GET", f"{base}/usage?by=client", CLIENTS[name])
        assert status == 200
        assert [(line["group"], line["requests"]) for line in usage["data"]] == (
            [(name, groups[name])] if name in groups else [])
        if name != "slow":  # two requests a minute
            status, usage = await call(session, "GET", f"{base}/usage?by=model", CLIENTS[name])
            assert sum(line["requests"] for line in usage["data"]) == groups[name]


async def test_usage_by_key_is_for_the_admin_only(desk_traffic: Any) -> None:
    base, session = desk_traffic
    status, body = await call(session, "GET", f"{base}/usage?by=key", DESK_TOKEN)
    assert status == 403 and body["error"]["code"] == "admin_only"
    status, body = await call(session, "GET", f"{base}/usage?by=key", OPS_TOKEN)
    assert status == 200 and {line["group"] for line in body["data"]} & set(KEY_NAMES)


async def test_budget_shows_a_client_its_own_cap_and_the_admin_all_caps(desk_traffic: Any) -> None:
    base, session = desk_traffic
    for name in ("desk", "slow", "quant"):
        status, budget = await call(session, "GET", f"{base}/budget", CLIENTS[name])
        assert status == 200
        assert [cap["name"] for cap in budget["caps"]] == [f"client:{name}"]
        assert budget["client"]["name"] == f"client:{name}"
        assert (budget["client"]["spent"] > 0) == (name != "slow")
    status, budget = await call(session, "GET", f"{base}/budget", OPS_TOKEN)
    names = {cap["name"] for cap in budget["caps"]}
    assert {"global", "client:desk", "client:slow", "client:quant"} <= names
    assert {f"key:{k}" for k in KEY_NAMES} <= names


async def test_report_is_a_clients_own_and_the_admins_whole(desk_traffic: Any) -> None:
    base, session = desk_traffic
    _, desk = await call(session, "GET", f"{base}/report?since=1d", DESK_TOKEN)
    _, quant = await call(session, "GET", f"{base}/report?since=1d", QUANT_TOKEN)
    _, whole = await call(session, "GET", f"{base}/report?since=1d", OPS_TOKEN)
    _, by_client = await call(session, "GET", f"{base}/usage?by=client", OPS_TOKEN)
    spend = {line["group"]: line["cost_nanos"] for line in by_client["data"]}
    assert desk["client"] == "desk" and desk["totals"]["requests"] == 3
    assert desk["totals"]["cost_nanos"] == spend["desk"]
    assert desk["keys"] == [] and desk["advice"] == [] and desk["decisions"] == []
    assert [cap["name"] for cap in desk["budget"]] == ["client:desk"]
    assert len(quant["decisions"]) == 1 and quant["totals"]["cost_nanos"] == spend["quant"]
    assert whole["client"] is None and len(whole["decisions"]) == 1
    assert whole["totals"]["cost_nanos"] == sum(spend.values())
    assert {k["key"] for k in whole["keys"]} & set(KEY_NAMES)


async def test_metrics_are_for_the_admin(desk_traffic: Any) -> None:
    base, session = desk_traffic
    root = base.removesuffix("/v1")
    async with session.get(f"{root}/metrics") as r:
        assert r.status == 401
    status, _ = await call(session, "GET", f"{root}/metrics", DESK_TOKEN)
    assert status == 403
    status, text = await call(session, "GET", f"{root}/metrics", OPS_TOKEN)
    assert status == 200 and 'client="desk"' in text


async def test_consensus_and_decisions_never_show_a_client_the_keys(desk_traffic: Any) -> None:
    base, session = desk_traffic
    body = {"messages": MESSAGES, "panel": "trade", "notional": 15000}
    status, mine = await call(session, "POST", f"{base}/consensus", QUANT_TOKEN, body)
    assert status == 200 and mine["votes"] and all("key" not in vote for vote in mine["votes"])
    status, theirs = await call(session, "POST", f"{base}/consensus", OPS_TOKEN, body)
    assert status == 200 and all(vote["key"] in KEY_NAMES for vote in theirs["votes"])


async def test_no_answer_to_a_client_names_another_client_or_a_key(desk_traffic: Any) -> None:
    base, session = desk_traffic
    for token in (DESK_TOKEN, QUANT_TOKEN, TIGHT_TOKEN):
        for path in ("/budget", "/report?since=1d", "/usage?by=client", "/usage?by=model", "/usage?by=tier"):
            await call(session, "GET", f"{base}{path}", token)
        await call(session, "POST", f"{base}/chat/completions", token, CHAT | {"model": "tier:premium"})
    leaks = [(name, names_no_other(name, text)) for name, text in SEEN_BY_CLIENTS]
    assert [leak for leak in leaks if leak[1]] == []
    assert len(SEEN_BY_CLIENTS) > 20
    assert any("client 'tight' has reached its daily cap" in text
               for _, text in SEEN_BY_CLIENTS)


# --- refusals as a client sees them, from the governor's own exception ---------------------------

def client(name: str, *, role: str = "client") -> Client:
    return Client(name, ClientSettings.model_validate({"token_sha256": "0" * 64, "daily_usd": 5, "role": role}))


def shown(error: ApiError) -> dict[str, Any]:
    """The error object of the response body, as the client reads it."""
    found: dict[str, Any] = orjson.loads(error.response().body)["error"]
    return found


def refusal(cap: str) -> BudgetExceeded:
    return BudgetExceeded(f"budget cap {cap} reached for openai/gpt-4o via key premium: $4.99 of $5.00 used "
                          "or held, worst case $0.02 needed", cap=cap, unit="usd", limit=5_000_000_000,
                          used=4_990_000_000, needed=20_000_000, resets_at=1_790_000_000.0)


def test_a_refusal_by_a_clients_own_cap_tells_it_the_cap_the_need_and_the_reset() -> None:
    body = shown(budget_refusal(refusal("client:desk"), client("desk")))
    assert body["budget"] == {"cap": "client:desk", "unit": "usd", "needed": 0.02, "limit": 5, "used": 4.99,
                              "resets_at": "2026-09-21T14:13:20Z"}
    assert "premium" not in body["message"] and "$5.00" in body["message"] and "$0.02" in body["message"]


@pytest.mark.parametrize("cap", ["key:premium", "global", "tier:fast", "client:slow"])
def test_a_refusal_by_a_shared_cap_tells_a_client_the_need_and_the_reset_but_not_the_cap(cap: str) -> None:
    body = shown(budget_refusal(refusal(cap), client("desk")))
    assert body["budget"] == {"cap": "shared", "unit": "usd", "needed": 0.02, "resets_at": "2026-09-21T14:13:20Z"}
    assert "premium" not in body["message"] and "$4.99" not in body["message"] and "slow" not in body["message"]
    admin = shown(budget_refusal(refusal(cap), client("ops", role="admin")))
    assert cap in admin["message"] and "via key premium" in admin["message"]


def test_other_errors_reach_a_client_without_key_names() -> None:
    view = ClientView(KEY_NAMES)
    exc = NoModelAvailable("no model could serve: openai/gpt-4o via key premium: 503; budget cap key:xai reached")
    message = shown(error_for(exc, client("desk"), view))["message"]
    assert "premium" not in message and "xai" not in message and "a shared key" in message
    assert "via key premium" in shown(error_for(exc, client("ops", role="admin"), view))["message"]
