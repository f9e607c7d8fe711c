"""What each caller may see: a client its own usage, caps, report and decisions; an admin all of it.

A client token reads only what is its own. Key names, other clients and the desk's shared
caps are an operator's business, so a client's view drops them, and a budget refusal tells a
client what it needs (its own cap, what the request needed, when the cap resets) and nothing
about the shared caps behind it. An admin token (`role = "admin"`) sees everything.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from lyra.budget.governor import CapLine
from lyra.caps import Cap
from lyra.errors import BudgetExceeded, LyraError
from lyra.money import format_usd, usd_json
from lyra.service.auth import Client
from lyra.service.errors import ApiError, from_lyra_error


def own_cap_name(client: Client) -> str:
    """The label of the client's own daily cap."""
    return Cap.client(client.name).label


def visible_caps(caps: Sequence[CapLine], client: Client) -> list[CapLine]:
    """Every cap for an admin; only its own daily cap for a client."""
    if client.admin:
        return list(caps)
    return [cap for cap in caps if cap.name == own_cap_name(client)]


def require_admin(client: Client, what: str) -> None:
    """403 unless the caller is an operator."""
    if not client.admin:
        raise ApiError(403, f"{what} is for operators: it needs an admin token, and client "
                            f"{client.name!r} is not one", type="permission_error", code="admin_only")


def budget_refusal(exc: BudgetExceeded, client: Client | None) -> ApiError:
    """The 402 for a refused request: an operator gets the whole line, a client only its own part."""
    if client is None or client.admin:
        return ApiError(402, str(exc), type="insufficient_quota", code="budget_exceeded",
                        extra={"budget": _details(exc, own=True)})
    own = exc.cap == own_cap_name(client)
    needed = _amount(exc.needed, exc.unit)
    resets = f"; it resets at {iso_utc(exc.resets_at)}" if exc.resets_at is not None else ""
    if own:
        message = (f"client {client.name!r} has reached its daily cap: {_amount(exc.used, exc.unit)} of "
                   f"{_amount(exc.limit, exc.unit)} used or held, and this request needs up to {needed}"
                   f"{resets}")
    else:
        message = (f"the desk's shared budget cannot take this request now (it needs up to {needed})"
                   f"{resets}; your own cap is not what refused it")
    return ApiError(402, message, type="insufficient_quota", code="budget_exceeded",
                    extra={"budget": _details(exc, own=own)})


def _details(exc: BudgetExceeded, *, own: bool) -> dict[str, Any]:
    """The refusal's numbers: the cap's own figures only when the caller may see that cap."""
    details: dict[str, Any] = {"cap": exc.cap if own else "shared", "unit": exc.unit,
                               "needed": _number(exc.needed, exc.unit),
                               "resets_at": iso_utc(exc.resets_at) if exc.resets_at is not None else None}
    if own:
        details |= {"limit": _number(exc.limit, exc.unit), "used": _number(exc.used, exc.unit)}
    return details


def _number(value: int | None, unit: str) -> Any:
    if value is None:
        return None
    return usd_json(value) if unit == "usd" else value


def _amount(value: int | None, unit: str) -> str:
    if value is None:
        return "an unknown amount"
    return format_usd(value) if unit == "usd" else f"{value:,} tokens"


def iso_utc(ts: float) -> str:
    """An epoch time as ISO 8601 UTC to the second: `2026-12-02T00:00:00Z`."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ClientView:
    """Removes what a client may not see from an answer built for anyone: key names, above all.

    Votes and stage results carry the key that paid for them (`"key": "premium"`), and error
    texts name keys and caps (`via key premium`, `budget cap key:primary`); a client's copy
    drops the fields and writes `a shared key` in place of the names.
    """

    _HIDDEN_FIELDS = frozenset({"key", "key_name"})

    def __init__(self, key_names: Iterable[str]) -> None:
        names = sorted({re.escape(n) for n in key_names}, key=len, reverse=True)
        self._pattern = (re.compile(r"\b(?:via key |key[ :]|key_tokens:)'?(?:" + "|".join(names) + r")\b'?")
                         if names else None)

    def text(self, value: str) -> str:
        return self._pattern.sub("a shared key", value) if self._pattern is not None else value

    def payload(self, value: Any) -> Any:
        """A copy of a JSON-shaped value with key fields dropped and key names written out of text."""
        if isinstance(value, dict):
            return {k: self.payload(v) for k, v in value.items() if k not in self._HIDDEN_FIELDS}
        if isinstance(value, list):
            return [self.payload(v) for v in value]
        if isinstance(value, str):
            return self.text(value)
        return value

    def for_client(self, payload: Any, client: Client) -> Any:
        return payload if client.admin else self.payload(payload)


def error_for(exc: LyraError, client: Client | None, view: ClientView) -> ApiError:
    """The HTTP answer for an engine error, as this caller may see it."""
    if isinstance(exc, BudgetExceeded):
        return budget_refusal(exc, client)
    error = from_lyra_error(exc)
    if client is None or not client.admin:
        error.message = view.text(error.message)
    return error
