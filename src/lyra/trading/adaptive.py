"""Adaptive panel weights: each member's weight scaled by its track record, walk-forward.

At decision bar i only votes whose horizon has closed (cast at bar j with j + horizon <= i) are
scored, so a weight never uses an outcome that was unknown at the time. A member's multiplier is
twice its smoothed accuracy, (correct + 1) / (calls + 2): 1 with no history, up to 2 for a member
that is always right, towards 0 for one that is always wrong.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pandas as pd

from lyra.config import PanelSettings, Settings
from lyra.trading.backtest import Vote, forward_move


@dataclass(slots=True)
class AdaptiveWeights:
    """Votes seen so far and the weight multipliers they earn once their outcomes are known."""

    horizon: int
    pending: list[tuple[int, list[Vote]]] = field(default_factory=list)
    calls: dict[str, int] = field(default_factory=dict)
    correct: dict[str, int] = field(default_factory=dict)

    def observe(self, i: int, votes: list[Vote]) -> None:
        """Remember the votes cast at bar i, to be scored when their horizon closes."""
        self.pending.append((i, votes))

    def at(self, known: pd.DataFrame) -> dict[str, float]:
        """Multipliers per model at the last of the `known` bars, from the outcomes known by its close.

        Only the bars known at the decision are passed in, so no later price can reach a weight.
        """
        i = len(known) - 1
        still = []
        for j, votes in self.pending:
            if j + max(1, self.horizon) > i:
                still.append((j, votes))
                continue
            move = forward_move(known, j, self.horizon)
            for vote in votes:
                if vote.action in ("BUY", "SELL") and move is not None:
                    self.calls[vote.model] = self.calls.get(vote.model, 0) + 1
                    hit = (vote.action == "BUY") == (move > 0)
                    self.correct[vote.model] = self.correct.get(vote.model, 0) + int(hit)
        self.pending = still
        return {m: 2 * (self.correct.get(m, 0) + 1) / (n + 2) for m, n in self.calls.items()}


def reweighted(panel: PanelSettings, multipliers: dict[str, float]) -> PanelSettings:
    """The panel with each member's weight scaled by its multiplier (1 when it has no history)."""
    members = [m.model_copy(update={"weight": max(1e-6, m.weight * multipliers.get(m.model, 1.0))})
               for m in panel.members]
    return panel.model_copy(update={"members": members})


@contextmanager
def panel_weights(settings: Settings, names: tuple[str, ...], multipliers: dict[str, float]
                  ) -> Iterator[None]:
    """Use reweighted panels for the duration of one decision, then put the configured ones back."""
    saved = {n: settings.panels[n] for n in names if n in settings.panels}
    try:
        for name, panel in saved.items():
            settings.panels[name] = reweighted(panel, multipliers)
        yield
    finally:
        settings.panels.update(saved)


__all__ = ["AdaptiveWeights", "panel_weights", "reweighted"]
