"""The simulator's answers to the desk's structured reviews: compliance review and arbitrage evaluation.

Both are deterministic functions of the fenced JSON in the prompt, so that a test knows what a
review will say:

- compliance_review blocks an order that comes within 10 % of a desk limit (order size or the
  position it leaves), which a careful reviewer would send to a person; else it approves.
- arbitrage_evaluation rejects a candidate whose quote on either venue is stale (not from the
  current bar: a bar old or more), whose smaller side's volume is under ten times the quantity
  (too thin to fill), or that comes right after a gap in either venue's bars (more than two
  bars); else it accepts.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from lyra.simulator.tokens import message_text

_FENCE = re.compile(r"```[ \t]*json[ \t]*\r?\n(.*?)```", re.S)
NEAR_LIMIT = 0.9


def schema_name(response_format: Mapping[str, Any]) -> str | None:
    spec = response_format.get("json_schema")
    name = spec.get("name") if isinstance(spec, Mapping) else None
    return name if isinstance(name, str) else None


def desk_overlay(name: str | None, value: Any, messages: list[Any]) -> Any:
    """The review's verdict and reason, when the schema is one of the desk's; else `value` as it was."""
    if name not in ("compliance_review", "arbitrage_evaluation") or not isinstance(value, dict):
        return value
    data = _fenced(messages)
    if data is None:
        return value
    verdict, reason = _compliance(data) if name == "compliance_review" else _arbitrage(data)
    value["verdict"], value["reason"] = verdict, reason
    return value


def _fenced(messages: list[Any]) -> dict[str, Any] | None:
    for message in reversed(messages):
        if not isinstance(message, Mapping):
            continue
        for block in _FENCE.findall(message_text(message.get("content"))):
            try:
                data = orjson.loads(block)
            except orjson.JSONDecodeError:
                continue
            if isinstance(data, dict):
                return data
    return None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _compliance(data: dict[str, Any]) -> tuple[str, str]:
    order, desk = data.get("order") or {}, data.get("desk") or {}
    traded, target = _number(order.get("traded_notional_usd")), _number(order.get("notional_usd"))
    order_cap = _number(desk.get("max_order_notional_usd"))
    position_cap = _number(desk.get("max_position_notional_usd"))
    if traded is not None and order_cap and traded >= NEAR_LIMIT * order_cap:
        return "block", (f"order ${traded:,.0f} is within 10% of the ${order_cap:,.0f} order limit: "
                         "needs a person")
    if target is not None and position_cap and target >= NEAR_LIMIT * position_cap:
        return "block", (f"position ${target:,.0f} is within 10% of the ${position_cap:,.0f} position limit: "
                         "needs a person")
    return "approve", "within the desk's limits with room to spare"


def _arbitrage(data: dict[str, Any]) -> tuple[str, str]:
    interval = _number(data.get("interval_s")) or 0.0
    for venue in ("a", "b"):
        side = data.get(f"venue_{venue}") or {}
        age, gap = _number(side.get("quote_age_s")), _number(side.get("since_previous_bar_s"))
        if age is not None and interval and age >= interval:
            return "reject", (f"venue {venue.upper()}'s quote is stale ({age:,.0f} s old, bars every "
                              f"{interval:,.0f} s)")
        if gap is not None and interval and gap > 2 * interval:
            return "reject", (f"venue {venue.upper()} just reopened after a {gap:,.0f} s gap: "
                              "quotes unsettled")
    quantity = _number(data.get("quantity")) or 0.0
    volumes = (_number((data.get(f"venue_{x}") or {}).get("volume")) for x in ("a", "b"))
    depth = [v for v in volumes if v is not None]
    if depth and quantity and min(depth) < 10 * quantity:
        return "reject", (f"too thin: {min(depth):,.0f} traded on the thinner venue for a "
                          f"{quantity:,.0f} order")
    return "accept", "fresh quotes on both venues, enough depth, no gap"
