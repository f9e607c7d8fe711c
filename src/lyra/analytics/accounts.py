"""The paper accounts section of a report: every stored account's business results, scoped by client.

A gateway client's accounts are named `gateway:<client>:<symbol>`; `lyra live` writes
`live:<symbol>`. A client's report lists only its own gateway accounts, an operator's all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lyra.ledger import AccountBook
from lyra.trading.account import AccountError, PaperAccount
from lyra.trading.paper import ROAS_DEFINITION, ROAS_UNIT, results

GATEWAY_PREFIX = "gateway:"
NO_ACCOUNT = "no paper account yet"


def _quote(client: str) -> str:
    # A client name may hold ':' (TOML allows it); quoted, one client's prefix is never another's.
    return client.replace("%", "%25").replace(":", "%3A")


def client_prefix(client: str) -> str:
    """The start of every account name a gateway client owns: `gateway:<client>:`."""
    return f"{GATEWAY_PREFIX}{_quote(client)}:"


def gateway_account_name(client: str, symbol: str) -> str:
    """The server's paper account of one gateway client for one symbol."""
    return client_prefix(client) + symbol


@dataclass(frozen=True, slots=True)
class AccountLine:
    """One stored paper account as a report shows it: its results, or why they cannot be read."""

    name: str
    results: dict[str, Any] | None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.results is None:
            return {"name": self.name, "error": self.error}
        return {"name": self.name, **self.results, "pnl_vs_buy_and_hold_usd": _beside_hold(self.results)}


def _beside_hold(r: dict[str, Any]) -> float | None:
    """The account's P&L less what buying and holding the same equity over the same period made."""
    hold = r.get("buy_and_hold_pnl_usd")
    return None if hold is None else round(float(r["pnl_usd"]) - float(hold), 2)


def read_accounts(book: AccountBook, *, client: str | None) -> list[AccountLine]:
    """Every stored account (an operator), or a client's own gateway accounts (blocking: a thread)."""
    prefix = "" if client is None else client_prefix(client)
    return [_line(book, name) for name in book.names(prefix)]


def _line(book: AccountBook, name: str) -> AccountLine:
    stored = book.load(name)
    if stored is None:  # removed between the listing and the read
        return AccountLine(name, None, "removed while the report was read")
    try:
        account = PaperAccount.from_dict(stored)
    except (AccountError, KeyError, TypeError, ValueError) as exc:
        return AccountLine(name, None, f"cannot be read: {exc}")
    return AccountLine(name, results(account))


def accounts_section(lines: list[AccountLine]) -> dict[str, Any]:
    """The section as JSON: the accounts, the ROAS definition and unit, and a plain note when empty."""
    return {"accounts": [line.to_dict() for line in lines],
            "note": None if lines else NO_ACCOUNT,
            "return_on_ai_spend_definition": ROAS_DEFINITION,
            "return_on_ai_spend_unit": ROAS_UNIT}


__all__ = ["GATEWAY_PREFIX", "NO_ACCOUNT", "AccountLine", "accounts_section", "client_prefix",
           "gateway_account_name", "read_accounts"]
