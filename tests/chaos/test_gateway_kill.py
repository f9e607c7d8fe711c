"""Behaviour B: an answer leaves the gateway only once its ledger rows are durable, so a SIGKILL
loses no row of an answer a client holds, and a restart on the same files keeps the cap."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from chaos.configs import gateway_config
from chaos.ledger_reads import attempt_cost_nanos, integrity_ok, ok_attempt, ok_generation_ids
from chaos.processes import LaunchGateway, SimulatorProcess, kill_group, poll_until
from chaos.traffic import SteadyTraffic, answered_ids, chat_body, fire, new_session, post_chat, statuses

pytestmark = pytest.mark.chaos

CAP_USD = 0.004
CAP = 4_000_000  # nano-dollars: about 180 answers of the test prompt
ANSWERS_BEFORE_KILL = 40  # about a fifth of the cap: the restart has spend to rebuild and room to use
TRAFFIC_DEADLINE_S = 120.0


def ledger_file(data_home: Path) -> Path:
    """Where the default config keeps the ledger when keys are set."""
    return data_home / "lyra" / "ledger.db"


def nanos_of(cost: float) -> int:
    """usage.cost of a response body (USD, exact in its decimal form) in nano-dollars."""
    return int(Decimal(str(cost)) * 10**9)


async def test_every_answer_is_in_the_ledger_when_the_client_receives_it(
    tmp_path: Path, data_home: Path, gateway_env: dict[str, str], launch_gateway: LaunchGateway
) -> None:
    gateway = await launch_gateway(gateway_config(tmp_path, desk_usd=5.0), gateway_env)
    async with new_session() as session:
        for _ in range(30):
            answer = await post_chat(session, gateway.url, chat_body())
            assert answer.status == 200 and answer.body is not None
            generation_id = answer.body["id"]
            row = ok_attempt(ledger_file(data_home), generation_id)  # read at once: no waiting for a flush
            assert generation_id.startswith("gen-")
            assert row is not None, f"{generation_id} answered but not yet in the ledger"
            assert isinstance(row["cost_nanos"], int)
            assert row["cost_nanos"] == nanos_of(answer.body["usage"]["cost"]) > 0
            assert not row["simulated"]


async def test_sigkill_under_steady_traffic_loses_no_answered_row_and_the_restart_keeps_the_cap(
    tmp_path: Path, data_home: Path, upstream: SimulatorProcess, gateway_env: dict[str, str],
    launch_gateway: LaunchGateway
) -> None:
    config = gateway_config(tmp_path, desk_usd=CAP_USD)
    gateway = await launch_gateway(config, gateway_env)
    async with SteadyTraffic(gateway.url, concurrency=8) as traffic:

        async def enough_answers() -> bool:
            return traffic.answered() >= ANSWERS_BEFORE_KILL

        await poll_until(enough_answers, deadline_s=TRAFFIC_DEADLINE_S, what="answers before the kill")
        await kill_group(gateway.proc)
    received = answered_ids(traffic.outcomes)
    ledger = ledger_file(data_home)
    assert integrity_ok(ledger)
    assert set(received) <= ok_generation_ids(ledger), "answers a client holds are missing from the ledger"

    restarted = await launch_gateway(config, gateway_env)
    after = statuses(await fire([restarted.url], 400, concurrency=8))
    billed = await upstream.billed_nanos()
    print(f"\n{len(received)} answers before SIGKILL; after restart {dict(after)}; billed {billed} of {CAP}")
    assert set(after) <= {200, 402}, after
    assert after[200] > 0, "the restart should still have had room under the cap"
    assert after[402] > 0, "the cap must bind after the restart"
    assert billed <= CAP
    assert attempt_cost_nanos(ledger) <= CAP
