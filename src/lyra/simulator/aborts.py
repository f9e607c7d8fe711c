"""A stream the client hangs up on: billed as OpenRouter bills it, by whether the provider stops.

OpenRouter's docs: aborting a stream stops billing only for providers that support cancellation
(OpenAI, Azure, Anthropic, DeepInfra, Together, xAI and a few others). For the rest the provider
generates the whole answer and all of it is billed.
"""

from __future__ import annotations

import time
from decimal import Decimal

from lyra.money import usd_to_nanos
from lyra.simulator.chat_request import ChatRequest
from lyra.simulator.prompt_cache import cache_discount
from lyra.simulator.reply import Reply
from lyra.simulator.state import GenerationRecord, KeyAccount, SimulatorState
from lyra.simulator.wire import call_cost

# Provider names as the catalogue spells them (ModelInfo.provider).
CANCELLING_PROVIDERS = frozenset({"OpenAI", "Azure", "Anthropic", "DeepInfra", "Together", "xAI"})


def stops_on_cancel(provider: str) -> bool:
    return provider in CANCELLING_PROVIDERS


def billed_completion_tokens(reply: Reply, sent_tokens: int) -> int:
    """What an aborted stream is billed for: what was sent if the provider stops, else all of it."""
    return sent_tokens if stops_on_cancel(reply.model.provider) else reply.completion_tokens


def settle_abort(state: SimulatorState, req: ChatRequest, reply: Reply, account: KeyAccount,
                 sent_tokens: int) -> Decimal:
    """Charge an aborted stream and keep its record for /generation (cancelled); return the cost.

    Zero-completion insurance: a cancelled generation that produced no token is not billed.
    """
    completion = billed_completion_tokens(reply, sent_tokens)
    cost = (call_cost(reply.model, reply.prompt_tokens, completion, reply.cached_tokens) if completion
            else Decimal(0))
    account.charge(cost)
    state.stats.total_cost_nanos += usd_to_nanos(cost)
    options = state.options
    state.record(GenerationRecord(
        id=reply.gen_id, model=reply.served_id, provider=reply.model.provider, created=float(reply.created),
        streamed=True, latency_ms=int(reply.latency_s * reply.profile.ttft_share * 1000),
        generation_ms=int(reply.latency_s * 1000), prompt_tokens=reply.prompt_tokens,
        completion_tokens=completion, cost=cost,
        finish_reason=reply.finish_reason if completion == reply.completion_tokens else "cancelled",
        native_finish_reason="cancelled", user=req.user,
        ready_at=time.monotonic() + options.generation_lag_s * options.time_scale, cancelled=True,
        cached_tokens=reply.cached_tokens, cache_discount=cache_discount(reply.model, reply.cached_tokens)))
    return cost


__all__ = ["CANCELLING_PROVIDERS", "billed_completion_tokens", "settle_abort", "stops_on_cancel"]
