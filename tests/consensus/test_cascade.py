"""The tuned cascade's sequential stop on known answer sets: record, order, risk, audits, budget."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from lyra.config import PanelMember, PanelSettings
from lyra.config.calibration import CalibrationSettings
from lyra.consensus.aggregation import Ballot
from lyra.consensus.cascade import SequentialRecord, Walk, decide_all, order, predicted_risk

PANEL = PanelSettings(rule="weighted", threshold=0.75, quorum=0.6, members=[
    PanelMember(model="big", key="k", weight=0.30), PanelMember(model="copy", key="k", weight=0.25),
    PanelMember(model="mid", key="k", weight=0.20), PanelMember(model="cheap", key="k", weight=0.15),
    PanelMember(model="tail", key="k", weight=0.10)])
COST = {"big": 3000, "copy": 1200, "mid": 1600, "cheap": 100, "tail": 800}
CALIB = CalibrationSettings(min_record=10, min_sets=10, audit_every=5, min_matches=5)


def answers(**actions: str) -> dict[str, tuple[Ballot, int]]:
    weight = {m.model: m.weight for m in PANEL.members}
    return {m: (Ballot(weight[m], a, 0.8), COST[m]) for m, a in actions.items()}  # type: ignore[arg-type]


def walk(record: SequentialRecord, full: dict[str, tuple[Ballot, int]], lean: float | None = None,
         calib: CalibrationSettings = CALIB) -> tuple[Walk, str]:
    run = Walk(PANEL, record, calib, lean)
    while (model := run.next()) is not None:
        run.answer(model, *full[model])
    return run, run.finish()


UNANIMOUS_BUY = answers(big="BUY", copy="BUY", mid="BUY", cheap="BUY", tail="BUY")
UNANIMOUS_HOLD = answers(big="HOLD", copy="HOLD", mid="HOLD", cheap="HOLD", tail="HOLD")


def test_every_member_is_asked_until_the_record_holds_min_record_sets() -> None:
    record = SequentialRecord()
    for i in range(CALIB.min_sets):
        run, action = walk(record, UNANIMOUS_BUY if i % 2 else UNANIMOUS_HOLD)
        assert len(run.asked) == 5 and action == ("BUY" if i % 2 else "HOLD")
    assert len(record.sets) == CALIB.min_record and record.decisions == CALIB.min_record
    assert record.expected_misses == 0.0


def test_it_stops_before_the_members_whose_answers_the_record_predicts() -> None:
    record = SequentialRecord()
    for i in range(CALIB.min_sets):
        walk(record, UNANIMOUS_BUY if i % 2 else UNANIMOUS_HOLD)
    # Every member always agreed: after the first few the others are predictable; a stop keeps
    # the expected disagreements within 5 % of the decisions so far, and every 5th is audited.
    early = audited = 0
    for i in range(30):
        run, action = walk(record, UNANIMOUS_BUY if i % 2 else UNANIMOUS_HOLD)
        assert action == ("BUY" if i % 2 else "HOLD")
        described = run.describe()
        assert described["asked"] == list(run.asked) and described["kind"] == "tuned" and described["why"]
        if run.stop is not None and run.stop.audit:
            audited += 1
            assert run.complete and run.stop.kind == "sequential"
        elif len(run.asked) < 5:
            early += 1
            assert sum(run.costs.values()) < sum(COST.values())
        assert record.expected_misses <= (1 - CALIB.target_agreement) * record.decisions + 1e-12
    assert early >= 10 and audited == record.stops // CALIB.audit_every
    assert record.audits["sequential"][1] == 0  # no audit found a miss


def test_the_order_puts_a_cheap_decisive_member_before_an_expensive_one() -> None:
    record = SequentialRecord()
    for i in range(12):
        walk(record, UNANIMOUS_BUY if i % 2 else UNANIMOUS_HOLD)
    ordered = order(PANEL, record)
    # On unanimous sets big (0.30) is decisive (without it BUY has 0.70 < 0.75), copy (0.25) never
    # is (0.75 still): big is worth its higher cost first; cheap is cheapest by far.
    assert ordered[0] == "cheap" and ordered.index("big") < ordered.index("copy")


def test_a_member_that_follows_another_is_predicted_from_it() -> None:
    record = SequentialRecord()
    for i in range(12):  # copy always answers what big answers; the rest hold
        a = "BUY" if i % 2 else "SELL"
        walk(record, answers(big=a, copy=a, mid="HOLD", cheap="HOLD", tail="HOLD"))
    asked = {"mid": Ballot(0.2, "HOLD", 0.8), "cheap": Ballot(0.15, "HOLD", 0.8), "tail": Ballot(0.1, "HOLD", 0.8)}
    found = predicted_risk(PANEL, asked, record, CALIB)
    assert found is not None and found.action == "HOLD"
    # 0.45 HOLD asked: BUY can reach at most 0.55 < 0.75, so nothing can change it.
    assert found.share == 0.0


def test_an_audit_that_finds_a_miss_raises_the_risk_of_that_kind_of_stop() -> None:
    record = SequentialRecord()
    record.audits["sequential"] = (0.05, 0)
    assert record.correction("sequential") == 1.0
    record.audits["sequential"] = (0.05, 1)
    assert record.correction("sequential") == 2 / 1.05
    assert record.correction("cheap") == 1.0


def test_the_cheap_panel_stops_when_its_lean_has_always_meant_the_same_decision() -> None:
    record = SequentialRecord()
    for i in range(20):
        walk(record, UNANIMOUS_BUY if i % 2 else UNANIMOUS_HOLD, lean=0.4 if i % 2 else 0.0)
    assert len(record.leans) >= CALIB.min_record  # a sequential stop files no lean: its outcome is a guess
    stopped = 0
    for _ in range(30):
        run, action = walk(record, UNANIMOUS_BUY, lean=0.4)
        assert action == "BUY"
        stopped += run.at_cheap and not run.asked
    assert stopped > 0
    assert record.stops >= stopped


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(*(st.sampled_from(["BUY", "SELL", "HOLD"]) for _ in range(5)),
                          st.floats(-0.5, 0.5)), min_size=25, max_size=60))
def test_the_expected_disagreements_stay_within_the_budget(rows: list[tuple[str, str, str, str, str, float]]
                                                         ) -> None:
    record = SequentialRecord()
    for *acts, lean in rows:
        full = answers(**dict(zip(COST, acts, strict=True)))
        run, action = walk(record, full, lean=lean)
        assert record.expected_misses <= (1 - CALIB.target_agreement) * record.decisions + 1e-9
        if run.stop is None or not run.stop.kind:
            # Not a stop by risk (asked in full, or the rest could not change it): the panel's own
            # decision. An audited stop keeps its call, though the audit asks everyone.
            assert action == decide_all(PANEL, {m: b for m, (b, _) in full.items()})
