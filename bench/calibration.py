"""Baselines beside the panel and calibration per model, on the bundled samples over the simulator.

For each data set, one `lyra backtest --baselines` walk (about 100 decisions): the pipeline, then
every member of the cheap and the full panel and k samples of one model on every decision. It
prints each baseline's AI spend, cost per decision, spend against the full panel on every
decision and the share of decisions the same as that panel's, then each model's calibration.
The example configuration is used with each key's daily token cap raised (the study asks every
member on every decision, more than a day's cap of the smaller keys) and a fresh state folder,
so that no budget left by another run refuses a call.

    python bench/calibration.py [--data GOOGL --data EURUSD] [--samples 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any


def config_text() -> str:
    from lyra.config.loading import example_config_text

    return re.sub(r"daily_tokens = [0-9_]+", "daily_tokens = 100_000_000", example_config_text())


async def one(data: str, samples: int, folder: Path) -> dict[str, Any]:
    from lyra.engine import Lyra
    from lyra.simulator import SimulatorOptions
    from lyra.trading.backtest import Window
    from lyra.trading.data import load_sample
    from lyra.trading.evaluate import BacktestOptions, run_backtest
    from lyra.trading.panel_study import StudyOptions

    config = folder / f"{data}.toml"
    config.write_text(config_text())
    os.environ["XDG_DATA_HOME"] = str(folder / f"state-{data}")
    lyra = Lyra.from_config(config, simulator_options=SimulatorOptions(time_scale=0.0, generation_lag_s=0.0))
    study = StudyOptions(cheap_panel="quick", full_panel="trade", samples=samples)
    async with lyra:
        return await run_backtest(lyra, load_sample(data), BacktestOptions(window=Window(), study=study))


def show(data: str, result: dict[str, Any]) -> None:
    study = result["panel_study"]
    print(f"\n{data}: {study['decisions']} decisions, horizon {result['window']['horizon']} bars")
    print(f"{'baseline':52s} {'AI spend':>10s} {'per decision':>13s} {'vs full':>8s} {'same':>6s} "
          f"{'escalated':>9s} {'audited':>7s}")
    for r in study["baselines"]:
        per_decision = r["cost_per_decision_nanos"] / 1e9
        print(f"{r['label']:52s} {r['ai_spend_nanos'] / 1e9:10.4f} {per_decision:13.6f} "
              f"{r['spend_vs_full_panel']:8.1%} {r['same_as_full_panel']:6.1%} {r['escalated']:9d} "
              f"{r['audited']:7d}")
    # The tuned cascade once its record is built: the decisions after the first `min_sets`.
    rows = {r["name"]: r for r in study["baselines"]}
    skip = study["calibration_settings"]["min_sets"]
    tuned, full = rows["cascade"], rows["full_panel"]
    later = sum(tuned["cost_nanos_by_decision"][skip:]), sum(full["cost_nanos_by_decision"][skip:])
    same = sum(a == b for a, b in zip(tuned["decided"][skip:], full["decided"][skip:], strict=True))
    n = len(full["decided"][skip:])
    if n and later[1]:
        print(f"tuned cascade after its first {skip} decisions: {later[0] / later[1]:.1%} of the full "
              f"panel's spend, {same} of {n} decisions the same ({same / n:.1%})")
    print(f"{'model':30s} {'hit':>6s} {'Brier st':>9s} {'Brier cal':>9s} {'ECE st':>7s} {'ECE cal':>7s} "
          f"{'cost/correct':>12s}")
    for r in study["calibration"]:
        per = r["cost_per_correct_nanos"]
        print(f"{r['model']:30s} {r['hit_rate']:6.1%} {r['brier_stated']:9.3f} {r['brier_calibrated']:9.3f} "
              f"{r['ece_stated']:7.3f} {r['ece_calibrated']:7.3f} "
              f"{'-' if per is None else f'{per / 1e9:.6f}':>12s}")
    for name, p in study["diversity"].items():
        print(f"{name} panel: mean pairwise error correlation {p['mean_error_correlation']:.2f}, wrong "
              f"together agree {p['mean_error_agreement']:.1%}, effective voters "
              f"{p['effective_voters']:.2f} of {p['members']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", action="append", help="bundled sample (repeatable; default: GOOGL, EURUSD)")
    parser.add_argument("--samples", type=int, default=3, help="self-consistency samples per decision")
    parser.add_argument("--json", type=Path, help="also write the studies here")
    args = parser.parse_args()
    out = {}
    with tempfile.TemporaryDirectory() as folder:
        for data in args.data or ["GOOGL", "EURUSD"]:
            result = asyncio.run(one(data, args.samples, Path(folder)))
            show(data, result)
            out[data] = result["panel_study"]
    if args.json is not None:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    sys.exit(main())
