"""Record and replay of model answers, keyed by the canonical request hash (`lyra.routing.cache.cache_key`).

A cassette is one JSON file: the answers (completions, or the error or cancellation a request
met), the model ids that served them, the prices they were charged at and the time range of the
bars they were asked about. Install one on an engine with `Lyra.set_interceptor(cassette.intercept)`:
in "record" mode every upstream answer is stored; in "replay" mode a stored answer is returned
with no upstream call, and a request that was never recorded is an error naming it.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Literal

import orjson

from lyra.errors import LyraError
from lyra.routing.cache import cache_key
from lyra.types import Attempt, Choice, Completion, CompletionRequest

Mode = Literal["record", "replay"]
Call = Callable[[CompletionRequest], Awaitable[Completion]]
FORMAT = "lyra-cassette/1"


class CassetteMiss(RuntimeError):
    """Replay met a request the cassette does not hold.

    Deliberately not a LyraError: the pipeline turns LyraErrors into failed stages and abstentions,
    and a replay that no longer matches its recording must stop the backtest instead.
    """


class Cassette:
    """Recorded answers by request hash, with the models, prices and time range behind them."""

    def __init__(self, path: Path, mode: Mode) -> None:
        self.path = path
        self.mode = mode
        self.entries: dict[str, dict[str, Any]] = {}
        self.time_range: list[str] = []
        self.replayed = 0  # answers served from the cassette (replay): equals `recorded` of the same run
        self.recorded = 0  # answers stored (record): every request asked, whatever its outcome
        self.outcomes = {"model": 0, "cache": 0, "failed": 0}  # how the asked requests ended
        self._touched: set[str] = set()
        self._cursor: dict[str, int] = {}
        if path.exists():
            self._load()
        elif mode == "replay":
            raise LyraError(f"cassette {path} does not exist; record one first with --record {path}")

    def _load(self) -> None:
        try:
            data = orjson.loads(self.path.read_bytes())
        except (OSError, orjson.JSONDecodeError) as exc:
            raise LyraError(f"cassette {self.path} is not readable: {exc}") from exc
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise LyraError(f"cassette {self.path} is not a {FORMAT} file")
        self.entries = dict(data.get("entries", {}))
        self.time_range = list(data.get("time_range", []))

    def note_time_range(self, start: str, end: str) -> None:
        """Widen the recorded time range to cover [start, end] (ISO 8601, UTC)."""
        if self.mode != "record":
            return
        points = [*self.time_range, start, end]
        self.time_range = [min(points), max(points)]

    async def intercept(self, request: CompletionRequest, call: Call) -> Completion:
        """The engine's interceptor: answer from the cassette, or call upstream and store the answer.

        It sits before the engine's cache, so it stores what the caller got (a cache hit too, at no
        cost). Each request hash keeps its answers in the order they were asked for, so a request
        abandoned once (a panel settled before it answered) and answered later replays the same way.
        """
        key = cache_key(request)
        if self.mode == "replay":
            return await self._replay(key, request)
        answers = self._answers_this_run(key, request)
        slot = len(answers)  # the order of asking, not of answering, is what replay follows
        answers.append({"kind": "cancelled"})
        self.recorded += 1
        booked = request.spend.nanos if request.spend is not None else 0
        try:
            completion = await call(request)
        except LyraError as exc:
            answers[slot] = {"kind": "error", "error_type": type(exc).__name__, "message": str(exc)}
            self.outcomes["failed"] += 1
            raise
        finally:
            # What the router booked for it (failed and cancelled attempts too): a panel reads its
            # members' spend from the request's tally, which a replay must fill in the same way.
            if request.spend is not None:
                answers[slot]["spend_nanos"] = request.spend.nanos - booked
        answers[slot] = {"kind": "completion", "completion": _completion_dict(completion),
                         "spend_nanos": answers[slot].get("spend_nanos", 0)}
        self._count(completion)
        return completion

    def _count(self, completion: Completion) -> None:
        self.outcomes["cache" if completion.cached else "model"] += 1

    def _answers_this_run(self, key: str, request: CompletionRequest) -> list[dict[str, Any]]:
        if key not in self._touched:
            self._touched.add(key)
            self.entries[key] = {"request": _describe(request), "answers": []}
        answers: list[dict[str, Any]] = self.entries[key]["answers"]
        return answers

    async def _replay(self, key: str, request: CompletionRequest) -> Completion:
        entry = self.entries.get(key)
        if entry is None or not entry["answers"]:
            raise CassetteMiss(f"cassette {self.path} has no answer for request {key} "
                               f"({_describe(request)}); re-record with --record")
        seen = self._cursor.get(key, 0)
        self._cursor[key] = seen + 1
        answer = entry["answers"][min(seen, len(entry["answers"]) - 1)]
        self.replayed += 1
        if request.spend is not None:
            request.spend.nanos += _spend_of(answer)
        if answer["kind"] == "cancelled":
            # It was abandoned mid-flight when recorded (a settled panel); keep it pending again.
            await asyncio.Event().wait()
        if answer["kind"] == "error":
            self.outcomes["failed"] += 1
            raise _replayed_error(str(answer["error_type"]), str(answer["message"]))
        completion = _completion_from_dict(answer["completion"])
        self._count(completion)
        return completion

    def counts(self) -> dict[str, int]:
        """This run's requests and how each ended; record and replay of the same run give the same.

        requests = model + cache + failed + abandoned; `distinct` is how many request hashes the
        file holds (a request asked again, by the adaptive walk say, is one hash).
        """
        asked = self.recorded if self.mode == "record" else self.replayed
        return {"requests": asked, **self.outcomes, "abandoned": asked - sum(self.outcomes.values()),
                "distinct": len(self.entries)}

    def summary(self) -> dict[str, Any]:
        """Models, prices and time range recorded, for the report and the file header."""
        models: dict[str, dict[str, Any]] = {}
        answers = [a for entry in self.entries.values() for a in entry["answers"]]
        for answer in answers:
            if answer["kind"] != "completion":
                continue
            c = answer["completion"]
            row = models.setdefault(c["model"], {"answers": 0, "cost_nanos": 0, "prompt_tokens": 0,
                                                 "completion_tokens": 0})
            row["answers"] += 1
            row["cost_nanos"] += int(c["cost_nanos"])
            row["prompt_tokens"] += int(c["prompt_tokens"])
            row["completion_tokens"] += int(c["completion_tokens"])
        for row in models.values():
            tokens = row["prompt_tokens"] + row["completion_tokens"]
            row["usd_per_million_tokens"] = round(row["cost_nanos"] / tokens, 4) if tokens else None
        return {"entries": len(self.entries), "time_range": self.time_range,
                "models": dict(sorted(models.items()))}

    def save(self) -> None:
        """Write the cassette (record mode only), keys sorted so that files diff cleanly."""
        if self.mode != "record":
            return
        data = {"format": FORMAT, **self.summary(), "entries": self.entries}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_bytes(orjson.dumps(data, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2))


def _spend_of(answer: dict[str, Any]) -> int:
    """What the router booked for a recorded answer (older cassettes: the completion's own cost)."""
    if "spend_nanos" in answer:
        return int(answer["spend_nanos"])
    if answer["kind"] == "completion":
        attempts = answer["completion"].get("attempts") or []
        return sum(int(a["cost_nanos"]) for a in attempts) or int(answer["completion"]["cost_nanos"])
    return 0


def _describe(request: CompletionRequest) -> str:
    route = request.model or request.tier or "-"
    return f"task={request.task or '-'} route={route}"


def _completion_dict(completion: Completion) -> dict[str, Any]:
    return dataclasses.asdict(completion)


def _completion_from_dict(data: dict[str, Any]) -> Completion:
    fields = dict(data)
    fields["attempts"] = [Attempt(**a) for a in fields.get("attempts", [])]
    fields["choices"] = [Choice(**c) for c in fields.get("choices", [])]
    return Completion(**fields)


def _replayed_error(name: str, message: str) -> LyraError:
    """The recorded error again, under its recorded class name, so that reasons read the same."""
    kind: type[LyraError] = type(name, (LyraError,), {"__doc__": "An error replayed from a cassette."})
    return kind(message)


def describe_counts(counts: dict[str, int], mode: str) -> str:
    """The one line that explains a cassette's counters (see `Cassette.counts`)."""
    source = "recorded now" if mode == "record" else "served from the cassette, no model called"
    return (f"{counts['requests']} requests ({source}) = {counts['model']} answered by a model + "
            f"{counts['cache']} from the response cache + {counts['failed']} failed + "
            f"{counts['abandoned']} abandoned (a panel settled first); {counts['distinct']} distinct")


__all__ = ["Cassette", "CassetteMiss", "Mode", "describe_counts"]
