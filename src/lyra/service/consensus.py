"""POST /v1/consensus: a configured panel's weighted vote on the caller's messages."""

from __future__ import annotations

import orjson
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from lyra.money import json_default, usd_fields_exact
from lyra.service.access import panel_tiers, require_tiers
from lyra.service.answer_headers import spend_headers
from lyra.service.body import read_body
from lyra.service.chat_request import ChatMessage
from lyra.service.errors import bad_request
from lyra.service.gateway import gateway_of
from lyra.service.validate import parse_body


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
    body = parse_body(ConsensusBody, await read_body(request, gateway.options))
    if len(body.messages) > gateway.options.max_messages:
        raise bad_request("messages", f"messages: {len(body.messages)} messages, more than this gateway "
                                      f"allows ({gateway.options.max_messages})")
    require_tiers(client, panel_tiers(gateway.lyra, body.panel), f"panel {body.panel!r}")
    messages = [m.model_dump(exclude_none=True) for m in body.messages]
    result = await gateway.lyra.consensus(messages=messages, panel=body.panel, notional=body.notional,
                                          cascade=body.cascade, client=client.name)
    answer = gateway.view.for_client(usd_fields_exact(result.to_dict()), client)  # no key names for clients
    return Response(orjson.dumps(answer, default=json_default), media_type="application/json",
                    headers=await spend_headers(gateway.lyra, client, result.cost_nanos))
