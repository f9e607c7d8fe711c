"""What recording prompts costs the audit trail, and what `lyra export finetune` costs beside reading it.

Fills a fresh SQLite ledger with `--decisions` pipeline decisions on the built-in simulator, then
prints the payload size per record with and without the recorded messages and answers, and, over
`--rounds` rounds, the time per decision of reading the trail (the baseline: the SQL and the JSON
decoding every export needs) beside reading it and building the SFT and DPO lines.

    python bench/finetune_export.py --decisions 60 --rounds 30
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson


def _without_recorded_text(payload: dict[str, Any]) -> dict[str, Any]:
    """The payload as it was before prompts and answers were recorded."""
    for stage in payload["stages"]:
        stage.pop("messages", None)
        stage.pop("answer", None)
    for name in ("signal", "final"):
        panel = payload.get(name)
        while isinstance(panel, dict):
            for vote in panel["votes"]:
                vote.pop("answer", None)
            panel = panel.get("escalated_from")
    return payload


async def _fill(decisions: int) -> None:
    from lyra import Lyra
    from lyra.simulator import SimulatorOptions
    from lyra.trading.data import load_sample
    from lyra.trading.pipeline import TradingAIOrchestrator

    bars = load_sample("GOOGL")
    async with Lyra.from_config(simulator_options=SimulatorOptions(time_scale=0.0)) as lyra:
        orchestrator = TradingAIOrchestrator(lyra)
        for t in bars.frame.index[-decisions:]:
            await orchestrator.decide("GOOGL", bars, at=t)


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="lyra-bench-finetune-"))
    os.environ["XDG_DATA_HOME"] = str(folder / "data")
    os.environ["LYRA_LEDGER_URL"] = f"sqlite:///{folder / 'ledger.db'}"
    os.environ.pop("OPENROUTER_API_KEY", None)
    asyncio.run(_fill(args.decisions))

    from lyra.ledger import Ledger
    from lyra.trading.data import load_sample
    from lyra.trading.finetune import FinetuneOptions, build_export

    bars = load_sample("GOOGL")
    options = FinetuneOptions(as_of=bars.end)
    store = Ledger(os.environ["LYRA_LEDGER_URL"])
    try:
        payloads = [r.payload for r in store.audit.records()]
        now = [len(orjson.dumps(p, option=orjson.OPT_SORT_KEYS)) for p in payloads]
        before = [len(orjson.dumps(_without_recorded_text(orjson.loads(orjson.dumps(p))),
                                   option=orjson.OPT_SORT_KEYS)) for p in payloads]
        read, export = [], []
        built = None
        for _ in range(args.rounds):
            started = time.perf_counter()
            list(r.payload for r in store.audit.records())
            read.append((time.perf_counter() - started) / len(payloads) * 1e6)
            started = time.perf_counter()
            built = build_export((r.payload for r in store.audit.records()), bars, options)
            export.append((time.perf_counter() - started) / len(payloads) * 1e6)
    finally:
        store.close()
    assert built is not None
    print(f"{len(payloads)} decisions: payload bytes per record, median {statistics.median(now):,.0f} "
          f"(max {max(now):,}) with prompts and answers, {statistics.median(before):,.0f} "
          f"(max {max(before):,}) without: x{statistics.median(now) / statistics.median(before):.2f}")
    (r50, r99), (e50, e99) = _percentiles(read), _percentiles(export)
    print(f"read the trail:           p50 {r50:7.1f} us/decision, p99 {r99:7.1f}")
    print(f"read + build SFT and DPO: p50 {e50:7.1f} us/decision, p99 {e99:7.1f} "
          f"(x{e50 / r50:.2f} the read; {len(built.sft)} SFT lines, {len(built.dpo)} DPO pairs)")


if __name__ == "__main__":
    main()
