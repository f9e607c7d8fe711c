"""GET /v1/usage (ledger summaries) and GET /v1/budget (today's caps)."""

from __future__ import annotations

import contextlib
import time
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from lyra import analytics
from lyra.budget.cap_json import cap_line_json
from lyra.budget.governor import CapLine
from lyra.days import day_bounds
from lyra.ledger import SUMMARY_DIMENSIONS, Ledger
from lyra.money import json_default
from lyra.service.errors import ApiError, bad_request
from lyra.service.gateway import gateway_of
from lyra.service.tenancy import iso_utc, own_cap_name, require_admin, visible_caps

_FLUSH_TIMEOUT_S = 2.0


async def usage(request: Request) -> Response:
    """An admin's usage of the whole desk; a client's of its own requests only (never by key).

    `by=user` groups by the requests' `user`, `by=tag` by their tags (a request in each of its tags).
    """
    gateway = gateway_of(request)
    client = await gateway.admit(request)
    ledger = gateway.ledger_for("usage")
    by = request.query_params.get("by", "model")
    if by not in SUMMARY_DIMENSIONS:
        raise bad_request("by", f"by: expected one of {', '.join(SUMMARY_DIMENSIONS)}, got {by!r}")
    if by == "key":
        require_admin(client, "usage by key")
    try:
        text = request.query_params.get("since", "1d")
        since = analytics.since(text, time.time(), allow_future=True).start_ts
    except analytics.WindowError as exc:
        raise bad_request("since", str(exc)) from None
    scope = None if client.admin else client.name  # a client's users and tags are its own rows' only
    try:
        lines = await gateway.read_ledger(lambda: _summary(ledger, since, by, scope))
    except ValueError as exc:  # too many distinct tags in the window to group by
        raise bad_request("by", str(exc)) from None
    return _json({"object": "usage", "since": since, "by": by, "client": scope, "data": lines})


def _summary(ledger: Ledger, since: float, by: str, client: str | None) -> list[dict[str, object]]:
    """Commit queued rows first, so the answer includes the requests just made."""
    with contextlib.suppress(TimeoutError):  # a slow database: answer with what is committed
        ledger.flush(_FLUSH_TIMEOUT_S)
    return [line.to_json() for line in ledger.summary(since_ts=since, by=by, client=client)]


async def budget(request: Request) -> Response:
    """Today's caps: a client's own daily cap, or every cap for an admin; and when they reset."""
    gateway = gateway_of(request)
    client = await gateway.admit(request)
    governor = gateway.lyra.budget
    if governor is None:
        raise ApiError(503, "the engine is not started", type="service_unavailable", code="not_ready")
    caps = visible_caps(await governor.snapshot(), client)
    mine = next((cap for cap in caps if cap.name == own_cap_name(client)), None)
    day = governor.day()
    _, resets = day_bounds(day, gateway.lyra.settings.budget.day_starts_utc_hour)
    money = "simulated" if gateway.lyra.config.simulated else "real"  # as `lyra budget --json` says it
    return _json({"object": "budget", "day": f"{day[:4]}-{day[4:6]}-{day[6:]}", "money": money,
                  "resets_at": iso_utc(resets), "client": _cap(mine) if mine else None,
                  "caps": [_cap(cap) for cap in caps]})


def _cap(cap: CapLine) -> dict[str, Any]:
    return cap_line_json(cap)  # the same shape as `lyra budget --json`


def _json(payload: dict[str, Any]) -> Response:
    return Response(orjson.dumps(payload, default=json_default), media_type="application/json")
