"""Paper accounts by name, kept in the ledger database, and the business results a desk reads off them."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from lyra.config import Settings
from lyra.ledger import AccountBook
from lyra.money import NANOS_PER_USD
from lyra.trading.account import AccountError, Costs, PaperAccount, session_start_s

ROAS_UNIT = "USD of P&L per USD of AI spend"
ROAS_DEFINITION = ("return on AI spend: the account's P&L in USD (realised and unrealised, after fees) "
                   "divided by what its decisions' model calls cost in USD")


class PaperBook:
    """Opens a named paper account as stored (or new, at the configured equity) and saves it back."""

    def __init__(self, settings: Settings, store: AccountBook | None, *, costs: Costs | None = None) -> None:
        self.settings = settings
        self.store = store  # None: accounts live only as long as the process (no ledger)
        self.costs = costs or Costs()
        self._open: dict[str, PaperAccount] = {}

    def open(self, name: str) -> PaperAccount:
        """The account called `name`: resumed from the store, or opened at the configured equity."""
        if name in self._open:
            return self._open[name]
        risk, day_start = self.settings.risk, session_start_s(self.settings)
        stored = self.store.load(name) if self.store is not None else None
        if stored is None:
            account = PaperAccount(equity=risk.account_equity_usd, costs=self.costs, risk=risk,
                                   day_start_s=day_start)
        else:
            try:
                account = PaperAccount.from_dict(stored, costs=self.costs, risk=risk, day_start_s=day_start)
            except (AccountError, KeyError, TypeError, ValueError) as exc:
                raise AccountError(f"paper account {name!r} in the ledger cannot be resumed: {exc}") from None
        self._open[name] = account
        return account

    def save(self, name: str, account: PaperAccount) -> None:
        self._open[name] = account
        if self.store is not None:
            self.store.save(name, account.to_dict())


def results(account: PaperAccount) -> dict[str, Any]:
    """What the account earned, how it got there and what the models cost, beside buy-and-hold."""
    pnl = account.equity - account.starting_equity
    spend_usd = Decimal(account.ai_spend_nanos) / NANOS_PER_USD
    first, last = account.first_price, account.last_price
    hold = last / first - 1 if first and last else None
    return {
        "equity_usd": round(account.equity, 2), "starting_equity_usd": round(account.starting_equity, 2),
        "pnl_usd": round(pnl, 2), "realised_pnl_usd": round(account.realised_pnl, 2),
        "unrealised_pnl_usd": round(account.unrealised_pnl, 2), "position_units": account.units,
        "entry_price": account.entry or None, "fills": len(account.fills),
        "closed_trades": account.tally.closed, "profitable_share": account.tally.profitable_share,
        "day_drawdown": account.day_drawdown, "halted": account.halted,
        "emergency_stops": sum(e.kind == "emergency_stop" for e in account.events),
        "drawdown_halts": sum(e.kind == "drawdown_halt" for e in account.events),
        "decisions": account.decisions, "ai_spend_nanos": account.ai_spend_nanos,
        "return_on_ai_spend": float(Decimal(repr(pnl)) / spend_usd) if spend_usd else None,
        "return_on_ai_spend_unit": ROAS_UNIT,
        "buy_and_hold_return": hold,
        "buy_and_hold_pnl_usd": round(account.starting_equity * hold, 2) if hold is not None else None,
        "since": account.first_time.isoformat() if account.first_time is not None else None,
        "until": account.last_time.isoformat() if account.last_time is not None else None,
    }


__all__ = ["ROAS_DEFINITION", "ROAS_UNIT", "PaperBook", "results"]
