"""One answer: its content, finish reason, latency, and what it costs once delivered."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from lyra.catalog.models import ModelInfo
from lyra.money import usd_to_nanos
from lyra.simulator.admission import Admitted
from lyra.simulator.chat_request import ChatRequest
from lyra.simulator.choice_gen import SimChoice, make_choices
from lyra.simulator.profiles import ModelProfile, draw_latency, profile_for
from lyra.simulator.prompt_cache import cache_discount
from lyra.simulator.state import GenerationRecord, KeyAccount, SimulatorState
from lyra.simulator.wire import call_cost, chunk_head, message_choice, usage_body


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
    choices: list[SimChoice] = field(default_factory=list)  # every choice; `content` is the first's
    service_tier: str | None = None  # echoed from the request, as the served tier
    reasoning_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens read from the provider's cache (prompt_cache.py)

    def head(self) -> dict[str, Any]:
        head = chunk_head(self.gen_id, self.created, self.served_id, self.model.provider)
        if self.service_tier is not None:
            head["service_tier"] = self.service_tier
        return head

    def choice_bodies(self) -> list[dict[str, Any]]:
        """Every choice in the non-streamed shape."""
        return [message_choice(c.index, c.content, c.finish_reason, c.native_finish_reason,
                               tool_calls=c.tool_calls or None, reasoning=c.reasoning, logprobs=c.logprobs)
                for c in self.choices]


def make_reply(state: SimulatorState, req: ChatRequest, admitted: Admitted) -> Reply:
    """Generate the content, cap it at max_tokens, and draw the latency."""
    model = admitted.model
    profile = profile_for(model)
    choices = make_choices(model, profile, req, state.options.seed)
    first = choices[0]
    low, high = profile.latency_s
    latency = draw_latency(state.rng, low, high, state.options.latency)
    return Reply(
        gen_id=state.new_generation_id(),
        created=int(time.time()),
        served_id=admitted.served_id,
        model=model,
        profile=profile,
        content=first.content,
        finish_reason=first.finish_reason,
        native_finish_reason=first.native_finish_reason,
        prompt_tokens=req.prompt_tokens,
        completion_tokens=sum(c.completion_tokens for c in choices),
        latency_s=latency,
        delay_s=latency * state.options.time_scale,
        choices=choices,
        service_tier=req.options.service_tier,
        reasoning_tokens=sum(c.reasoning_tokens for c in choices),
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
    return usage_body(reply.model, reply.prompt_tokens, reply.completion_tokens, cost, reply.reasoning_tokens,
                      reply.cached_tokens)
