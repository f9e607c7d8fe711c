"""Behaviour C: a Redis state backend that dies, hangs or comes back empty under a running gateway.

Admissions fail closed (503 with Retry-After, nothing sent upstream without a reservation) while
Redis is away, and succeed again once it is back; an empty Redis is detected and the day rebuilt
from the ledger, so the client's cap, measured as what upstream billed, still holds.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from chaos.configs import gateway_config, redis_state
from chaos.processes import GatewayProcess, LaunchGateway, RedisServer, SimulatorProcess, poll_until
from chaos.traffic import SteadyTraffic, chat_body, fire, new_session, post_chat, statuses

pytestmark = pytest.mark.chaos

CAP_USD = 0.004
CAP = 4_000_000  # nano-dollars: about 180 answers of the test prompt
ANSWERS_BEFORE_WIPE = 60  # a third of the cap spent before Redis forgets it
REFUSALS_TO_END = 20  # the cap binds: enough 402s in a row of traffic to stop
FROZEN_CLIENT_TIMEOUT_S = 30.0  # generous beside the gateway's own deadline (deadline_s = 10)
RECOVERY_DEADLINE_S = 60.0
TRAFFIC_DEADLINE_S = 180.0


async def redis_gateway(tmp_path: Path, env: dict[str, str], redis: RedisServer, launch: LaunchGateway,
                        *, desk_usd: float = 5.0) -> GatewayProcess:
    config = gateway_config(tmp_path, desk_usd=desk_usd, state=redis_state())
    return await launch(config, env | {"LYRA_REDIS_URL": redis.url})


def assert_fail_closed(outcomes: list, calls_before: int, calls_after: int) -> None:  # type: ignore[type-arg]
    """Every request refused with 503 and a Retry-After header, and none reached upstream."""
    assert statuses(outcomes) == {503: len(outcomes)}, statuses(outcomes)
    assert all(o.retry_after for o in outcomes), [o.retry_after for o in outcomes]
    assert calls_after == calls_before, "a call went upstream without a reservation"


async def served_again(gateway: GatewayProcess) -> None:
    """Poll with single requests until the gateway answers 200 again."""
    async with new_session() as session:

        async def answered() -> bool:
            return (await post_chat(session, gateway.url, chat_body())).status == 200

        await poll_until(answered, deadline_s=RECOVERY_DEADLINE_S, what="the gateway to serve again")


async def test_a_stopped_redis_is_answered_503_with_retry_after_and_nothing_goes_upstream(
    tmp_path: Path, upstream: SimulatorProcess, gateway_env: dict[str, str], private_redis: RedisServer,
    launch_gateway: LaunchGateway
) -> None:
    gateway = await redis_gateway(tmp_path, gateway_env, private_redis, launch_gateway)
    assert statuses(await fire([gateway.url], 5, concurrency=1)) == {200: 5}
    await private_redis.kill()
    calls_before = await upstream.calls()
    refused = await fire([gateway.url], 20, concurrency=4)
    assert_fail_closed(refused, calls_before, await upstream.calls())
    await private_redis.start()
    await served_again(gateway)


async def test_a_frozen_redis_is_answered_503_then_served_after_sigcont(
    tmp_path: Path, upstream: SimulatorProcess, gateway_env: dict[str, str], private_redis: RedisServer,
    launch_gateway: LaunchGateway
) -> None:
    gateway = await redis_gateway(tmp_path, gateway_env, private_redis, launch_gateway)
    assert statuses(await fire([gateway.url], 5, concurrency=1)) == {200: 5}
    private_redis.freeze()
    calls_before = await upstream.calls()
    refused = await fire([gateway.url], 4, concurrency=4, timeout_s=FROZEN_CLIENT_TIMEOUT_S)
    calls_after = await upstream.calls()
    private_redis.thaw()
    assert_fail_closed(refused, calls_before, calls_after)
    await served_again(gateway)


async def run_until_the_cap_binds(gateway: GatewayProcess, wipe: Callable[[], Awaitable[None]]) -> SteadyTraffic:
    """Steady traffic; `wipe` Redis once a third of the cap is spent; go on until 402s come back."""
    async with SteadyTraffic(gateway.url, concurrency=8) as traffic:

        async def spent_a_third() -> bool:
            return traffic.answered() >= ANSWERS_BEFORE_WIPE

        await poll_until(spent_a_third, deadline_s=TRAFFIC_DEADLINE_S, what="spend before the wipe")
        await wipe()
        refused_before = traffic.count(402)

        async def cap_binds() -> bool:
            return traffic.count(402) - refused_before >= REFUSALS_TO_END

        await poll_until(cap_binds, deadline_s=TRAFFIC_DEADLINE_S, what="the cap to bind after the wipe")
    return traffic


async def check_the_cap_held(upstream: SimulatorProcess, traffic: SteadyTraffic) -> None:
    billed = await upstream.billed_nanos()
    seen = statuses(traffic.outcomes)
    print(f"\n{dict(seen)}; billed {billed} of {CAP}")
    assert set(seen) <= {200, 402, 503}, seen
    assert billed <= CAP


async def test_redis_restarted_empty_under_traffic_rebuilds_the_day_and_keeps_the_cap(
    tmp_path: Path, upstream: SimulatorProcess, gateway_env: dict[str, str], private_redis: RedisServer,
    launch_gateway: LaunchGateway
) -> None:
    gateway = await redis_gateway(tmp_path, gateway_env, private_redis, launch_gateway, desk_usd=CAP_USD)
    traffic = await run_until_the_cap_binds(gateway, private_redis.restart_empty)
    await check_the_cap_held(upstream, traffic)


async def test_flushall_under_traffic_rebuilds_the_day_and_keeps_the_cap(
    tmp_path: Path, upstream: SimulatorProcess, gateway_env: dict[str, str], private_redis: RedisServer,
    launch_gateway: LaunchGateway
) -> None:
    gateway = await redis_gateway(tmp_path, gateway_env, private_redis, launch_gateway, desk_usd=CAP_USD)
    traffic = await run_until_the_cap_binds(gateway, private_redis.flushall)
    await check_the_cap_held(upstream, traffic)
