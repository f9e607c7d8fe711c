"""Calibration maths on known inputs: PAV, Platt, Brier, ECE, reliability, the calibrated vote, n_eff."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lyra.consensus.calibration import (
    Calibrator,
    WalkForward,
    action_of,
    brier,
    calibrated_vote,
    ece,
    effective_voters,
    error_agreement,
    error_correlation,
    logit,
    pav,
    platt,
    reliability,
)


def test_pav_pools_the_violators_into_their_mean() -> None:
    fit = pav([0.1, 0.2, 0.3, 0.4, 0.5], [0, 1, 0, 1, 1])
    # 1 then 0 violate order: pooled to 0.5; the two 1s after it form one block.
    assert fit.xs == (0.1, 0.3, 0.5)
    assert fit.ys == (0.0, 0.5, 1.0)
    assert fit(0.25) == 0.5 and fit(0.05) == 0.0 and fit(0.9) == 1.0


def test_pav_gives_equal_inputs_one_value() -> None:
    fit = pav([0.6, 0.6, 0.6, 0.2], [1, 0, 0, 1])
    # The three at 0.6 pool to 1/3, below the 1 at 0.2: everything pools to the mean 0.5.
    assert fit.ys == (0.5,) and fit(0.2) == fit(0.6) == 0.5


def test_pav_on_a_fully_decreasing_series_is_its_mean() -> None:
    fit = pav([1, 2, 3, 4], [1.0, 0.75, 0.25, 0.0])
    assert fit.ys == (0.5,)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1), st.sampled_from([0.0, 1.0])), min_size=1, max_size=60))
def test_pav_is_monotone_and_keeps_the_mean(pairs: list[tuple[float, float]]) -> None:
    xs, ys = [p[0] for p in pairs], [p[1] for p in pairs]
    fit = pav(xs, ys)
    assert all(a <= b + 1e-12 for a, b in zip(fit.ys, fit.ys[1:], strict=False))
    fitted = [fit(x) for x in xs]
    assert sum(fitted) == pytest.approx(sum(ys))  # least squares under order keeps the total
    assert all(0.0 <= f <= 1.0 for f in fitted)


def test_platt_learns_that_stated_confidence_is_overconfident() -> None:
    # Stated 0.9 is right 60 % of the time, stated 0.1 wrong 60 %: the fit pulls both inwards.
    xs = [0.9] * 100 + [0.1] * 100
    ys = [1.0] * 60 + [0.0] * 40 + [1.0] * 40 + [0.0] * 60
    fit = platt(xs, ys)
    assert fit(0.9) == pytest.approx(0.6, abs=0.01)
    assert fit(0.1) == pytest.approx(0.4, abs=0.01)


def test_brier_and_ece_on_known_inputs() -> None:
    assert brier([1.0, 0.0, 0.5], [1, 0, 1]) == pytest.approx(0.25 / 3)
    assert brier([], []) is None
    # Two bins: 0.8 stated, 50 % observed (gap 0.3); 0.2 stated, 0 % observed (gap 0.2).
    ps, ys = [0.8, 0.8, 0.2, 0.2], [1, 0, 0, 0]
    assert ece(ps, ys, bins=10) == pytest.approx(0.5 * 0.3 + 0.5 * 0.2)
    bins = reliability(ps, ys, bins=10)
    assert [b.count for b in bins] == [0, 0, 2, 0, 0, 0, 0, 0, 2, 0]
    assert bins[8].mean_p == pytest.approx(0.8) and bins[8].observed == 0.5
    assert reliability([1.0], [1], bins=4)[-1].count == 1  # 1 falls in the last bin


def test_the_calibrator_keeps_stated_confidence_until_the_minimum_sample() -> None:
    short = Calibrator.learn([0.9] * 19, [0.0] * 19, min_samples=20)
    assert not short.active and short(0.9) == pytest.approx(0.9)
    long = Calibrator.learn([0.9] * 20, [0.0] * 20, min_samples=20)
    assert long.active and long(0.9) < 0.01


def test_walk_forward_uses_only_outcomes_closed_by_t() -> None:
    wf = WalkForward(min_samples=2)
    wf.observe(0.8, 1.0, closes_at=10)
    wf.observe(0.8, 1.0, closes_at=11)
    before = wf.at(11)(0.8)
    wf.observe(0.8, 0.0, closes_at=12)  # closes after 11: invisible at 11
    wf.observe(0.8, 0.0, closes_at=30)
    assert wf.at(11)(0.8) == before and wf.at(10).samples == 1
    assert wf.at(12)(0.8) == pytest.approx(2 / 3)


def test_calibrated_vote_adds_weighted_log_odds_scaled_to_effective_voters() -> None:
    p = calibrated_vote([0.7, 0.6], [0.5, 0.5])
    assert p == pytest.approx(1 / (1 + math.exp(-(logit(0.7) + logit(0.6)))))
    # Worth one voter: the weighted mean of the log-odds.
    one = calibrated_vote([0.7, 0.6], [3.0, 1.0], n_eff=1.0)
    assert one == pytest.approx(1 / (1 + math.exp(-(0.75 * logit(0.7) + 0.25 * logit(0.6)))))
    assert calibrated_vote([], []) == 0.5
    assert action_of(0.61, 0.1) == "BUY" and action_of(0.39, 0.1) == "SELL" and action_of(0.55, 0.1) == "HOLD"


def test_effective_voters_and_error_overlap() -> None:
    assert effective_voters(5, 0.0) == 5 and effective_voters(5, 1.0) == 1
    assert effective_voters(5, 0.25) == pytest.approx(5 / 2)
    assert effective_voters(3, None) == 3
    share, n = error_agreement(["BUY", "SELL", "HOLD", "BUY"], ["BUY", "HOLD", "SELL", "BUY"],
                               ["SELL", "BUY", "BUY", "BUY"])
    assert (share, n) == (pytest.approx(1 / 3), 3)
    assert error_correlation([1, 0, 1, 0], [1, 0, 1, 0]) == pytest.approx(1.0)
    assert error_correlation([1, 1, 1], [0, 1, 0]) is None


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1), st.sampled_from([0.0, 1.0]), st.integers(0, 50)), max_size=60),
       st.integers(0, 50), st.lists(st.tuples(st.floats(0, 1), st.sampled_from([0.0, 1.0])), max_size=20))
def test_outcomes_closing_after_t_never_change_the_calibrator_at_t(
        record: list[tuple[float, float, int]], t: int, later: list[tuple[float, float]]) -> None:
    wf = WalkForward(min_samples=3)
    for stated, up, closes in record:
        wf.observe(stated, up, closes_at=closes)
    before = wf.at(t)
    for stated, up in later:
        wf.observe(stated, up, closes_at=t + 1)
    after = wf.at(t)
    assert after == before
    assert all(after(x) == before(x) for x in (0.0, 0.3, 0.5, 0.8, 1.0))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 1), st.sampled_from([0.0, 1.0])), min_size=1, max_size=80))
def test_brier_and_ece_stay_in_range_and_ece_vanishes_for_bin_rates(pairs: list[tuple[float, float]]) -> None:
    ps, ys = [p for p, _ in pairs], [y for _, y in pairs]
    assert 0.0 <= (brier(ps, ys) or 0.0) <= 1.0
    assert 0.0 <= (ece(ps, ys) or 0.0) <= 1.0
    # Stating each bin's own observed rate (all inside the bin) is perfectly calibrated.
    bins = reliability(ps, ys, bins=1)
    rate = bins[0].observed or 0.0
    assert ece([rate] * len(ys), ys, bins=1) == pytest.approx(0.0, abs=1e-12)
