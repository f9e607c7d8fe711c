"""Fine-tuning data from the decision audit trail: SFT lines and DPO pairs in OpenAI's chat JSONL.

Each recorded decision holds, per stage, the messages it sent and every panel member's answer as
it came back. A decision is scored against the bars that followed it, with the backtest's rule
(`backtest.forward_move`: the close `horizon` bars later over the next bar's open), but only on the bars
known at `as_of`: the bars are cut there before anything is scored, so an outcome that was not yet
known (its horizon bar is after `as_of`) never enters the file, and no later bar can change it.

The realised move names the one right action: BUY above `hold_band`, SELL below `-hold_band`,
HOLD in between (by default the band is a round trip's fees and slippage: a trade that does not
beat its costs was not worth making). An SFT line is the prompt as sent plus one answer that took
the right action; a DPO pair is the same prompt with a right answer preferred over a wrong one
given to it in the same decision. Answers that are not a valid decision never become examples.
"""

from __future__ import annotations

import collections
import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
import pandas as pd

from lyra.consensus.decision import Decision, parse_decision
from lyra.log import mask_secrets
from lyra.trading.account import Costs
from lyra.trading.data import Bars, DataError, as_utc

Format = Literal["sft", "dpo", "both"]
Action = Literal["BUY", "SELL", "HOLD"]
# The pipeline stages with several answers to one prompt (a panel) and the decision field that
# holds their consensus: only they have a better and a worse answer to compare.
TASKS = {"signal_generation": "signal", "final_decision": "final"}
ROLES = frozenset({"system", "user", "assistant"})


@dataclass(frozen=True, slots=True, kw_only=True)
class FinetuneOptions:
    """What to export: which stage's answers, scored how, with the outcomes known at which time."""

    as_of: pd.Timestamp
    task: str = "signal_generation"
    horizon: int = 1  # bars after the decision over which its outcome is measured
    hold_band: float = Costs().round_trip  # a move at most this (a fraction) made HOLD the right call

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise DataError(f"--task {self.task!r}: choose one of {', '.join(TASKS)} (a panel stage)")
        if self.horizon < 1:
            raise DataError(f"--horizon must be at least 1 bar, got {self.horizon}")
        if self.hold_band < 0:
            raise DataError(f"--hold-band-bps must not be negative, got {self.hold_band * 10_000:g}")


@dataclass(slots=True)
class FinetuneExport:
    """The JSONL lines (each one JSON object, no newline) and the counts behind them."""

    sft: list[bytes] = field(default_factory=list)
    dpo: list[bytes] = field(default_factory=list)
    counts: collections.Counter[str] = field(default_factory=collections.Counter)
    sft_by_action: collections.Counter[str] = field(default_factory=collections.Counter)

    def summary(self) -> dict[str, Any]:
        c = self.counts
        return {
            "decisions_seen": c["seen"], "other_symbol": c["other_symbol"], "not_on_bars": c["not_on_bars"],
            "outcome_not_known": c["not_known"], "outcome_known": c["known"],
            "without_prompts": c["without_prompts"], "answers": c["answers"],
            "answers_unusable": c["unusable"], "sft_lines": len(self.sft), "dpo_pairs": len(self.dpo),
            "sft_by_action": dict(sorted(self.sft_by_action.items())),
            "duplicates_dropped": c["duplicates"],
        }


@dataclass(frozen=True, slots=True)
class _Answer:
    text: str
    action: Action


def realised_action(move: float, band: float) -> Action:
    """The action the outcome shows was right: a move beyond the band one way or the other, else HOLD."""
    if move > band:
        return "BUY"
    if move < -band:
        return "SELL"
    return "HOLD"


def build_export(payloads: Iterable[dict[str, Any]], bars: Bars, options: FinetuneOptions) -> FinetuneExport:
    """The examples of every decision (audit payloads, in chain order) whose outcome was known at as-of."""
    known = _Known(bars.until(options.as_of))  # nothing after as-of is read again below
    out = FinetuneExport()
    seen_lines: set[bytes] = set()
    clean = _Clean()
    for payload in payloads:
        out.counts["seen"] += 1
        move = _outcome(payload, bars.symbol, known, options, out.counts)
        if move is None:
            continue
        out.counts["known"] += 1
        prompt = _prompt(payload, options.task, clean)
        if prompt is None:
            out.counts["without_prompts"] += 1
            continue
        answers = _answers(payload, options.task, out.counts, clean)
        best = realised_action(move, options.hold_band)
        right = [a for a in answers if a.action == best]
        wrong = [a for a in answers if a.action != best]
        for answer in right:
            if _keep(_sft_line(prompt, answer), out.sft, seen_lines, out.counts):
                out.sft_by_action[answer.action] += 1
        for good in right:
            for bad in wrong:
                _keep(_dpo_line(prompt, good, bad), out.dpo, seen_lines, out.counts)
    return out


class _Known:
    """The bars known at as-of as plain arrays: the outcome of thousands of decisions is read from them."""

    def __init__(self, bars: Bars) -> None:
        self.index = {t: i for i, t in enumerate(bars.frame.index)}
        self.opens = bars.frame["open"].to_numpy()
        self.closes = bars.frame["close"].to_numpy()

    def move(self, i: int, horizon: int) -> float | None:
        """`backtest.forward_move` on these bars: the close `horizon` bars on over the next open, less 1."""
        ahead = i + max(1, horizon)
        if ahead >= len(self.closes):
            return None
        return float(self.closes[ahead] / self.opens[i + 1] - 1)


class _Clean:
    """Texts already checked for key-shaped strings (the instructions repeat in every prompt)."""

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def __call__(self, text: str) -> bool:
        if text in self._seen:
            return True
        if mask_secrets(text) != text:
            return False
        self._seen.add(text)
        return True


def _outcome(payload: dict[str, Any], symbol: str, known: _Known, options: FinetuneOptions,
             counts: collections.Counter[str]) -> float | None:
    """The decision's realised move on the bars known at as-of, or None (counted why)."""
    if payload.get("symbol") != symbol:
        counts["other_symbol"] += 1
        return None
    try:
        when = as_utc(str(payload.get("time")))
    except DataError:
        counts["not_on_bars"] += 1
        return None
    if when > options.as_of:
        counts["not_known"] += 1
        return None
    i = known.index.get(when)
    if i is None:
        counts["not_on_bars"] += 1
        return None
    move = known.move(i, options.horizon)
    if move is None:  # the horizon bar closed after as-of (or is not in the data yet)
        counts["not_known"] += 1
    return move


def _prompt(payload: dict[str, Any], task: str, clean: _Clean) -> list[dict[str, str]] | None:
    """The messages the stage sent, as sent; None when not recorded or not valid chat messages."""
    stages = payload.get("stages", ())
    stage = next((s for s in stages if isinstance(s, dict) and s.get("stage") == task), None)
    messages = stage.get("messages") if stage is not None else None
    if not isinstance(messages, list) or not messages:
        return None
    out = []
    for m in messages:
        role, content = (m.get("role"), m.get("content")) if isinstance(m, dict) else (None, None)
        if role not in ROLES or role == "assistant" or not isinstance(content, str) or not content.strip():
            return None
        if not clean(content):
            return None  # something shaped like a key: never into a training file
        out.append({"role": role, "content": content})
    return out


def _answers(payload: dict[str, Any], task: str, counts: collections.Counter[str],
             clean: _Clean) -> list[_Answer]:
    """Each distinct valid answer of the stage's panel (and the panel it escalated from), in vote order."""
    found: dict[str, _Answer] = {}
    panel = payload.get(TASKS[task])
    while isinstance(panel, dict):
        for vote in panel.get("votes", ()):
            if not isinstance(vote, dict) or vote.get("status") != "vote":
                continue
            counts["answers"] += 1
            text = vote.get("answer")
            parsed = parse_decision(text) if isinstance(text, str) and text.strip() else None
            if not isinstance(parsed, Decision) or not clean(str(text)):
                counts["unusable"] += 1
                continue
            found.setdefault(str(text), _Answer(str(text), parsed.action))
        panel = panel.get("escalated_from")
    return list(found.values())


def _sft_line(prompt: Sequence[dict[str, str]], answer: _Answer) -> bytes:
    return orjson.dumps({"messages": [*prompt, {"role": "assistant", "content": answer.text}]})


def _dpo_line(prompt: Sequence[dict[str, str]], good: _Answer, bad: _Answer) -> bytes:
    return orjson.dumps({"input": {"messages": list(prompt)},
                         "preferred_output": [{"role": "assistant", "content": good.text}],
                         "non_preferred_output": [{"role": "assistant", "content": bad.text}]})


def _keep(line: bytes, into: list[bytes], seen: set[bytes], counts: collections.Counter[str]) -> bool:
    """Append a line unless the same line is already in the export (a cached answer asked again)."""
    if line in seen:
        counts["duplicates"] += 1
        return False
    seen.add(line)
    into.append(line)
    return True


def jsonl(lines: Sequence[bytes]) -> bytes:
    """The lines as one JSONL file: each line then a newline; no lines, an empty file."""
    return b"".join(line + b"\n" for line in lines)


def digest(data: bytes) -> str:
    """A short fingerprint of a file's bytes, for the summary (same ledger, same bars: same digest)."""
    return hashlib.sha256(data).hexdigest()[:16]


__all__ = ["TASKS", "FinetuneExport", "FinetuneOptions", "Format", "build_export", "digest", "jsonl",
           "realised_action"]
