"""The decision pipeline's stages as the configuration sees them: what each asks (task, tier or panel).

The table lives here, below the trading pipeline, so that the configuration can tell which tiers
take part in decisions (their model ids must be exact; see `Settings.decision_tiers`). The
pipeline and everything that reads it import it through `lyra.trading.stages`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from lyra.config.schema import Settings

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

__all__ = ["FINAL_PANEL", "SIGNAL_PANEL", "STAGES", "Stage"]
