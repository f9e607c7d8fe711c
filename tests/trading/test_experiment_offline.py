"""An experiment offline: arms assigned per episode over the simulator, in the audit trail, replayed."""

from __future__ import annotations

from pathlib import Path

import orjson
import pandas as pd

from lyra import Lyra
from lyra.config.experiments import ExperimentSettings
from lyra.simulator import Simulator
from lyra.trading.backtest import Window
from lyra.trading.cassette import Cassette
from lyra.trading.data import Bars
from lyra.trading.evaluate import BacktestOptions
from lyra.trading.experiment_run import run_experiment
from lyra.trading.experiments import OUTCOME_KIND, Experiment, Trial, assign, from_audit
from support import ACTIVE_SIGNALS

ENGINE_EDITS = ACTIVE_SIGNALS
OPTIONS = BacktestOptions(window=Window(start="2017-06-01", end="2017-10-31", every=3, horizon=3))
NAME = "signal_prompts"  # the example configuration's experiment


def replayable(report: dict) -> bytes:
    """What a replay must give byte for byte: every decision, trial, verdict and the timeline."""
    kept = {k: v for k, v in report.items() if k != "simulated"}
    return orjson.dumps(kept, option=orjson.OPT_SORT_KEYS)


async def test_an_offline_experiment_assigns_arms_records_them_and_replays_byte_for_byte(
        engine: Lyra, sim: Simulator, bars: Bars, tmp_path: Path) -> None:
    path = tmp_path / "exp.cassette.json"
    recorder = Cassette(path, "record")
    recorded = await run_experiment(engine, bars, NAME, OPTIONS, cassette=recorder)
    recorder.save()
    calls = sim.stats.calls
    assert calls > 0
    trials = recorded["trials"]
    assert len(trials) == recorded["window"]["decisions"] >= 20
    arms = {t["arm"] for t in trials}
    assert arms == {"builtin", "risk_first"}
    assert any(t["settled"] and t["outcome"] is not None for t in trials)
    # Each decision was asked with its arm's prompt and says so.
    assert [d["experiment"]["arm"] for d in recorded["decisions"]] == [t["arm"] for t in trials]
    variants = {d["experiment"]["variant"] for d in recorded["decisions"]}
    assert variants == {"builtin", "risk_first"}
    assert recorded["verdict"]["state"] in ("collecting", "leader", "winner", "no_difference")

    # The audit trail holds every decision with its arm, and each outcome attached to its decision.
    ledger = engine.ledger
    assert ledger is not None and ledger.audit.verify().ok
    records = sorted(ledger.audit.recent(10_000), key=lambda r: r.seq)
    tagged = [r for r in records if isinstance(r.payload.get("experiment"), dict)]
    outcomes = [r for r in records if r.payload.get("kind") == OUTCOME_KIND]
    assert [r.payload["experiment"]["arm"] for r in tagged] == [t["arm"] for t in trials]
    assert len(outcomes) == sum(t["settled"] for t in trials)
    seqs = {r.seq for r in tagged}
    assert all(o.payload["decision_seq"] in seqs and o.seq > o.payload["decision_seq"] for o in outcomes)
    rebuilt = from_audit(NAME, engine.settings.experiments[NAME], [(r.seq, r.payload) for r in records])
    assert rebuilt.report() == {k: recorded[k] for k in rebuilt.report()}

    # Replayed from the cassette: not one upstream call, the same report byte for byte.
    replayed = await run_experiment(engine, bars, NAME, OPTIONS, cassette=Cassette(path, "replay"))
    assert sim.stats.calls == calls
    assert replayable(replayed) == replayable(recorded)


def test_the_report_counts_no_experiment_record_as_a_decision() -> None:
    from lyra.analytics.build import EXPERIMENT_RECORDS
    from lyra.trading.experiments import SHADOW_KIND

    assert set(EXPERIMENT_RECORDS) == {SHADOW_KIND, OUTCOME_KIND}


def settings(**fields: object) -> ExperimentSettings:
    arms = [{"name": "a"}, {"name": "b", "prompt": "brief"}, {"name": "c", "template": "Signal? {features}"}]
    return ExperimentSettings.model_validate({"arms": arms, **fields}, strict=False)


def test_assignment_is_deterministic_and_balanced() -> None:
    episodes = [f"GOOGL@{t.isoformat()}" for t in pd.date_range("2020-01-01", periods=3000, freq="D", tz="UTC")]
    first = [assign("exp", e, ["a", "b", "c"]) for e in episodes]
    assert first == [assign("exp", e, ["a", "b", "c"]) for e in episodes]
    counts = {a: first.count(a) for a in "abc"}
    assert all(abs(n - 1000) < 100 for n in counts.values()), counts  # within ~5 sigma of 1000
    other = [assign("exp", e, ["a", "b", "c"], seed="2") for e in episodes]
    assert other != first
    assert [assign("exp2", e, ["a", "b", "c"]) for e in episodes] != first


def test_the_verdict_at_t_reads_only_outcomes_known_at_t() -> None:
    exp = Experiment("exp", settings(min_samples=2))
    frame_times = pd.date_range("2021-01-01", periods=40, freq="D", tz="UTC")
    closes = [100.0 + i for i in range(40)]  # a steady rise: BUY is right, SELL wrong
    frame = pd.DataFrame({"open": closes, "close": closes}, index=frame_times)
    for i in range(0, 30, 2):
        arm = "a" if i % 4 == 0 else "b"
        exp.record(Trial(episode=f"X@{i}", arm=arm, symbol="X", time=frame_times[i].isoformat(),
                         action="BUY" if arm == "a" else "SELL", horizon=3))
    t = frame_times[12]
    exp.settle_on(frame, until=t, round_trip=0.0)
    before = orjson.dumps(exp.verdict_at(t.isoformat()).to_dict())
    assert all(tr.known_at is not None and pd.Timestamp(tr.known_at) <= t for tr in exp.trials.values()
               if tr.settled)
    exp.settle_on(frame, until=frame_times[-1], round_trip=0.0)  # later outcomes arrive
    assert orjson.dumps(exp.verdict_at(t.isoformat()).to_dict()) == before
    assert exp.verdict_at().arms[0].n > exp.verdict_at(t.isoformat()).arms[0].n


async def test_an_arm_with_models_and_a_template_asks_them(sim: Simulator, config_path, bars: Bars,
                                                           tmp_path: Path) -> None:
    from support import engine_env

    arms = ('{ name = "mine", template = "Your own signal prompt.\\n{features}\\n{news}", '
            'models = ["openai/gpt-4o-mini"] },')
    config = config_path(**{'{ name = "risk_first", prompt = "risk_first" },': arms})
    asked: list[tuple[str, str | None, tuple[str, ...]]] = []

    async def spy(request, call):  # type: ignore[no-untyped-def]
        asked.append((request.messages[-1]["content"], request.task, tuple(request.models or ())))
        return await call(request)

    env = engine_env(sim) | {"LYRA_LEDGER_URL": f"sqlite:///{tmp_path / 'models.db'}"}
    async with Lyra.from_config(config, environ=env) as lyra:
        lyra.set_interceptor(spy)
        window = BacktestOptions(window=Window(start="2017-06-01", end="2017-07-31", every=2, horizon=2))
        report = await run_experiment(lyra, bars, NAME, window)
    mine = [d for d in report["decisions"] if d["experiment"]["arm"] == "mine"]
    assert mine and len(mine) < len(report["decisions"])
    for decision in mine:
        signal = next(s for s in decision["stages"] if s["stage"] == "signal_generation")
        assert signal["model"] == "openai/gpt-4o-mini" or signal["status"] == "error"
        assert decision["signal"] is None or decision["signal"]["panel"] == "task:signal_generation"
    # The signal call went to the arm's models with the template; the final panel (its own members)
    # was asked with the template too; no other arm's request carried it.
    templated = [a for a in asked if a[0].startswith("Your own signal prompt.")]
    assert ("openai/gpt-4o-mini",) in {a[2] for a in templated}
    assert {a[2] for a in asked if a[2]} == {("openai/gpt-4o-mini",)}
    assert all(a[0].startswith("Your own signal prompt.") for a in asked if a[2])


async def test_bars_after_t_change_nothing_at_t(engine: Lyra, sim: Simulator, bars: Bars, tmp_path: Path) -> None:
    # The long run is recorded; the short one (cut at `end`) is answered from the same cassette: every
    # episode up to the cut draws the same arm, decides the same and sees the same verdict.
    path = tmp_path / "long.json"
    recorder = Cassette(path, "record")
    long = await run_experiment(engine, bars, NAME, OPTIONS, cassette=recorder)
    recorder.save()
    cut = long["timeline"][len(long["timeline"]) // 2]["time"]
    short_options = BacktestOptions(window=Window(start="2017-06-01", end=cut, every=3, horizon=3))
    short = await run_experiment(engine, bars, NAME, short_options, cassette=Cassette(path, "replay"))
    n = len(short["timeline"])
    assert 5 < n < len(long["timeline"])
    assert short["timeline"] == long["timeline"][:n]
    # Every outcome the short run knows, the long run knew the same, from the same bar.
    assert all(t == long["trials"][i] for i, t in enumerate(short["trials"]) if t["settled"])
    assert all(t["known_at"] <= short["window"]["end"] for t in short["trials"] if t["settled"])
    assert [t["arm"] for t in short["trials"]] == [t["arm"] for t in long["trials"][:n]]
