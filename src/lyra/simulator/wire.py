"""OpenRouter's success payloads: completions, stream chunks, /models, /key and /generation."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from lyra.catalog.models import Catalog, ModelInfo
from lyra.simulator.state import GenerationRecord, KeyAccount, mask_token

_MILLION = Decimal(1_000_000)
_NANO = Decimal("1e-9")
_SUPPORTED_PARAMETERS = [
    "frequency_penalty", "include_reasoning", "logit_bias", "max_tokens", "presence_penalty",
    "reasoning", "response_format", "seed", "stop", "structured_outputs", "temperature",
    "tool_choice", "tools", "top_k", "top_p",
]
_TOKENIZERS = {
    "anthropic": "Claude", "openai": "GPT", "google": "Gemini", "meta-llama": "Llama3",
    "qwen": "Qwen", "deepseek": "DeepSeek", "x-ai": "Grok", "microsoft": "Other",
}
_MODERATED_AUTHORS = frozenset({"openai", "anthropic"})
_AUTHOR_NAMES = {
    "openai": "OpenAI", "anthropic": "Anthropic", "google": "Google", "meta-llama": "Meta",
    "x-ai": "xAI", "deepseek": "DeepSeek", "qwen": "Qwen", "microsoft": "Microsoft",
}


def call_cost(model: ModelInfo, prompt_tokens: int, completion_tokens: int,
              cached_tokens: int = 0) -> Decimal:
    """The USD cost of a call at the catalogue's prices, billed to the nano-dollar as credits are.

    `cached_tokens` of the prompt were read from the provider's cache, at its read price.
    """
    exact = (_prompt_cost(model, prompt_tokens, cached_tokens)
             + model.completion_per_m * completion_tokens / _MILLION)
    return exact.quantize(_NANO, rounding=ROUND_HALF_EVEN)


def _prompt_cost(model: ModelInfo, prompt_tokens: int, cached_tokens: int) -> Decimal:
    read = model.cache_read_per_m if model.cache_read_per_m is not None else model.prompt_per_m
    return (model.prompt_per_m * (prompt_tokens - cached_tokens) + read * cached_tokens) / _MILLION


def usage_body(
    model: ModelInfo, prompt_tokens: int, completion_tokens: int, cost: Decimal, reasoning_tokens: int = 0,
    cached_tokens: int = 0,
) -> dict[str, Any]:
    """The `usage` object with cost and its details, as OpenRouter returns it in 2026."""
    prompt_cost = _prompt_cost(model, prompt_tokens, cached_tokens)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "cost": float(cost),
        "is_byok": False,
        "prompt_tokens_details": {
            "cached_tokens": cached_tokens, "cache_write_tokens": 0, "audio_tokens": 0, "video_tokens": 0,
        },
        "cost_details": {
            "upstream_inference_cost": None,
            "upstream_inference_prompt_cost": float(prompt_cost),
            "upstream_inference_completions_cost": float(cost - prompt_cost),
        },
        "completion_tokens_details": {"reasoning_tokens": reasoning_tokens, "image_tokens": 0,
                                      "audio_tokens": 0},
    }


def completion_body(
    *,
    gen_id: str,
    created: int,
    model_id: str,
    provider: str,
    content: str,
    finish_reason: str,
    native_finish_reason: str,
    usage: dict[str, Any],
    error: dict[str, Any] | None = None,
    choices: list[dict[str, Any]] | None = None,
    service_tier: str | None = None,
) -> dict[str, Any]:
    """A non-streaming chat completion (reference §3.1); `choices` (message_choice) replace the one."""
    choice = message_choice(0, content, finish_reason, native_finish_reason)
    if error is not None:
        choice["error"] = error
    body = {
        "id": gen_id,
        "object": "chat.completion",
        "created": created,
        "model": model_id,
        "provider": provider,
        "system_fingerprint": None,
        "choices": choices if choices is not None else [choice],
        "usage": usage,
    }
    if service_tier is not None:
        body["service_tier"] = service_tier
    return body


def message_choice(
    index: int,
    content: str,
    finish_reason: str,
    native_finish_reason: str,
    *,
    tool_calls: list[dict[str, Any]] | None = None,
    reasoning: str | None = None,
    logprobs: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """One choice of a completion: content, or null content beside tool calls (OpenAI's shape)."""
    message: dict[str, Any] = {"role": "assistant", "content": None if tool_calls else content,
                               "refusal": None, "reasoning": reasoning}
    if tool_calls:
        message["tool_calls"] = tool_calls
    if reasoning is not None:
        message["reasoning_details"] = [{"type": "reasoning.text", "text": reasoning, "format": "unknown",
                                         "index": 0}]
    return {
        "index": index,
        "logprobs": None if logprobs is None else {"content": logprobs, "refusal": None},
        "finish_reason": finish_reason,
        "native_finish_reason": native_finish_reason,
        "message": message,
    }


def chunk(
    head: dict[str, Any],
    content: str,
    finish_reason: str | None = None,
    native_finish_reason: str | None = None,
) -> dict[str, Any]:
    """One `chat.completion.chunk`; `head` carries id, provider, model, object and created."""
    return {
        **head,
        "choices": [
            {
                "index": 0,
                "delta": {"role": "assistant", "content": content},
                "finish_reason": finish_reason,
                "native_finish_reason": native_finish_reason,
                "logprobs": None,
            }
        ],
    }


def choice_chunk(
    head: dict[str, Any],
    index: int,
    delta: dict[str, Any],
    finish_reason: str | None = None,
    native_finish_reason: str | None = None,
    logprobs: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A chunk of choice `index` carrying any delta: reasoning, tool-call fragments, content."""
    return {
        **head,
        "choices": [
            {
                "index": index,
                "delta": {"role": "assistant", **delta},
                "finish_reason": finish_reason,
                "native_finish_reason": native_finish_reason,
                "logprobs": None if logprobs is None else {"content": logprobs, "refusal": None},
            }
        ],
    }


def usage_chunk(head: dict[str, Any], usage: dict[str, Any], form: str) -> dict[str, Any]:
    """The final chunk that carries usage, in the documented or in the observed form (§3.2)."""
    if form == "empty_choices":
        return {**head, "choices": [], "usage": usage}
    return {**chunk(head, ""), "usage": usage}


def chunk_head(gen_id: str, created: int, model_id: str, provider: str) -> dict[str, Any]:
    return {
        "id": gen_id,
        "provider": provider,
        "model": model_id,
        "object": "chat.completion.chunk",
        "created": created,
    }


def _per_token(per_million: Decimal) -> str:
    value = (per_million / _MILLION).normalize()
    return format(value, "f")


def _display_name(model: ModelInfo) -> str:
    author, _, slug = model.id.partition("/")
    return f"{_AUTHOR_NAMES.get(author, author.replace('-', ' ').title())}: {slug}"


def model_entry(model: ModelInfo) -> dict[str, Any]:
    """One entry of GET /models (reference §1.1)."""
    author = model.id.split("/", 1)[0]
    return {
        "id": model.id,
        "canonical_slug": model.id,
        "hugging_face_id": None,
        "name": _display_name(model),
        "created": 1_700_000_000,
        "description": f"{_display_name(model)} via {model.provider}, from the Lyra simulator.",
        "context_length": model.context,
        "architecture": {
            "modality": "text->text",
            "input_modalities": ["text"],
            "output_modalities": ["text"],
            "tokenizer": _TOKENIZERS.get(author, "Other"),
            "instruct_type": None,
        },
        "pricing": {
            "prompt": _per_token(model.prompt_per_m),
            "completion": _per_token(model.completion_per_m),
            "request": "0",
            "image": "0",
            "web_search": "0",
            "internal_reasoning": "0",
        },
        "top_provider": {
            "context_length": model.context,
            "max_completion_tokens": model.max_output,
            "is_moderated": author in _MODERATED_AUTHORS,
        },
        "per_request_limits": None,
        "supported_parameters": _SUPPORTED_PARAMETERS,
        "default_parameters": {},
        "knowledge_cutoff": model.knowledge_cutoff,
        "expiration_date": model.expiration_date,
        "links": {"details": f"/api/v1/models/{model.id}/endpoints"},
    }


def models_listing(catalog: Catalog) -> dict[str, Any]:
    """GET /models: the catalogue's models that are still served."""
    data = [model_entry(m) for m in catalog if not m.retired]
    return {"data": data, "total_count": len(data), "links": {"next": None}}


def key_data(token: str, account: KeyAccount) -> dict[str, Any]:
    """GET /key: the 2026 fields (reference §1.2); the label is masked."""
    remaining = account.remaining_usd()
    limit = account.limit_usd
    usage = float(account.usage_usd)
    return {
        "data": {
            "label": mask_token(token),
            "limit": None if limit is None else float(limit),
            "limit_reset": None if limit is None else "daily",
            "limit_remaining": None if remaining is None else float(remaining),
            "include_byok_in_limit": False,
            "usage": usage,
            "usage_daily": float(account.daily_usd),
            "usage_weekly": usage,
            "usage_monthly": usage,
            "byok_usage": 0,
            "byok_usage_daily": 0,
            "byok_usage_weekly": 0,
            "byok_usage_monthly": 0,
            "is_free_tier": False,
            "is_management_key": False,
            "is_provisioning_key": False,
            "expires_at": None,
            "creator_user_id": "user_sim",
            "rate_limit": {
                "requests": -1,
                "interval": "10s",
                "note": "This field is deprecated and safe to ignore.",
            },
        }
    }


def generation_data(record: GenerationRecord) -> dict[str, Any]:
    """GET /generation: the stats of one finished completion (reference §1.3)."""
    cost = float(record.cost)
    return {
        "data": {
            "id": record.id,
            "upstream_id": "chatcmpl-" + record.id.rsplit("-", 1)[-1],
            "request_id": "req-" + record.id.rsplit("-", 1)[-1],
            "total_cost": cost,
            "cache_discount": None if record.cache_discount is None else float(record.cache_discount),
            "upstream_inference_cost": None,
            "created_at": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "model": record.model,
            "app_id": None,
            "streamed": record.streamed,
            "cancelled": record.cancelled,
            "provider_name": record.provider,
            "latency": record.latency_ms,
            "moderation_latency": None,
            "generation_time": record.generation_ms,
            "finish_reason": record.finish_reason,
            "native_finish_reason": record.native_finish_reason,
            "tokens_prompt": record.prompt_tokens,
            "tokens_completion": record.completion_tokens,
            "native_tokens_prompt": record.prompt_tokens,
            "native_tokens_completion": record.completion_tokens,
            "native_tokens_reasoning": 0,
            "native_tokens_cached": record.cached_tokens,
            "native_tokens_completion_images": 0,
            "num_media_prompt": None,
            "num_media_completion": None,
            "num_input_audio_prompt": None,
            "num_search_results": None,
            "num_fetches": None,
            "web_search_engine": None,
            "origin": "",
            "usage": cost,
            "is_byok": False,
            "router": None,
            "api_type": "completions",
            "external_user": record.user,
            "provider_responses": [],
        }
    }
