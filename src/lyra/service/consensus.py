"""POST /v1/consensus: a configured panel's weighted vote on the caller's messages."""

from __future__ import annotations

from dataclasses import replace

import orjson
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from lyra.consensus import ConsensusEngine
from lyra.service.access import panel_tiers, require_tiers
from lyra.service.auth import Client
from lyra.service.body import read_body
from lyra.service.chat_request import ChatMessage
from lyra.service.errors import bad_request
from lyra.service.gateway import Gateway, gateway_of
from lyra.service.validate import parse_body
from lyra.types import Completion, CompletionRequest


class ConsensusBody(BaseModel):
    """{"messages": [...], "panel": "trade", "notional": 15000, "cascade": true}."""

    model_config = ConfigDict(strict=True, extra="forbid")

    messages: list[ChatMessage] = Field(min_length=1)
    panel: str = Field("trade", min_length=1, max_length=128)
    notional: float | None = Field(None, ge=0)
    cascade: bool = True


async def consensus(request: Request) -> Response:
    gateway = gateway_of(request)
    client = await gateway.admit(request)
    body = parse_body(ConsensusBody, await read_body(request, gateway.options.max_body_bytes))
    if len(body.messages) > gateway.options.max_messages:
        raise bad_request("messages", f"messages: {len(body.messages)} messages, more than this gateway "
                                      f"allows ({gateway.options.max_messages})")
    require_tiers(client, panel_tiers(gateway.lyra, body.panel), f"panel {body.panel!r}")
    engine = client_consensus(gateway, client)
    messages = [m.model_dump(exclude_none=True) for m in body.messages]
    if body.cascade:
        result = await engine.decide(messages, panel=body.panel, notional=body.notional)
    else:
        result = await engine.ask(messages, panel=body.panel, notional=body.notional)
    return Response(orjson.dumps(result.to_dict()), media_type="application/json")


def client_consensus(gateway: Gateway, client: Client) -> ConsensusEngine:
    """A consensus engine whose every member call is charged to `client`'s daily budget."""
    lyra = gateway.lyra

    async def call(request: CompletionRequest) -> Completion:
        return await lyra.run(replace(request, client=client.name))

    return ConsensusEngine(lyra.settings, call)
