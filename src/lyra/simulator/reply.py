"""One answer: its content, finish reason, latency, and what it costs once delivered."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from lyra.catalog.models import ModelInfo
from lyra.money import usd_to_nanos
from lyra.simulator.admission import Admitted
from lyra.simulator.chat_request import ChatRequest
from lyra.simulator.profiles import ModelProfile, profile_for
from lyra.simulator.prompt_cache import cache_discount
from lyra.simulator.responder import respond
from lyra.simulator.state import GenerationRecord, KeyAccount, SimulatorState
from lyra.simulator.tokens import count_text, truncate_to_tokens
from lyra.simulator.wire import call_cost, chunk_head, usage_body


@dataclass(slots=True)
class Reply:
    """One answer, computed before any byte is sent."""

    gen_id: str
    created: int
    served_id: str
    model: ModelInfo
    profile: ModelProfile
    content: str
    finish_reason: str
    native_finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float  # simulated, before time_scale
    delay_s: float  # what is actually slept
    cached_tokens: int = 0  # prompt tokens read from the provider's cache (prompt_cache.py)

    def head(self) -> dict[str, Any]:
        return chunk_head(self.gen_id, self.created, self.served_id, self.model.provider)


def make_reply(state: SimulatorState, req: ChatRequest, admitted: Admitted) -> Reply:
    """Generate the content, cap it at max_tokens, and draw the latency."""
    model = admitted.model
    profile = profile_for(model)
    content = respond(model, req.payload, state.options.seed)
    finish, native = "stop", profile.native_stop
    if req.max_tokens is not None and count_text(content) > req.max_tokens:
        content = truncate_to_tokens(content, req.max_tokens)
        finish, native = "length", profile.native_length
    low, high = profile.latency_s
    latency = state.rng.uniform(low, high)
    return Reply(
        gen_id=state.new_generation_id(),
        created=int(time.time()),
        served_id=admitted.served_id,
        model=model,
        profile=profile,
        content=content,
        finish_reason=finish,
        native_finish_reason=native,
        prompt_tokens=req.prompt_tokens,
        completion_tokens=count_text(content),
        latency_s=latency,
        delay_s=latency * state.options.time_scale,
        cached_tokens=0 if state.prompt_cache is None else state.prompt_cache.cached_tokens(
            model, list(req.payload.get("messages") or [])),
    )


def settle(
    state: SimulatorState, req: ChatRequest, reply: Reply, account: KeyAccount, *, streamed: bool
) -> dict[str, Any]:
    """Charge the key, count the cost, keep the record for /generation; return `usage`."""
    cost = call_cost(reply.model, reply.prompt_tokens, reply.completion_tokens, reply.cached_tokens)
    account.charge(cost)
    state.stats.total_cost_nanos += usd_to_nanos(cost)
    options = state.options
    state.record(
        GenerationRecord(
            id=reply.gen_id,
            model=reply.served_id,
            provider=reply.model.provider,
            created=float(reply.created),
            streamed=streamed,
            latency_ms=int(reply.latency_s * reply.profile.ttft_share * 1000),
            generation_ms=int(reply.latency_s * 1000),
            prompt_tokens=reply.prompt_tokens,
            completion_tokens=reply.completion_tokens,
            cost=cost,
            finish_reason=reply.finish_reason,
            native_finish_reason=reply.native_finish_reason,
            user=req.user,
            ready_at=time.monotonic() + options.generation_lag_s * options.time_scale,
            cached_tokens=reply.cached_tokens,
            cache_discount=cache_discount(reply.model, reply.cached_tokens),
        )
    )
    return usage_body(reply.model, reply.prompt_tokens, reply.completion_tokens, cost, reply.cached_tokens)
