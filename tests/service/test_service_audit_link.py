"""GET /v1/audit/{ref}: the dashboard's link to a decision's audit record, within the tenancy rules."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import orjson
from gateway_support import DESK_TOKEN, OPS_TOKEN
from quant_support import QUANT_TOKEN, quant_gateway

from lyra.simulator import Simulator

QUANT = {"Authorization": f"Bearer {QUANT_TOKEN}"}


def _has_key_field(value: object) -> bool:
    if isinstance(value, dict):
        return "key" in value or any(_has_key_field(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_key_field(v) for v in value)
    return False


async def test_a_client_reads_its_own_decisions_record_an_operator_any_and_no_one_another_clients(
    sim: Simulator, tmp_path: Path
) -> None:
    async with quant_gateway(sim, tmp_path) as base, aiohttp.ClientSession() as session:
        async with session.post(f"{base}/decide", json={"sample": "GOOGL"}, headers=QUANT) as r:
            assert r.status == 200, await r.text()
        async with session.get(f"{base}/report?since=1d", headers=QUANT) as r:
            decision = orjson.loads(await r.read())["decisions"][0]

        async def get(ref: str, token: str) -> tuple[int, dict[str, object]]:
            async with session.get(f"{base}/audit/{ref}", headers={"Authorization": f"Bearer {token}"}) as r:
                return r.status, orjson.loads(await r.read())

        status, own = await get(str(decision["seq"]), QUANT_TOKEN)
        assert status == 200 and own["decision_id"] == decision["decision_id"]
        assert own["hash"] == decision["audit_hash"] and not _has_key_field(own["decision"])
        status, by_id = await get(str(decision["decision_id"]), QUANT_TOKEN)
        assert status == 200 and by_id["seq"] == decision["seq"]
        status, desk = await get(str(decision["seq"]), OPS_TOKEN)
        assert status == 200 and _has_key_field(desk["decision"])  # an operator sees which key paid
        status, other = await get(str(decision["seq"]), DESK_TOKEN)  # not desk's decision: as if none
        assert status == 404 and other["error"]["param"] == "ref"  # type: ignore[index]
        assert (await get("999", QUANT_TOKEN))[0] == 404
        status, bad = await get("a%20b", QUANT_TOKEN)
        assert status == 400 and bad["error"]["param"] == "ref"  # type: ignore[index]
        async with session.get(f"{base}/audit/{decision['seq']}") as r:
            assert r.status == 401
