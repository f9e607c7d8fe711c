"""Turns the router's attempts and outcomes into ledger rows."""

from __future__ import annotations

import time
from collections.abc import Callable

from lyra.errors import BudgetExceeded, LyraError, UpstreamError
from lyra.ledger import Ledger, LedgerRow, tags_text
from lyra.routing.policy import RoutePlan
from lyra.types import Attempt, Completion, CompletionRequest


class LedgerRecorder:
    """A router recorder writing one row per attempt and one per request."""

    def __init__(self, ledger: Ledger, *, tier_of: Callable[[RoutePlan, str], str] | None = None) -> None:
        self.ledger = ledger
        # The tier whose budget paid: after a step-down, not the plan's tier.
        self._tier_of = tier_of or (lambda plan, _model: plan.tier or "")

    def attempt(self, request_id: str, request: CompletionRequest, plan: RoutePlan, attempt: Attempt) -> None:
        self.ledger.write(LedgerRow(
            ts=time.time(), request_id=request_id, kind="attempt", task=plan.task,
            tier=self._tier_of(plan, attempt.model) or None,
            requested_model=request.model or attempt.model,
            served_model=attempt.model if attempt.outcome == "ok" else None,
            provider=attempt.provider, key_name=attempt.key_name, client=request.client,
            cost_nanos=attempt.cost_nanos, latency_ms=attempt.latency_s * 1000,
            status=attempt.outcome, error_kind=attempt.error_kind, http_status=attempt.status,
            attempt=attempt.number, generation_id=attempt.generation_id,
            prompt_tokens=attempt.prompt_tokens, completion_tokens=attempt.completion_tokens,
            cost_estimated=attempt.cost_estimated, simulated=self.ledger.simulated,
            end_user=request.user, tags=tags_text(request.tags),
            attempt_kind=None if attempt.kind == "primary" else attempt.kind,
        ))

    def completion(self, request_id: str, request: CompletionRequest, completion: Completion) -> None:
        self.ledger.write(LedgerRow(
            ts=time.time(), request_id=request_id, kind="request", task=completion.task,
            tier=completion.tier, requested_model=completion.requested_model,
            served_model=completion.model, provider=completion.provider, key_name=completion.key_name,
            client=request.client, prompt_tokens=completion.prompt_tokens,
            completion_tokens=completion.completion_tokens, cost_nanos=completion.cost_nanos,
            cost_estimated=completion.cost_estimated, latency_ms=completion.latency_s * 1000,
            status="ok", attempt=len(completion.attempts), cached=completion.cached,
            generation_id=completion.generation_id, simulated=self.ledger.simulated,
            end_user=request.user, tags=tags_text(request.tags),
            profile=completion.profile.get("fingerprint") if completion.profile else None,
        ))

    def failure(self, request_id: str, request: CompletionRequest, plan: RoutePlan, error: LyraError) -> None:
        self.ledger.write(LedgerRow(
            ts=time.time(), request_id=request_id, kind="request", task=plan.task, tier=plan.tier,
            requested_model=request.model or (plan.models[0].id if plan.models else None),
            client=request.client, status="error", error_kind=type(error).__name__,
            http_status=error.status if isinstance(error, UpstreamError) else None,
            simulated=self.ledger.simulated, end_user=request.user, tags=tags_text(request.tags),
            refused_cap=(error.cap or None) if isinstance(error, BudgetExceeded) else None,
        ))
