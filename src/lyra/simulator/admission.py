"""Which model serves a request: model checks, faults, free-model and credit limits, fallback."""

from __future__ import annotations

import time
from dataclasses import dataclass
from decimal import Decimal

from lyra.catalog.models import ModelInfo
from lyra.simulator import error_bodies as errors
from lyra.simulator.chat_request import ChatRequest
from lyra.simulator.error_bodies import SimError
from lyra.simulator.faults import FiredFault
from lyra.simulator.provider_prefs import check_provider, over_max_price, price_filtered
from lyra.simulator.state import KeyAccount, SimulatorState

FREE_PER_MIN = 20
_MILLION = Decimal(1_000_000)


@dataclass(slots=True)
class Admitted:
    """The model that will answer, and the fault (if any) that shapes how."""

    served_id: str
    model: ModelInfo
    fired: FiredFault | None


def admit(
    state: SimulatorState, token: str, account: KeyAccount, req: ChatRequest
) -> Admitted | SimError:
    """Walk the candidates until one can serve; return the last error if none can."""
    last: SimError = errors.bad_request("No model could serve the request")
    provider = req.payload.get("provider")
    malformed = check_provider(provider)
    if malformed is not None:
        return malformed
    for requested in req.candidates:
        state.stats.by_model[requested] += 1
        model = state.catalog.find(requested)
        if model is None:
            last = errors.unknown_model(requested)
            continue
        if model.retired:
            last = errors.retired_model(requested, model.successor)
            continue
        if over_max_price(model, provider):
            last = price_filtered(requested)
            continue
        fired = state.faults.draw(requested, model.id, token)
        if fired is not None:
            error = _fault_error(fired, requested, model, req, account)
            if error is None:
                return Admitted(requested, model, fired)
            if error.fallback:
                last = error
                continue
            return error
        if req.prompt_tokens + (req.max_tokens or 0) > model.context:
            last = errors.context_exceeded(model.context, req.prompt_tokens, req.max_tokens or 0)
            continue
        if model.is_free:
            limited = _take_free_slot(account)
            if limited is not None:
                return limited
        short = _preflight(account, model, req)
        if short is not None:
            return short
        return Admitted(requested, model, None)
    return last


def _fault_error(
    fired: FiredFault, requested: str, model: ModelInfo, req: ChatRequest, account: KeyAccount
) -> SimError | None:
    """The error answer a fault gives before any content, or None if it acts later."""
    fault = fired.fault
    kind = fault.kind
    if kind == "rate_limit":
        return errors.rate_limited(requested, model.provider, fault.retry_after_s)
    if kind == "server_error":
        return errors.server_error(
            fault.status or 502, requested, model.provider, fired.ordinal, fault.retry_after_s
        )
    if kind == "revoked_key":
        return errors.user_not_found()
    if kind == "key_limit":
        # Every other firing in the 2026 form, with limit_source and resets_at in the metadata.
        return errors.key_limit_budget(10.0, 10.0004) if fired.ordinal % 2 else errors.key_limit()
    if kind == "free_per_day":
        return errors.free_per_day()
    budget = _budget_error(fired, requested, model)
    if budget is not None:
        return budget
    if kind == "payment_required":
        wanted = req.max_tokens or model.max_output
        remaining = account.remaining_usd()
        if remaining is None:
            return errors.payment_required(wanted, wanted // 4)
        return errors.payment_required(wanted, _affordable(remaining, model, req, wanted))
    return None


def _budget_error(fired: FiredFault, requested: str, model: ModelInfo) -> SimError | None:
    """OpenRouter's budget and availability errors, and the 2026 form of the key limit."""
    fault = fired.fault
    kind = fault.kind
    if kind == "in_flight_budget":
        return errors.in_flight_budget_exhausted(1.0 if fault.retry_after_s is None else fault.retry_after_s)
    if kind == "weight_exceeds_budget":
        return errors.weight_exceeds_budget()
    if kind in ("guardrail_budget", "workspace_budget"):
        source = f"openrouter_{kind}"
        resets = fault.resets_at if fault.resets_at is not None else errors.interval_reset(fault.interval)
        return errors.budget_limit(source, interval=fault.interval, limit_usd=50.0, spend_usd=50.0021,
                                   resets_at=resets)
    if kind == "unavailable":
        return errors.unavailable(requested, model.provider, fault.code or "model_deprecated",
                                  status=fault.status, retryable=fault.retryable,
                                  retry_after_s=fault.retry_after_s, fallback_models=fault.fallback_models)
    return None


def _take_free_slot(account: KeyAccount) -> SimError | None:
    """Count a `:free` call against the token's 20-a-minute window, or refuse it."""
    now = time.monotonic()
    window = account.free_window
    while window and now - window[0] >= 60.0:
        window.popleft()
    if len(window) >= FREE_PER_MIN:
        return errors.free_per_min(errors.reset_epoch_ms(60.0 - (now - window[0])))
    window.append(now)
    return None


def _preflight(account: KeyAccount, model: ModelInfo, req: ChatRequest) -> SimError | None:
    """402 when the worst case of this call cannot fit in what the key has left."""
    remaining = account.remaining_usd()
    if remaining is None:
        return None
    wanted = req.max_tokens or model.max_output
    # USD per million tokens is nano-dollars per token.
    worst = model.prompt_per_m * req.prompt_tokens + model.completion_per_m * wanted * req.options.n
    if worst <= remaining * _MILLION:
        return None
    return errors.payment_required(wanted, _affordable(remaining, model, req, wanted))


def _affordable(remaining_usd: Decimal, model: ModelInfo, req: ChatRequest, wanted: int) -> int:
    left = remaining_usd * _MILLION - model.prompt_per_m * req.prompt_tokens
    if model.completion_per_m <= 0:
        return wanted if left >= 0 else 0
    return max(0, min(wanted, int(left / model.completion_per_m)))
