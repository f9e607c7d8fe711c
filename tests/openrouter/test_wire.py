"""The wire parser against the payload forms of the OpenRouter reference (sections 3-4)."""

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest

from lyra.errors import StreamInterrupted, UpstreamError
from lyra.openrouter.wire import (
    ChatRequest,
    SSEDecoder,
    decode_chat_response,
    decode_chunk,
    retry_after_seconds,
)

REAL_BODY = (
    b'{"id":"gen-1778184802-C1BFjtT7NZc9ozE18LYG","object":"chat.completion","created":1778184802,'
    b'"model":"z-ai/glm-4.5-air:free","provider":"Z.AI","system_fingerprint":null,'
    b'"choices":[{"index":0,"logprobs":null,"finish_reason":"stop","native_finish_reason":"stop",'
    b'"message":{"role":"assistant","content":"Hello","refusal":null,"reasoning":null}}],'
    b'"usage":{"prompt_tokens":22,"completion_tokens":17,"total_tokens":39,"cost":0.000123,"is_byok":false,'
    b'"prompt_tokens_details":{"cached_tokens":17,"cache_write_tokens":0,"audio_tokens":0,"video_tokens":0},'
    b'"cost_details":{"upstream_inference_cost":0},'
    b'"completion_tokens_details":{"reasoning_tokens":0,"image_tokens":0,"audio_tokens":0}}}'
)


def test_real_body_parses_with_served_model_provider_and_cost() -> None:
    result = decode_chat_response(200, {}, REAL_BODY)
    assert result.text == "Hello"
    assert result.model == "z-ai/glm-4.5-air:free"
    assert result.provider == "Z.AI"
    assert result.usage is not None
    assert result.usage.cost_usd == Decimal("0.000123")
    assert result.usage.cached_tokens == 17


def test_request_body_carries_fallbacks_schema_and_usage_include() -> None:
    body = orjson.loads(ChatRequest(
        model="a/b", messages=[{"role": "user", "content": "x"}], fallback_models=["c/d"],
        response_format={"type": "json_schema", "json_schema": {"name": "d", "schema": {}}},
        provider={"sort": "price"}, stream=True, max_tokens=5).encode())
    assert body["models"] == ["a/b", "c/d"]
    assert body["response_format"]["type"] == "json_schema"
    assert body["provider"] == {"sort": "price"}
    assert body["usage"] == {"include": True}
    assert body["stream"] is True
    assert "temperature" not in body


def test_error_in_200_top_level_form() -> None:
    body = orjson.dumps({"error": {"code": 429, "message": "Provider returned error",
                                   "metadata": {"raw": "error code: 1015", "provider_name": "Kluster"}}})
    with pytest.raises(UpstreamError) as info:
        decode_chat_response(200, {}, body)
    assert info.value.retryable and info.value.kind == "rate_limit"
    assert "1015" in str(info.value)
    assert info.value.provider == "Kluster"


def test_error_in_200_choice_form_with_string_code() -> None:
    body = orjson.dumps({"id": "gen-1", "choices": [{"index": 0, "finish_reason": "error",
                         "message": {"content": "part"},
                         "error": {"code": "server_error", "message": "boom"}}]})
    with pytest.raises(UpstreamError) as info:
        decode_chat_response(200, {}, body)
    assert info.value.retryable
    assert info.value.code == "server_error"


def test_raw_metadata_as_json_string_and_as_object() -> None:
    as_string = {"error": {"code": 502, "message": "Provider returned error",
                           "metadata": {"raw": '{"error": {"message": "upstream overloaded"}}',
                                        "provider_name": "OpenAI"}}}
    as_object = {"error": {"code": 502, "message": "Provider returned error",
                           "metadata": {"raw": {"error": {"message": "upstream overloaded"}}}}}
    for payload in (as_string, as_object):
        with pytest.raises(UpstreamError) as info:
            decode_chat_response(502, {}, orjson.dumps(payload))
        assert "upstream overloaded" in str(info.value)
        assert info.value.kind == "server" and info.value.retryable


@pytest.mark.parametrize(
    ("status", "message", "kind", "retryable"),
    [
        (401, "User not found.", "auth", False),
        (402, "This request requires more credits, or fewer max_tokens.", "payment", False),
        (403, "Key limit exceeded (daily limit). Manage it using https://openrouter.ai/settings/keys",
         "key_limit", False),
        (403, 'openai/gpt-5 requires moderation on OpenRouter.', "moderation", False),
        (400, "acme/fake-1.0 is not a valid model ID", "model_unavailable", False),
        (408, "timeout", "timeout", True),
        (429, "Rate limit exceeded: free-models-per-day. Add 10 credits", "rate_limit_daily", False),
        (429, "x is temporarily rate-limited upstream", "rate_limit", True),
        (503, "no provider", "server", True),
        (524, "Request timed out. Please try again later.", "timeout", True),
    ],
)
def test_status_classification(status: int, message: str, kind: str, retryable: bool) -> None:
    body = orjson.dumps({"error": {"code": status, "message": message}, "user_id": "user_x"})
    with pytest.raises(UpstreamError) as info:
        decode_chat_response(status, {}, body)
    assert (info.value.kind, info.value.retryable, info.value.status) == (kind, retryable, status)


def test_rate_limit_headers_and_retry_after() -> None:
    body = orjson.dumps({"error": {"code": 429, "message": "Rate limit exceeded: free-models-per-min.",
                                   "metadata": {"headers": {"X-RateLimit-Limit": "20",
                                                            "X-RateLimit-Remaining": "0",
                                                            "X-RateLimit-Reset": "1893456000000"}}}})
    with pytest.raises(UpstreamError) as info:
        decode_chat_response(429, {"Retry-After": "3"}, body)
    assert info.value.retry_after == 3.0
    assert info.value.rate_limit_reset == 1893456000.0
    assert retry_after_seconds({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0


def test_availability_block_marks_model_unavailable() -> None:
    body = orjson.dumps({"error": {"code": 404, "message": "gone", "availability": {
        "code": "model_deprecated", "retryable": False, "requested_models": ["x/y"]}}})
    with pytest.raises(UpstreamError) as info:
        decode_chat_response(404, {}, body)
    assert info.value.kind == "model_unavailable"


def test_non_json_bodies_are_malformed_or_status_errors() -> None:
    with pytest.raises(UpstreamError) as info:
        decode_chat_response(200, {}, b'{"id": "gen-1", "choi')
    assert info.value.kind == "malformed" and info.value.retryable
    with pytest.raises(UpstreamError) as info:
        decode_chat_response(502, {}, b"<html>bad gateway</html>")
    assert info.value.kind == "server" and info.value.status == 502


def test_sse_decoder_skips_comments_and_handles_split_frames() -> None:
    stream = (b": OPENROUTER PROCESSING\n\n"
              b'data: {"id":"g","choices":[{"index":0,"delta":{"content":"Hel"},'
              b'"finish_reason":null}]}\n\n'
              b'data: {"id":"g","choices":[{"index":0,"delta":{"content":"lo"},'
              b'"finish_reason":"stop"}]}\r\n\r\n'
              b'data: {"id":"g","choices":[],'
              b'"usage":{"prompt_tokens":3,"completion_tokens":2,"cost":0.5}}\n\n'
              b"data: [DONE]\n\n")
    decoder, events = SSEDecoder(), []
    for i in range(0, len(stream), 7):
        events += decoder.feed(stream[i:i + 7])
    deltas = [decode_chunk(e) for e in events]
    assert deltas[-1] is None
    texts = [d.text for d in deltas if d is not None]
    assert "".join(texts) == "Hello"
    usage = deltas[2].usage if deltas[2] else None
    assert usage is not None and usage.cost_usd == Decimal("0.5")


def test_final_usage_in_empty_delta_form() -> None:
    delta = decode_chunk('{"id":"g","choices":[{"index":0,"delta":{"role":"assistant","content":""},'
                         '"finish_reason":null}],"usage":{"prompt_tokens":42,"completion_tokens":2,'
                         '"total_tokens":44,"cost":0}}')
    assert delta is not None and delta.usage is not None
    assert delta.usage.total_tokens == 44 and delta.usage.cost_usd == Decimal("0")


def test_midstream_error_event_raises_stream_interrupted() -> None:
    with pytest.raises(StreamInterrupted) as info:
        decode_chunk('{"id":"gen-abc","object":"chat.completion.chunk","model":"openai/gpt-4o",'
                     '"provider":"OpenAI","error":{"code":429,"message":"Rate limit exceeded",'
                     '"metadata":{"error_type":"rate_limit_exceeded"}},'
                     '"choices":[{"index":0,"delta":{"content":""},"finish_reason":"error"}]}')
    assert info.value.kind == "rate_limit"
    assert info.value.error_type == "rate_limit_exceeded"
