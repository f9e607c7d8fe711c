"""Headers that tell a client what an answer cost: the spend, the served model, its budget left.

A non-streamed chat answer carries them all; a consensus or a decision its spend (every member's
or stage's calls) and the budget left. A stream's headers leave before its cost is known: it
carries the served model only, and its cost arrives in the final usage chunk (`usage.cost`,
as OpenRouter sends it).
"""

from __future__ import annotations

from lyra.caps import Cap
from lyra.engine import Lyra
from lyra.errors import StateUnavailable
from lyra.money import usd_text
from lyra.service.auth import Client
from lyra.types import Completion

COST_HEADER = "x-lyra-cost-usd"
MODEL_HEADER = "x-lyra-model"
BUDGET_HEADER = "x-lyra-budget-remaining-usd"


async def completion_headers(lyra: Lyra, client: Client, completion: Completion) -> dict[str, str]:
    """What the request spent over all its attempts (exact USD), the served model, the client's day left."""
    return {MODEL_HEADER: completion.model, **await spend_headers(lyra, client, completion.total_cost_nanos)}


async def spend_headers(lyra: Lyra, client: Client, cost_nanos: int) -> dict[str, str]:
    """A request's spend (nano-dollars, as exact USD) and the client's budget left today."""
    headers = {COST_HEADER: usd_text(cost_nanos)}
    remaining = await budget_remaining(lyra, client)
    if remaining is not None:
        headers[BUDGET_HEADER] = usd_text(remaining)
    return headers


async def budget_remaining(lyra: Lyra, client: Client) -> int | None:
    """The client's daily cap less what is spent and held today (nano-dollars): one read of one cap."""
    governor = lyra.budget
    limit = governor.client_caps.get(client.name) if governor is not None else None
    if governor is None or limit is None:
        return None
    cap = Cap.client(client.name).storage_key(governor.day())
    try:
        used = (await governor.backend.usage([cap])).get(cap)
    except StateUnavailable:
        return None  # the answer is served and billed already: it goes out without this header
    spent = used.committed + used.reserved if used is not None else 0
    return max(0, limit - spent)
