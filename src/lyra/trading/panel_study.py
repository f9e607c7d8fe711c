"""The panel study: every member of the cheap and the full panel, and k samples of one model, each decision.

The pipeline asks the full panel only when the cheap one proposes a trade, so its record cannot
say what the full panel, a single model or a cascade would have decided elsewhere. The study asks
the signal prompt of each decision (the same features the pipeline saw) of every member of both
panels, waiting for all of them, and of one model `samples` more times with seeds 1..k
(self-consistency). Each baseline is then computed from these votes at its own members' costs.
The study's calls bypass the cache, so that each vote carries what it costs when asked on its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from lyra.config import PanelSettings, Settings
from lyra.consensus.decision import DECISION_RESPONSE_FORMAT, Abstention, parse_decision
from lyra.consensus.panel import with_instructions
from lyra.engine import Lyra
from lyra.errors import ConfigError, LyraError
from lyra.trading import prompts
from lyra.trading.data import Bars
from lyra.trading.features import features_at
from lyra.trading.pipeline import raw_features_at
from lyra.types import CompletionRequest, SpendTally


@dataclass(frozen=True, slots=True, kw_only=True)
class StudyOptions:
    """Which panels to study and how many extra samples of which model to take."""

    cheap_panel: str
    full_panel: str
    samples: int = 3  # self-consistency: this many extra answers of `model`; 0 for none
    model: str | None = None  # None: the full panel's heaviest member


@dataclass(frozen=True, slots=True)
class StudyVote:
    """One answer: the model, its action (None: no valid vote), stated confidence and exact cost."""

    model: str
    weight: float
    action: str | None
    confidence: float
    cost_nanos: int

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "weight": self.weight, "action": self.action,
                "confidence": self.confidence, "cost_nanos": self.cost_nanos}


@dataclass(slots=True)
class StudyPoint:
    """The votes on one decision's signal prompt."""

    time: pd.Timestamp
    bar: int  # the decision bar's position in the series
    cheap: list[StudyVote] = field(default_factory=list)
    full: list[StudyVote] = field(default_factory=list)
    samples: list[StudyVote] = field(default_factory=list)


def sampled_model(settings: Settings, options: StudyOptions) -> str:
    """The model sampled k times: as configured, else the full panel's heaviest member."""
    if options.model is not None:
        return options.model
    full = settings.panels[options.full_panel]
    return max(full.members, key=lambda m: m.weight).model


def check(settings: Settings, options: StudyOptions) -> None:
    """Fail with one line when a panel of the study is not configured."""
    for what, name in (("cheap", options.cheap_panel), ("full", options.full_panel)):
        if name not in settings.panels:
            raise ConfigError(f"panel study: the {what} panel {name!r} is not configured; configured: "
                              f"{', '.join(settings.panels) or 'none'}")
    if options.samples < 0:
        raise ConfigError(f"panel study: samples must be 0 or more, got {options.samples}")


def estimate_nanos(lyra: Lyra, decisions: int, options: StudyOptions) -> int:
    """An upper bound of what the study adds: both panels and the samples on every decision, at list price."""
    s = lyra.settings
    per_decision = 0
    model = sampled_model(s, options)
    for name, extra in ((options.cheap_panel, ()), (options.full_panel, (model,) * options.samples)):
        panel = s.panels[name]
        task = s.tasks.get(panel.task)
        prompt = task.expected_prompt_tokens if task is not None else 700
        for m in (*(m.model for m in panel.members), *extra):
            info = lyra.catalog.find(m)
            if info is not None:
                per_decision += info.cost_nanos(prompt, panel.max_tokens, round_up=True)
    return per_decision * decisions


async def collect(lyra: Lyra, bars: Bars, times: list[pd.Timestamp], options: StudyOptions, *,
                  feature_filter: Callable[[dict[str, Any]], dict[str, Any]] | None) -> list[StudyPoint]:
    """Ask both panels (every member) and the sampled model on each decision's signal prompt."""
    check(lyra.settings, options)
    index = {t: i for i, t in enumerate(bars.frame.index)}
    model = sampled_model(lyra.settings, options)
    key = _key_of(lyra.settings.panels[options.full_panel], model)
    full_settings = lyra.settings.panels[options.full_panel]
    points = []
    for t in times:
        known = bars.until(t)
        features = (features_at(known, t) if feature_filter is None
                    else feature_filter(raw_features_at(known, t)))
        messages = prompts.signal(features, ())
        cheap, full, samples = await asyncio.gather(
            _panel(lyra, messages, options.cheap_panel), _panel(lyra, messages, options.full_panel),
            asyncio.gather(*(_sample(lyra, messages, full_settings, model, key, seed)
                             for seed in range(1, options.samples + 1))))
        points.append(StudyPoint(time=t, bar=index[t], cheap=cheap, full=full, samples=list(samples)))
    return points


def _key_of(panel: PanelSettings, model: str) -> str | None:
    return next((m.key for m in panel.members if m.model == model), None)


async def _panel(lyra: Lyra, messages: Any, panel: str) -> list[StudyVote]:
    """Every member of the panel on the prompt, all waited for (a study needs each vote, not the outcome)."""
    cfg = lyra.settings.panels[panel]
    return list(await asyncio.gather(*(_ask(lyra, messages, cfg, m.model, m.key, m.weight, None)
                                       for m in cfg.members)))


async def _sample(lyra: Lyra, messages: Any, panel: PanelSettings, model: str, key: str | None,
                  seed: int) -> StudyVote:
    """One more answer of `model`, told apart from the others by its seed."""
    return await _ask(lyra, messages, panel, model, key, 1.0, seed)


async def _ask(lyra: Lyra, messages: Any, panel: PanelSettings, model: str, key: str | None, weight: float,
               seed: int | None) -> StudyVote:
    """One member's answer, asked as the panel asks it (same request, so a cassette holds one answer list).

    Its cost is what the answer cost (recorded with it, so a replay reports the same); a call that
    failed counts nothing and is no vote.
    """
    request = CompletionRequest(messages=with_instructions(messages), task=panel.task, model=model, key=key,
                                max_tokens=panel.max_tokens, seed=seed, cache="bypass",
                                response_format=DECISION_RESPONSE_FORMAT, deadline_s=panel.deadline_s,
                                spend=SpendTally())
    try:
        completion = await lyra.run(request)
    except LyraError:
        return StudyVote(model, weight, None, 0.0, 0)
    parsed = parse_decision(completion.text)
    cost = completion.total_cost_nanos
    if isinstance(parsed, Abstention):
        return StudyVote(model, weight, None, 0.0, cost)
    return StudyVote(model, weight, parsed.action, parsed.confidence, cost)


__all__ = ["StudyOptions", "StudyPoint", "StudyVote", "check", "collect", "estimate_nanos", "sampled_model"]
