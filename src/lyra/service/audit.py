"""GET /v1/audit/{ref}: one recorded decision (by sequence number or decision id), the dashboard's link.

An operator reads any record; a client only the decisions it made itself (any other answers 404,
as one that does not exist, so a client learns nothing of others), with key names written out.
"""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response

from lyra.ledger import AuditRecord
from lyra.service.errors import ApiError, bad_request
from lyra.service.gateway import gateway_of

MAX_REF = 64


async def audit_record(request: Request) -> Response:
    gateway = gateway_of(request)
    client = await gateway.admit(request)
    ledger = gateway.ledger_for("the audit trail")
    ref = request.path_params["ref"]
    if not ref or len(ref) > MAX_REF or not all(ch.isalnum() or ch in "-_" for ch in ref):
        raise bad_request("ref", "ref: expected a decision's sequence number or id")
    record: AuditRecord | None = await gateway.read_ledger(lambda: ledger.audit.get(ref))
    if record is None or not (client.admin or record.payload.get("client") == client.name):
        raise ApiError(404, f"ref: no decision {ref!r} in the audit trail", type="invalid_request_error",
                       param="ref", code="not_found")
    body = {"object": "audit_record", "seq": record.seq, "decision_id": record.decision_id, "ts": record.ts,
            "symbol": record.symbol, "action": record.action, "cost_nanos": record.cost_nanos,
            "hash": record.hash, "prev_hash": record.prev_hash,
            "decision": gateway.view.for_client(record.payload, client)}
    return Response(orjson.dumps(body), media_type="application/json", headers={"Cache-Control": "no-store"})
