"""Risk rules in code: sizing, drawdown halt, emergency stop; models may only add caution."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from lyra.config import RiskSettings

FinalAction = Literal["BUY", "SELL", "HOLD", "CLOSE"]
Verdict = Literal["approve", "reduce", "reject"]
_CAUTION = {"approve": 0, "reduce": 1, "reject": 2}
_TOLERANCE = 1e-9  # a limit is reached at exactly its value, whatever the float rounding of the ratio


def reaches(value: float, limit: float) -> bool:
    """True when a fraction (a drawdown, an adverse move) has reached a limit: 5.00 % reaches 5 %."""
    return value >= limit - _TOLERANCE


@dataclass(slots=True)
class Position:
    """An open position: signed units (positive long) at an entry price."""

    units: float = 0.0
    entry_price: float = 0.0


@dataclass(slots=True)
class AccountState:
    """What the risk rules need to know about the account today."""

    equity_at_day_start: float
    equity: float
    position: Position = field(default_factory=Position)
    day_low_equity: float | None = None  # the lowest equity seen today (intrabar), if tracked
    halted: bool = False  # the drawdown halt already fired today

    @property
    def drawdown(self) -> float:
        """The worst fall below the day-start equity so far today (now, or at the day's low)."""
        low = self.equity if self.day_low_equity is None else min(self.equity, self.day_low_equity)
        return max(0.0, (self.equity_at_day_start - low) / self.equity_at_day_start)


@dataclass(frozen=True, slots=True)
class RiskVerdict:
    """The code's ruling on a proposed action."""

    action: FinalAction
    notional_usd: float
    verdict: Verdict
    reasons: tuple[str, ...]
    premium_route: bool


class RiskRules:
    """Applies the configured limits; the model's verdict can tighten them, never loosen."""

    def __init__(self, settings: RiskSettings) -> None:
        self.settings = settings

    def needs_premium(self, notional_usd: float) -> bool:
        """Large trades go to the premium tier and the full consensus panel."""
        return notional_usd >= self.settings.premium_notional_usd

    def position_size_usd(self, equity: float, price: float, atr: float | None) -> float:
        """Notional that loses `risk_per_trade` of equity at an ATR stop, capped by the position share."""
        s = self.settings
        cap = equity * s.max_position_share
        if not atr or atr <= 0 or price <= 0:
            return cap
        units = equity * s.risk_per_trade / (atr * s.atr_stop_multiple)
        return min(cap, units * price)

    def emergency_stop(self, account: AccountState, price: float) -> bool:
        """True when the open position has moved against us beyond the emergency stop."""
        pos = account.position
        if pos.units == 0 or pos.entry_price <= 0:
            return False
        move = (price - pos.entry_price) / pos.entry_price
        adverse = -move if pos.units > 0 else move
        return reaches(adverse, self.settings.emergency_stop_loss)

    def rule(self, *, signal: FinalAction, proposed_notional_usd: float, price: float, atr: float | None,
             account: AccountState, model_verdict: Verdict | None = None,
             model_max_notional_usd: float | None = None, review_missing: str | None = None
             ) -> RiskVerdict:
        """The final action and size: the signal, bounded by every rule, tightened by the model.

        `review_missing` says why the risk review a new position needs could not be had (a failed
        or refused call): the rule then fails closed, holding instead of trading unreviewed.
        """
        reasons: list[str] = []
        premium = self.needs_premium(proposed_notional_usd)
        if self.emergency_stop(account, price):
            reasons.append(f"emergency stop: adverse move >= {self.settings.emergency_stop_loss:.1%}")
            exposure = abs(account.position.units) * price
            return RiskVerdict("CLOSE", exposure, "reject", tuple(reasons), premium)
        if signal in ("HOLD", "CLOSE"):
            return RiskVerdict(signal, 0.0, "approve", ("no new exposure",), premium)
        if account.halted or reaches(account.drawdown, self.settings.daily_drawdown_halt):
            halt = self.settings.daily_drawdown_halt
            reasons.append(f"daily drawdown {account.drawdown:.2%} reached the {halt:.2%} halt: new entries "
                           "halted for the day")
            return RiskVerdict("HOLD", 0.0, "reject", tuple(reasons), premium)
        if review_missing is not None:
            reasons.append(f"no risk review ({review_missing}): a trade is not made unreviewed")
            return RiskVerdict("HOLD", 0.0, "reject", tuple(reasons), premium)
        sized = self.position_size_usd(account.equity, price, atr)
        notional = min(proposed_notional_usd, sized)
        if notional < proposed_notional_usd:
            reasons.append(f"size capped at ${notional:,.0f} by volatility and position limits")
        verdict: Verdict = "approve" if notional == proposed_notional_usd else "reduce"
        if model_verdict is not None and _CAUTION[model_verdict] > _CAUTION[verdict]:
            verdict = model_verdict
            reasons.append(f"risk model says {model_verdict}")
        if model_max_notional_usd is not None and 0 <= model_max_notional_usd < notional:
            notional = model_max_notional_usd  # only ever smaller: a model cannot enlarge a position
            reasons.append(f"risk model caps size at ${notional:,.0f}")
        if verdict == "reject" or notional <= 0:
            return RiskVerdict("HOLD", 0.0, "reject", (*reasons, "trade rejected"), premium)
        return RiskVerdict(signal, notional, verdict, tuple(reasons) or ("within limits",), premium)
