"""GET /v1/report: the analytics report of a window (`?since=7d` or `?day=2025-01-31`) as JSON."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence

import orjson
from starlette.requests import Request
from starlette.responses import Response

from lyra import analytics
from lyra.budget.governor import CapLine
from lyra.ledger import Ledger
from lyra.money import json_default
from lyra.service.access import tier_of_model
from lyra.service.errors import bad_request
from lyra.service.gateway import Gateway, gateway_of
from lyra.service.tenancy import visible_caps

_FLUSH_TIMEOUT_S = 2.0


async def report(request: Request) -> Response:
    gateway = gateway_of(request)
    client = await gateway.admit(request)
    ledger = gateway.ledger_for("the report")
    window = _window(request)
    caps = await gateway.lyra.budget.snapshot() if gateway.lyra.budget is not None else []
    shown, scope = visible_caps(caps, client), None if client.admin else client.name
    breakers = gateway.lyra.router.breaker.phases() if client.admin else {}  # the desk's routing: operators'
    built = await gateway.read_ledger(lambda: _build(gateway, ledger, window, shown, scope, breakers))
    return Response(orjson.dumps(built.to_dict(), default=json_default), media_type="application/json",
                    headers={"Cache-Control": "no-store"})


def _window(request: Request) -> analytics.Window:
    params = request.query_params
    if "day" in params and "since" in params:
        raise bad_request("day", "day: give either day or since, not both")
    try:
        if "day" in params:
            return analytics.day(params["day"])
        return analytics.since(params.get("since", "1d"), time.time())
    except analytics.WindowError as exc:
        raise bad_request("day" if "day" in params else "since", str(exc)) from None


def _build(gateway: Gateway, ledger: Ledger, window: analytics.Window,
           caps: Sequence[CapLine], client: str | None, breakers: dict[str, str]) -> analytics.Report:
    """Commit queued rows first, so the report includes the requests just made; `client` scopes it."""
    with contextlib.suppress(TimeoutError):  # a slow database: report what is committed
        ledger.flush(_FLUSH_TIMEOUT_S)
    return analytics.build_report(ledger, window, caps=caps, client=client, breakers=breakers,
                                  tier_of=lambda model: tier_of_model(gateway.lyra, model))
