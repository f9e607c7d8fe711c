"""Rebalance limits as properties: code never breaks a limit and never grows a weight past the model's ask."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lyra.trading.rebalance import Limits, enforce, rescale_move, turnover

SYMBOLS = ("A", "B", "C", "D")
EPS = 1e-9
weight = st.floats(min_value=-2.0, max_value=2.0, allow_nan=False)
limits = st.builds(
    Limits, max_weight=st.floats(0.05, 1.0), max_gross=st.floats(1.0, 2.0), max_net=st.floats(0.1, 1.0),
    max_turnover=st.floats(0.05, 2.0), cash_floor=st.floats(0.0, 0.5), allow_short=st.booleans())
asked = st.dictionaries(st.sampled_from(SYMBOLS), weight, min_size=0, max_size=4)


def within(book: dict[str, float], rules: Limits) -> dict[str, float]:
    """A book inside the limits: any book, shrunk by the same rules from an empty one with no turnover cap."""
    loose = Limits(max_weight=rules.max_weight, max_gross=rules.max_gross, max_net=rules.max_net,
                   max_turnover=100.0, cash_floor=rules.cash_floor, allow_short=rules.allow_short)
    return enforce(book, dict.fromkeys(SYMBOLS, 0.0), loose).weights


def check_limits(out: dict[str, float], rules: Limits) -> None:
    values = list(out.values())
    assert all(abs(w) <= rules.max_weight + EPS for w in values)
    assert sum(abs(w) for w in values) <= rules.max_gross + EPS
    assert abs(sum(values)) <= rules.max_net + EPS
    assert 1 - sum(values) >= rules.cash_floor - EPS
    if not rules.allow_short:
        assert all(w >= -EPS for w in values)


def check_never_grown(out: dict[str, float], asked: dict[str, float], current: dict[str, float]) -> None:
    """A weight larger than the one held is on the model's side and no larger than it asked."""
    for s, w in out.items():
        if abs(w) > abs(current[s]) + EPS:
            a = asked.get(s, current[s])
            assert math.copysign(1, w) == math.copysign(1, a), (s, w, a)
            assert abs(w) <= abs(a) + EPS, (s, w, a)


@settings(max_examples=400, deadline=None)
@given(asked=asked, held=st.dictionaries(st.sampled_from(SYMBOLS), weight, min_size=4, max_size=4), rules=limits)
def test_the_output_is_within_every_limit_and_never_grows_past_the_ask(
        asked: dict[str, float], held: dict[str, float], rules: Limits) -> None:
    current = within(held, rules)
    out = enforce(asked, current, rules).weights
    check_limits(out, rules)
    assert turnover(out, current) <= rules.max_turnover + EPS
    check_never_grown(out, asked, current)


@settings(max_examples=300, deadline=None)
@given(asked=asked, held=st.dictionaries(st.sampled_from(SYMBOLS), weight, min_size=4, max_size=4), rules=limits)
def test_a_drifted_book_is_brought_back_within_the_limits(
        asked: dict[str, float], held: dict[str, float], rules: Limits) -> None:
    current = {s: held[s] for s in SYMBOLS}  # anything: prices may have moved it outside the limits
    out = enforce(asked, current, rules).weights
    check_limits(out, rules)
    check_never_grown(out, asked, current)


@settings(max_examples=200, deadline=None)
@given(asked=asked, held=st.dictionaries(st.sampled_from(SYMBOLS), weight, min_size=4, max_size=4), rules=limits,
       share=st.floats(0.0, 1.0))
def test_cutting_a_move_to_the_premium_notional_keeps_the_limits(
        asked: dict[str, float], held: dict[str, float], rules: Limits, share: float) -> None:
    current = within(held, rules)
    target = enforce(asked, current, rules).weights
    cut = rescale_move(current, target, share, rules)
    check_limits(cut, rules)
    assert turnover(cut, current) <= share * turnover(target, current) + EPS


def test_a_proposal_inside_the_limits_is_kept_as_asked() -> None:
    rules = Limits(max_weight=0.4, max_gross=1.0, max_net=1.0, max_turnover=1.0, cash_floor=0.05)
    out = enforce({"A": 0.3, "B": 0.2}, {"A": 0.0, "B": 0.0}, rules)
    assert out.weights == {"A": 0.3, "B": 0.2} and out.reasons == ()


def test_each_limit_names_itself_when_it_shrinks_the_proposal() -> None:
    rules = Limits(max_weight=0.4, max_gross=1.0, max_net=1.0, max_turnover=0.5, cash_floor=0.05)
    out = enforce({"A": 0.9, "B": 0.5, "C": -0.2}, dict.fromkeys("ABC", 0.0), rules)
    # A and B cut to 0.4, C's short to 0; 0.8 is within gross and cash floor; the move 0.8 > 0.5 turnover.
    assert out.weights == pytest.approx({"A": 0.25, "B": 0.25, "C": 0.0})
    assert any("40% cap" in r for r in out.reasons) and any("turnover" in r for r in out.reasons)
    assert not any("book scaled" in r for r in out.reasons)


def test_the_cash_floor_scales_the_book() -> None:
    rules = Limits(max_weight=0.5, max_gross=1.0, max_net=1.0, max_turnover=2.0, cash_floor=0.2)
    out = enforce({"A": 0.5, "B": 0.5}, {"A": 0.0, "B": 0.0}, rules)
    assert out.weights == pytest.approx({"A": 0.4, "B": 0.4})
    assert any("cash-floor" in r for r in out.reasons)


def test_a_symbol_the_model_left_out_keeps_its_weight() -> None:
    rules = Limits(max_turnover=2.0)
    out = enforce({"A": 0.1}, {"A": 0.3, "B": 0.2}, rules)
    assert out.weights == pytest.approx({"A": 0.1, "B": 0.2})
