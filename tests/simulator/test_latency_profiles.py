"""The simulator's latency profiles: uniform draws as before, heavy_tail adds a few far slower calls."""

from __future__ import annotations

import random

import pytest

from lyra.simulator import SimulatorOptions
from lyra.simulator.profiles import SLOW_CAP, SLOW_SHARE, draw_latency


def test_uniform_draws_are_the_tier_range_as_before() -> None:
    a, b = random.Random(3), random.Random(3)
    assert [draw_latency(a, 0.5, 1.0) for _ in range(100)] == [b.uniform(0.5, 1.0) for _ in range(100)]


def test_heavy_tail_keeps_the_body_and_adds_a_capped_tail() -> None:
    rng = random.Random(11)
    draws = [draw_latency(rng, 0.5, 1.0, "heavy_tail") for _ in range(20_000)]
    slow = [d for d in draws if d > 1.0]
    assert abs(len(slow) / len(draws) - SLOW_SHARE) < 0.005
    assert max(draws) <= 1.0 * SLOW_CAP and max(draws) > 10  # tens of times the range's top
    assert min(draws) >= 0.5


def test_an_unknown_latency_profile_is_refused() -> None:
    with pytest.raises(ValueError, match="latency must be one of uniform, heavy_tail"):
        SimulatorOptions(latency="spiky")


def test_sim_serve_refuses_an_unknown_latency_profile_in_one_line() -> None:
    from typer.testing import CliRunner

    from lyra.cli.commands import app

    result = CliRunner().invoke(app, ["sim", "serve", "--latency", "spiky"])
    assert result.exit_code == 2
    assert result.output.strip() == "error: --latency: 'spiky'; use one of uniform, heavy_tail"
