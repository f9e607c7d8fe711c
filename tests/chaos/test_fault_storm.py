"""Behaviour E: thousands of calls through a gateway while the simulator injects faults at a high
rate; the ledger's attempt rows add up to what the simulator billed, to the nano-dollar, and
ambiguous faults (the call may have been billed) are booked at the worst case."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos.configs import gateway_config
from chaos.ledger_reads import attempt_cost_nanos
from chaos.processes import LaunchGateway, SimulatorProcess, terminate
from chaos.traffic import GONE, fire, statuses

pytestmark = pytest.mark.chaos

BILLED_FAULTS = ("rate_limit", "server_error", "error_in_200", "malformed", "midstream_error")
BILLED_FAULT_RATE = 0.1  # each, drawn in turn: about 40 % of the calls meet one
STORM_REQUESTS = 2000
AMBIGUOUS_REQUESTS = 400


def ledger_file(data_home: Path) -> Path:
    return data_home / "lyra" / "ledger.db"


async def test_billed_faults_at_a_high_rate_leave_the_ledger_equal_to_what_upstream_billed(
    tmp_path: Path, data_home: Path, upstream: SimulatorProcess, gateway_env: dict[str, str],
    launch_gateway: LaunchGateway
) -> None:
    for kind in BILLED_FAULTS:
        await upstream.add_fault(kind, rate=BILLED_FAULT_RATE)
    gateway = await launch_gateway(gateway_config(tmp_path, desk_usd=100.0, storm=True), gateway_env)
    seen = statuses(await fire([gateway.url], STORM_REQUESTS, concurrency=16, stream_every=3))
    stats = await upstream.stats()
    await terminate(gateway.proc)
    ledger = attempt_cost_nanos(ledger_file(data_home))
    print(f"\nstorm: {dict(seen)}; faults {stats['faults_fired']}; billed {stats['total_cost_nanos']}, "
          f"ledger {ledger}")
    assert set(stats["faults_fired"]) == set(BILLED_FAULTS)
    assert 500 not in seen and GONE not in seen, seen
    assert seen[200] > STORM_REQUESTS // 2
    assert ledger == stats["total_cost_nanos"] > 0


async def test_ambiguous_faults_are_booked_at_the_worst_case(
    tmp_path: Path, data_home: Path, upstream: SimulatorProcess, gateway_env: dict[str, str],
    launch_gateway: LaunchGateway
) -> None:
    await upstream.add_fault("timeout", rate=0.05, hang_s=2.0)  # outlasts the gateway's 0.5 s timeout
    await upstream.add_fault("drop", rate=0.1)
    config = gateway_config(tmp_path, desk_usd=100.0, timeout_s=0.5, storm=True)
    gateway = await launch_gateway(config, gateway_env)
    seen = statuses(await fire([gateway.url], AMBIGUOUS_REQUESTS, concurrency=16, stream_every=3))
    stats = await upstream.stats()
    await terminate(gateway.proc)
    ledger = attempt_cost_nanos(ledger_file(data_home))
    print(f"\nambiguous: {dict(seen)}; faults {stats['faults_fired']}; billed {stats['total_cost_nanos']}, "
          f"ledger {ledger}")
    assert set(stats["faults_fired"]) == {"timeout", "drop"}
    assert 500 not in seen, seen
    assert ledger >= stats["total_cost_nanos"] > 0
