"""One JSON shape for a cap line, shared by `lyra budget --json` and the gateway's GET /v1/budget.

`{name, unit, limit, spent, reserved, remaining}`: `unit` is `usd` or `tokens`; a `usd` line's amounts
are JSON numbers of US dollars written exactly from integer nano-dollars (lyra.money.usd_json), a
`tokens` line's are integers.
"""

from __future__ import annotations

from typing import Any

from lyra.budget.governor import CapLine
from lyra.money import usd_json


def cap_amount(value: int, unit: str) -> Any:
    """A cap's amount as JSON: exact USD for a dollar cap, the integer count for a token cap."""
    return usd_json(value) if unit == "usd" else int(value)


def cap_line_json(line: CapLine) -> dict[str, Any]:
    """The cap line as JSON values (serialise with orjson: dollar amounts are orjson Fragments)."""
    return {"name": line.name, "unit": line.unit, "limit": cap_amount(line.limit, line.unit),
            "spent": cap_amount(line.committed, line.unit), "reserved": cap_amount(line.reserved, line.unit),
            "remaining": cap_amount(line.remaining, line.unit)}


__all__ = ["cap_amount", "cap_line_json"]
