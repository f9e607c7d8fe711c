"""The decision pipeline's stages in one table: what each asks (task, tier or panel) and how much.

The pipeline, the backtest's cost estimate and look-ahead check, the daily plan and the gateway's
`/v1/decide` all read this table, so a stage's tier or token limit is stated once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from lyra.config import Settings

SIGNAL_PANEL = "quick"  # the panel that proposes the trade
FINAL_PANEL = "trade"  # the panel that takes the final decision (it may escalate from a cheaper one)


@dataclass(frozen=True, slots=True)
class Stage:
    """One stage: routed by a task, by a tier, or asked of a consensus panel."""

    name: str
    task: str | None = None
    tier: str | None = None
    panel: str | None = None
    max_tokens: int | None = None  # None: the task's or the model's own limit
    on_trade_only: bool = False  # runs only when the signal proposes a trade

    def routed_tier(self, settings: Settings) -> str | None:
        """The tier this stage's single call is charged to (None for a panel or an unknown task)."""
        if self.tier is not None:
            return self.tier
        task = settings.tasks.get(self.task) if self.task is not None else None
        return task.tier if task is not None else None


STAGES: tuple[Stage, ...] = (
    Stage("market_data", tier="fast", max_tokens=200),
    Stage("technical_analysis", task="market_analysis"),
    Stage("signal_generation", panel=SIGNAL_PANEL),
    Stage("risk_assessment", task="risk_assessment", on_trade_only=True),
    Stage("final_decision", panel=FINAL_PANEL, on_trade_only=True),
    Stage("execution_monitoring", tier="fast", max_tokens=150, on_trade_only=True),
)
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
