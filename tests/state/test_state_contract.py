"""The StateBackend contract, checked against each backend for real (memory, sqlite, redis)."""

from __future__ import annotations

import math

import pytest
from state_helpers import Harness, rid

from lyra.state import BucketLevel, CapUsage, Charge, Refusal, StateBackend


async def test_reserve_holds_every_charge(backend: StateBackend) -> None:
    charges = [Charge("global", 1_000, 300), Charge("tier", 500, 300), Charge("tokens", 10_000, 4_000)]
    assert await backend.reserve(rid(), charges, ttl_s=60) is None
    usage = await backend.usage(["global", "tier", "tokens", "never-used"])
    assert usage == {
        "global": CapUsage(committed=0, reserved=300),
        "tier": CapUsage(committed=0, reserved=300),
        "tokens": CapUsage(committed=0, reserved=4_000),
        "never-used": CapUsage(committed=0, reserved=0),
    }


async def test_reserve_is_all_or_nothing_and_names_the_refusing_cap(backend: StateBackend) -> None:
    assert await backend.reserve(rid(), [Charge("tier", 500, 400)], ttl_s=60) is None
    charges = [Charge("global", 1_000, 200), Charge("tier", 500, 200), Charge("key", 100, 50)]
    refusal = await backend.reserve(rid(), charges, ttl_s=60)
    assert refusal == Refusal(cap="tier", limit=500, used=400, amount=200)
    usage = await backend.usage(["global", "tier", "key"])
    assert usage["global"].reserved == 0 and usage["key"].reserved == 0
    assert usage["tier"].reserved == 400


async def test_a_charge_that_exactly_fills_the_cap_fits(backend: StateBackend) -> None:
    await backend.seed_committed({"day": 600})
    assert await backend.reserve(rid(), [Charge("day", 1_000, 400)], ttl_s=60) is None
    refusal = await backend.reserve(rid(), [Charge("day", 1_000, 1)], ttl_s=60)
    assert refusal == Refusal(cap="day", limit=1_000, used=1_000, amount=1)


async def test_commit_replaces_the_reservation_by_the_actual(backend: StateBackend) -> None:
    reservation = rid()
    charges = [Charge("global", 1_000, 300), Charge("key", 800, 300), Charge("tokens", 5_000, 2_000)]
    assert await backend.reserve(reservation, charges, ttl_s=60) is None
    # "tokens" is missing from actual: it counts as 0; "extra" was never reserved but is still spent.
    await backend.commit(reservation, {"global": 120, "key": 120, "extra": 7})
    usage = await backend.usage(["global", "key", "tokens", "extra"])
    assert usage == {
        "global": CapUsage(committed=120, reserved=0),
        "key": CapUsage(committed=120, reserved=0),
        "tokens": CapUsage(committed=0, reserved=0),
        "extra": CapUsage(committed=7, reserved=0),
    }
    # What the commit freed can be reserved again.
    assert await backend.reserve(rid(), [Charge("global", 1_000, 880)], ttl_s=60) is None
    assert await backend.reserve(rid(), [Charge("global", 1_000, 1)], ttl_s=60) is not None


async def test_commit_of_an_unknown_reservation_still_counts_the_money(backend: StateBackend) -> None:
    await backend.commit(rid(), {"global": 250})
    await backend.commit(rid(), {"global": 50})
    assert (await backend.usage(["global"]))["global"] == CapUsage(committed=300, reserved=0)


async def test_release_frees_without_spending(backend: StateBackend) -> None:
    reservation = rid()
    assert await backend.reserve(reservation, [Charge("a", 100, 60), Charge("b", 100, 70)], ttl_s=60) is None
    assert await backend.reserve(rid(), [Charge("a", 100, 60)], ttl_s=60) is not None
    await backend.release(reservation)
    assert await backend.usage(["a", "b"]) == {"a": CapUsage(0, 0), "b": CapUsage(0, 0)}
    assert await backend.reserve(rid(), [Charge("a", 100, 100)], ttl_s=60) is None
    await backend.release(reservation)  # twice, or unknown: nothing happens
    await backend.release(rid())
    assert (await backend.usage(["a"]))["a"] == CapUsage(0, 100)


async def test_a_reservation_holds_different_amounts_on_different_caps(backend: StateBackend) -> None:
    reservation = rid()
    charges = [Charge("usd", 10_000, 2_500), Charge("tokens", 1_000_000, 640_000)]
    assert await backend.reserve(reservation, charges, ttl_s=60) is None
    await backend.release(reservation)
    assert await backend.usage(["usd", "tokens"]) == {"usd": CapUsage(0, 0), "tokens": CapUsage(0, 0)}


async def test_charges_on_one_cap_add_up(backend: StateBackend) -> None:
    refusal = await backend.reserve(rid(), [Charge("a", 100, 60), Charge("a", 100, 60)], ttl_s=60)
    assert refusal == Refusal(cap="a", limit=100, used=0, amount=120)
    assert await backend.reserve(rid(), [Charge("a", 100, 40), Charge("a", 100, 60)], ttl_s=60) is None
    assert (await backend.usage(["a"]))["a"] == CapUsage(0, 100)


async def test_large_amounts_stay_exact(backend: StateBackend) -> None:
    big = 2**52 + 1  # beyond what %.14g would print exactly
    reservation = rid()
    assert await backend.reserve(reservation, [Charge("big", 2**53, big)], ttl_s=60) is None
    assert (await backend.usage(["big"]))["big"] == CapUsage(0, big)
    await backend.commit(reservation, {"big": big - 1})
    assert (await backend.usage(["big"]))["big"] == CapUsage(big - 1, 0)


async def test_empty_requests_are_harmless(backend: StateBackend) -> None:
    reservation = rid()
    assert await backend.reserve(reservation, [], ttl_s=60) is None
    await backend.commit(reservation, {})
    await backend.seed_committed({})
    assert await backend.usage([]) == {}


async def test_reusing_a_held_reservation_id_is_an_error(harness: Harness) -> None:
    backend = harness.backend
    reservation, dead = rid(), rid()
    assert await backend.reserve(reservation, [Charge("a", 100, 10)], ttl_s=60) is None
    with pytest.raises(ValueError, match="already held"):
        await backend.reserve(reservation, [Charge("a", 100, 10)], ttl_s=60)
    assert (await backend.usage(["a"]))["a"] == CapUsage(0, 10)
    # An expired reservation is still on record, waiting for a late settle: its id is still taken.
    assert await backend.reserve(dead, [Charge("b", 100, 10)], ttl_s=0.2) is None
    await harness.advance(0.3)
    with pytest.raises(ValueError, match="already held"):
        await backend.reserve(dead, [Charge("b", 100, 10)], ttl_s=60)
    assert (await backend.usage(["b"]))["b"] == CapUsage(10, 0)


async def test_negative_amounts_are_refused(backend: StateBackend) -> None:
    with pytest.raises(ValueError, match="negative"):
        await backend.reserve(rid(), [Charge("a", 100, -1)], ttl_s=60)
    with pytest.raises(ValueError, match="negative"):
        await backend.commit(rid(), {"a": 5, "b": -5})
    assert (await backend.usage(["a"]))["a"] == CapUsage(0, 0)


async def test_an_expired_hold_counts_as_committed(harness: Harness) -> None:
    backend = harness.backend
    dead = rid()
    assert await backend.reserve(dead, [Charge("day", 100, 80), Charge("key", 100, 10)], ttl_s=0.2) is None
    assert await backend.reserve(rid(), [Charge("day", 100, 30)], ttl_s=60) is not None
    await harness.advance(0.3)
    # The holder died, maybe after its call was served and billed: its hold is spent, not freed.
    assert await backend.usage(["day", "key"]) == {"day": CapUsage(80, 0), "key": CapUsage(10, 0)}
    refusal = await backend.reserve(rid(), [Charge("day", 100, 30)], ttl_s=60)
    assert refusal == Refusal(cap="day", limit=100, used=80, amount=30)
    assert await backend.reserve(rid(), [Charge("day", 100, 20)], ttl_s=60) is None
    assert (await backend.usage(["day"]))["day"] == CapUsage(80, 20)


async def test_a_late_commit_corrects_the_expired_hold_to_the_actual(harness: Harness) -> None:
    backend = harness.backend
    dead = rid()
    charges = [Charge("day", 100, 80), Charge("key", 100, 10), Charge("tokens", 1_000, 500)]
    assert await backend.reserve(dead, charges, ttl_s=0.2) is None
    await harness.advance(0.3)
    # Another caller's reserve expires the dead hold into committed on "day".
    assert await backend.reserve(rid(), [Charge("day", 100, 20)], ttl_s=60) is None
    assert (await backend.usage(["day"]))["day"] == CapUsage(80, 20)
    # "key" is missing from actual (0), "tokens" came out above the hold, "extra" was never held.
    await backend.commit(dead, {"day": 40, "tokens": 600, "extra": 5})
    assert await backend.usage(["day", "key", "tokens", "extra"]) == {
        "day": CapUsage(40, 20),
        "key": CapUsage(0, 0),
        "tokens": CapUsage(600, 0),
        "extra": CapUsage(5, 0),
    }
    # What the correction gave back can be reserved again, and no more.
    assert await backend.reserve(rid(), [Charge("day", 100, 40)], ttl_s=60) is None
    assert await backend.reserve(rid(), [Charge("day", 100, 1)], ttl_s=60) is not None


async def test_a_late_release_refunds_the_expired_hold(harness: Harness) -> None:
    backend = harness.backend
    dead = rid()
    assert await backend.reserve(dead, [Charge("day", 100, 80), Charge("key", 100, 10)], ttl_s=0.2) is None
    await backend.commit(rid(), {"day": 5})
    await harness.advance(0.3)
    assert await backend.usage(["day", "key"]) == {"day": CapUsage(85, 0), "key": CapUsage(10, 0)}
    # The attempt failed after all: nothing was spent, so the provisional charge goes.
    await backend.release(dead)
    assert await backend.usage(["day", "key"]) == {"day": CapUsage(5, 0), "key": CapUsage(0, 0)}
    await backend.release(dead)  # settled already: nothing happens
    assert (await backend.usage(["day"]))["day"] == CapUsage(5, 0)
    assert await backend.reserve(rid(), [Charge("day", 100, 95)], ttl_s=60) is None


async def test_commit_after_expiry_before_any_purge_frees_once(harness: Harness) -> None:
    backend = harness.backend
    late = rid()
    assert await backend.reserve(late, [Charge("day", 100, 80)], ttl_s=0.2) is None
    await harness.advance(0.3)
    await backend.commit(late, {"day": 50})
    # The next reserve expires past holds on "day": the settled one must not be charged again.
    assert await backend.reserve(rid(), [Charge("day", 100, 50)], ttl_s=60) is None
    assert (await backend.usage(["day"]))["day"] == CapUsage(committed=50, reserved=50)
    assert await backend.reserve(rid(), [Charge("day", 100, 1)], ttl_s=60) is not None


async def test_release_after_expiry_before_any_purge_charges_nothing(harness: Harness) -> None:
    backend = harness.backend
    late = rid()
    assert await backend.reserve(late, [Charge("day", 100, 80)], ttl_s=0.2) is None
    await harness.advance(0.3)
    await backend.release(late)
    assert (await backend.usage(["day"]))["day"] == CapUsage(0, 0)
    assert await backend.reserve(rid(), [Charge("day", 100, 100)], ttl_s=60) is None


async def test_a_late_settle_is_exact_when_only_some_caps_saw_the_expiry(harness: Harness) -> None:
    backend = harness.backend
    committed, released = rid(), rid()
    for reservation in (committed, released):
        assert (
            await backend.reserve(reservation, [Charge("a", 100, 30), Charge("b", 100, 30)], ttl_s=0.2)
            is None
        )
    await harness.advance(0.3)
    assert (await backend.usage(["a"]))["a"] == CapUsage(60, 0)  # only "a" is looked at
    await backend.commit(committed, {"a": 7, "b": 9})
    await backend.release(released)
    assert await backend.usage(["a", "b"]) == {"a": CapUsage(7, 0), "b": CapUsage(9, 0)}


async def test_usage_counts_expired_holds_as_committed(harness: Harness) -> None:
    backend = harness.backend
    assert await backend.reserve(rid(), [Charge("a", 100, 10)], ttl_s=0.2) is None
    assert await backend.reserve(rid(), [Charge("a", 100, 20)], ttl_s=60) is None
    await harness.advance(0.3)
    assert (await backend.usage(["a"]))["a"] == CapUsage(10, 20)


async def test_seed_committed_takes_the_max(backend: StateBackend) -> None:
    await backend.commit(rid(), {"a": 100, "b": 100})
    await backend.seed_committed({"a": 50, "b": 150, "c": 70})
    assert await backend.usage(["a", "b", "c"]) == {
        "a": CapUsage(100, 0),
        "b": CapUsage(150, 0),
        "c": CapUsage(70, 0),
    }
    await backend.seed_committed({})
    assert (await backend.usage(["b"]))["b"] == CapUsage(150, 0)


async def test_bucket_starts_full_then_makes_you_wait(harness: Harness) -> None:
    backend = harness.backend
    assert await backend.take("key:rpm", 3, 10.0, 1) == 0.0
    assert await backend.take("key:rpm", 3, 10.0, 2) == 0.0
    wait = await backend.take("key:rpm", 3, 10.0, 1)
    assert 0.05 < wait <= 0.1 + 1e-9
    await harness.advance(wait + 0.05)
    assert await backend.take("key:rpm", 3, 10.0, 1) == 0.0
    # Taking nothing when refused: after a refusal the wait does not grow.
    first = await backend.take("key:rpm", 3, 10.0, 2)
    second = await backend.take("key:rpm", 3, 10.0, 2)
    assert 0 < second <= first


async def test_bucket_refills_up_to_capacity_only(harness: Harness) -> None:
    backend = harness.backend
    assert await backend.take("b", 2, 100.0, 2) == 0.0
    await harness.advance(0.3)  # would refill 30 tokens, but capacity is 2
    assert await backend.take("b", 2, 100.0, 2) == 0.0
    assert await backend.take("b", 2, 100.0, 1) > 0


async def test_bucket_amount_beyond_capacity_is_infinite(backend: StateBackend) -> None:
    assert await backend.take("b", 5, 1.0, 6) == math.inf
    assert await backend.take("b", 5, 1.0, 5) == 0.0  # the refusal took nothing


async def test_bucket_that_never_refills(backend: StateBackend) -> None:
    assert await backend.take("daily", 2, 0.0, 2) == 0.0
    assert await backend.take("daily", 2, 0.0, 1) == math.inf


async def test_buckets_are_independent(backend: StateBackend) -> None:
    assert await backend.take("x", 1, 1.0, 1) == 0.0
    assert await backend.take("y", 1, 1.0, 1) == 0.0
    assert await backend.take("x", 1, 1.0, 1) > 0


async def test_a_negative_take_gives_tokens_back_up_to_capacity(backend: StateBackend) -> None:
    assert await backend.take("daily", 2, 0.0, 2) == 0.0
    assert await backend.take("daily", 2, 0.0, -1) == 0.0
    assert await backend.take("daily", 2, 0.0, 1) == 0.0  # the token given back
    assert await backend.take("daily", 2, 0.0, 1) == math.inf
    assert await backend.take("full", 2, 0.0, -5) == 0.0  # a full bucket stays at its capacity
    assert await backend.take("full", 2, 0.0, 2) == 0.0
    assert await backend.take("full", 2, 0.0, 1) == math.inf


async def test_take_level_says_what_the_bucket_holds_after_the_take(backend: StateBackend) -> None:
    # A bucket that never refills, so that no clock moves the level between the takes.
    assert await backend.take_level("rpm:client:x", 3, 0.0, 1) == BucketLevel(0.0, 2.0)
    assert await backend.take_level("rpm:client:x", 3, 0.0, 1) == BucketLevel(0.0, 1.0)
    assert await backend.take_level("rpm:client:x", 3, 0.0, 1) == BucketLevel(0.0, 0.0)
    refused = await backend.take_level("rpm:client:x", 3, 0.0, 1)
    assert refused == BucketLevel(math.inf, 0.0)  # refused: nothing taken, the level unchanged
    assert await backend.take_level("rpm:client:x", 3, 0.0, -2) == BucketLevel(0.0, 2.0)


async def test_take_level_of_a_refilling_bucket_gives_the_wait_and_the_level(backend: StateBackend) -> None:
    assert (await backend.take_level("b", 2, 0.001, 2)).tokens == 0.0
    refused = await backend.take_level("b", 2, 0.001, 1)
    assert refused.wait > 0 and 0.0 <= refused.tokens < 1.0
    assert await backend.take("b", 2, 0.001, 1) > 0  # `take` is the same step, without the level
