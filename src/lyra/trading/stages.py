"""The decision pipeline's stages in one table: what each asks (task, tier or panel) and how much.

The pipeline, the backtest's cost estimate and look-ahead check, the daily plan and the gateway's
`/v1/decide` all read this table, so a stage's tier or token limit is stated once.

The table itself is in `lyra.config.stages`, so that the configuration can tell which tiers decide.
"""

from __future__ import annotations

from collections.abc import Iterator

from lyra.config import Settings
from lyra.config.stages import FINAL_PANEL, SIGNAL_PANEL, STAGES, Stage

_BY_NAME = {s.name: s for s in STAGES}


def stage(name: str) -> Stage:
    return _BY_NAME[name]


def single_calls() -> Iterator[Stage]:
    """The stages that are one routed call (not a panel)."""
    return (s for s in STAGES if s.panel is None)


def stage_tiers(settings: Settings) -> set[str]:
    """The tiers the single-call stages are charged to (panels add their members' tiers)."""
    return {t for s in single_calls() if (t := s.routed_tier(settings)) is not None}


def stage_models(settings: Settings) -> set[str]:
    """The models the single-call stages may ask: their task's models or their tier's."""
    models: set[str] = set()
    for s in single_calls():
        task = settings.tasks.get(s.task) if s.task is not None else None
        if task is not None and task.models:
            models |= set(task.models)
        elif (tier := s.routed_tier(settings)) is not None and tier in settings.tiers:
            models |= set(settings.tiers[tier].models)
    return models


__all__ = ["FINAL_PANEL", "SIGNAL_PANEL", "STAGES", "Stage", "single_calls", "stage", "stage_models",
           "stage_tiers"]
