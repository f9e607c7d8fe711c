"""Worst-case bounds: text by UTF-8 bytes in any script, media priced or refused, every extra counted."""

from __future__ import annotations

import dataclasses
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lyra import BudgetExceeded, Lyra
from lyra.catalog.estimate import PromptShape, measure_prompt, text_bytes, worst_case
from lyra.catalog.models import ModelInfo, PriceOverride, load_catalog, model_from_listing
from lyra.errors import ConfigError, CostUnbounded
from lyra.money import token_cost_nanos, usd_to_nanos
from lyra.simulator import Simulator
from support import budget_config_text, engine_env

CATALOG = load_catalog()
TEXT_ONLY = CATALOG.get("deepseek/deepseek-chat")
GPT_4O = CATALOG.get("openai/gpt-4o")
IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}


def model(**fields: Any) -> ModelInfo:
    base = ModelInfo(id="test/model", tier="fast", prompt_per_m=Decimal("1"), completion_per_m=Decimal("2"),
                     context=100_000, max_output=4096)
    return dataclasses.replace(base, **fields)


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


def bound(*messages: dict[str, Any], **kwargs: Any) -> int:
    return measure_prompt(list(messages), **kwargs).text_tokens


# --- text ------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    "比特币价格在过去二十四小时内上涨了百分之五。" * 50,  # CJK: 3 bytes a character
    "ビットコインの価格が急騰した。" * 50,
    "🚀📈💰🔥" * 100,  # emoji: 4 bytes each
    "👨‍👩‍👧‍👦 family",  # a ZWJ sequence
    "BTC 📈 +5% 比特币 Биткоин بيتكوين बिटकॉइन" * 20,  # mixed scripts
])
def test_text_in_any_script_is_bounded_by_its_utf8_bytes(text: str) -> None:
    assert text_bytes(text) >= len(text.encode())
    assert bound(user(text)) >= len(text.encode())
    assert len(text) // 3 + 7 < len(text.encode())  # the old chars/3 estimate fell short here


def test_text_that_unicode_normalisation_lengthens_is_bounded_by_its_longest_form() -> None:
    text = "\ufdfa" * 10  # NFKD spells it out: 3 bytes become 33
    assert text_bytes(text) >= 33 * 10


def test_content_parts_message_fields_and_non_string_content_are_counted() -> None:
    plain = bound(user("a"))
    assert bound(user([{"type": "text", "text": "a" * 1000}])) >= 1000
    named = {"role": "assistant", "content": None, "name": "n" * 500,
             "tool_calls": [{"id": "call_1", "type": "function",
                             "function": {"name": "quote", "arguments": '{"symbol": "' + "B" * 800 + '"}'}}]}
    assert bound(named) >= plain + 500 + 800
    reply = {"role": "tool", "tool_call_id": "c" * 300, "content": "ok"}
    assert bound(reply) >= plain + 300
    assert bound(user({"odd": "x" * 700})) >= 700  # not a string nor a list: its JSON is counted


unicode_text = st.text(st.characters(codec="utf-8"), max_size=200)
part = st.one_of(unicode_text, st.builds(lambda t: {"type": "text", "text": t}, unicode_text))
content = st.one_of(unicode_text, st.lists(part, max_size=4))
message = st.builds(lambda role, c: {"role": role, "content": c},
                    st.sampled_from(["system", "user", "assistant"]), content)


def content_bytes(messages: list[dict[str, Any]]) -> int:
    total = 0
    for m in messages:
        c = m["content"]
        pieces = [c] if isinstance(c, str) else [p if isinstance(p, str) else p["text"] for p in c]
        total += sum(len(p.encode()) for p in pieces)
    return total


@settings(max_examples=300, deadline=None)
@given(st.lists(message, max_size=6))
def test_bound_is_at_least_the_utf8_bytes_of_all_content(messages: list[dict[str, Any]]) -> None:
    assert measure_prompt(messages).text_tokens >= content_bytes(messages)


@settings(max_examples=300, deadline=None)
@given(st.lists(message, min_size=1, max_size=5), unicode_text, message)
def test_adding_content_never_lowers_the_bound(messages: list[dict[str, Any]], more: str,
                                               extra: dict[str, Any]) -> None:
    before = measure_prompt(messages).text_tokens
    assert measure_prompt([*messages, extra]).text_tokens >= before
    last = dict(messages[-1])
    c = last["content"]
    last["content"] = c + more if isinstance(c, str) else [*c, {"type": "text", "text": more}]
    assert measure_prompt([*messages[:-1], last]).text_tokens >= before


# --- tools, schemas, reasoning, fees ----------------------------------------------------------


def test_tools_and_their_schema_are_counted() -> None:
    tool = {"type": "function", "function": {
        "name": "place_order", "description": "Place a limit order. " * 40,
        "parameters": {"type": "object", "properties": {"side": {"type": "string", "enum": ["buy", "sell"]}}}}}
    without = bound(user("hi"))
    one = bound(user("hi"), tools=[tool])
    assert one >= without + len(str(tool).encode())
    assert bound(user("hi"), tools=[tool, tool]) > one


def test_a_non_ascii_structure_is_bounded_by_its_escaped_rendering() -> None:
    tool = {"type": "function", "function": {"name": "報告", "description": "市场风险评估 🚀" * 50, "parameters": {}}}
    escaped = len(json.dumps(tool, indent=4))  # \\uXXXX for each non-ASCII code unit
    assert bound(user("hi"), tools=[tool]) >= bound(user("hi")) + escaped


def test_response_format_json_schema_is_counted() -> None:
    schema = {"type": "json_schema", "json_schema": {"name": "decision", "strict": True, "schema": {
        "type": "object", "properties": {f"field_{i}": {"type": "number", "description": "说明" * 20}
                                         for i in range(20)}}}}
    assert bound(user("hi"), response_format=schema) >= bound(user("hi")) + len(str(schema).encode())


def test_reasoning_max_tokens_is_added_and_priced_at_the_higher_reasoning_price() -> None:
    prompt = PromptShape(text_tokens=1000)
    plain = worst_case(model(), prompt, max_tokens=500)
    reasoning = worst_case(model(), prompt, max_tokens=500, reasoning_max_tokens=2000)
    assert reasoning.completion_tokens == 2500
    assert reasoning.cost_nanos == plain.cost_nanos + token_cost_nanos(2000, Decimal("2"))
    dearer = worst_case(model(reasoning_per_m=Decimal("8")), prompt, max_tokens=500, reasoning_max_tokens=2000)
    assert dearer.cost_nanos == token_cost_nanos(1000, Decimal("1")) + token_cost_nanos(2500, Decimal("8"))


def test_request_fee_is_added_once() -> None:
    prompt = PromptShape(text_tokens=1000)
    plain = worst_case(model(), prompt, max_tokens=100).cost_nanos
    fee = worst_case(model(request_usd=Decimal("0.005")), prompt, max_tokens=100).cost_nanos
    assert fee == plain + usd_to_nanos("0.005")


def test_a_higher_price_above_a_prompt_size_applies_once_the_bound_reaches_it() -> None:
    tiered = model(price_overrides=(PriceOverride(2000, Decimal("2"), Decimal("4")),))
    assert worst_case(tiered, PromptShape(text_tokens=1999), max_tokens=0).cost_nanos == 1999 * 1000
    assert worst_case(tiered, PromptShape(text_tokens=2000), max_tokens=10).cost_nanos == 2000 * 2000 + 10 * 4000


def test_a_cache_write_adds_its_price_to_the_prompt() -> None:
    cached = measure_prompt([user([{"type": "text", "text": "x" * 100, "cache_control": {"type": "ephemeral"}}])])
    assert cached.cache_control
    m = model(cache_write_per_m=Decimal("1.25"))
    assert worst_case(m, cached, max_tokens=0).cost_nanos == token_cost_nanos(cached.text_tokens, Decimal("2.25"))


def test_the_cost_is_rounded_up_to_the_nano_dollar() -> None:
    cheap = model(prompt_per_m=Decimal("0.0001"), completion_per_m=Decimal("0"))
    assert worst_case(cheap, PromptShape(text_tokens=1), max_tokens=0).cost_nanos == 1


# --- images, audio, files, unknown parts ------------------------------------------------------


def test_images_are_priced_per_image_on_a_model_with_an_image_price() -> None:
    prompt = measure_prompt([user([{"type": "text", "text": "chart"}, IMAGE, IMAGE])])
    assert prompt.images == 2
    priced = model(image_usd=Decimal("0.001"), input_modalities=("image", "text"))
    worst = worst_case(priced, prompt, max_tokens=100)
    assert worst.prompt_tokens == prompt.text_tokens
    assert worst.cost_nanos == worst_case(model(), PromptShape(prompt.text_tokens), max_tokens=100).cost_nanos \
        + 2 * 1_000_000


def test_images_are_priced_as_tokens_on_a_model_with_a_per_image_token_bound() -> None:
    prompt = measure_prompt([user([IMAGE, {"type": "image_url", "image_url": {"url": "https://example.com/c.png"}}])])
    assert GPT_4O.image_tokens == 1445
    worst = worst_case(GPT_4O, prompt, max_tokens=100)
    assert worst.prompt_tokens == prompt.text_tokens + 2 * 1445
    assert worst.cost_nanos == GPT_4O.cost_nanos(worst.prompt_tokens, 100, round_up=True)


def test_an_image_on_a_text_only_model_is_refused_in_one_line_naming_the_part_and_the_model() -> None:
    prompt = measure_prompt([user([{"type": "text", "text": "chart"}, IMAGE])])
    with pytest.raises(CostUnbounded) as info:
        worst_case(TEXT_ONLY, prompt, max_tokens=100)
    message = str(info.value)
    assert "\n" not in message
    assert "image part" in message and TEXT_ONLY.id in message and "does not take images" in message
    assert isinstance(info.value, BudgetExceeded)


def test_an_image_on_a_model_without_a_known_bound_is_refused() -> None:
    with pytest.raises(CostUnbounded, match=r"image part on openai/gpt-5\.5: the catalogue has no image price"):
        worst_case(CATALOG.get("openai/gpt-5.5"), measure_prompt([user([IMAGE])]), max_tokens=10)


@pytest.mark.parametrize(("part", "named"), [
    ({"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}, "audio part"),
    ({"type": "file", "file": {"filename": "report.pdf", "file_data": "data:application/pdf;base64,JVBERi0="}},
     "file part"),
])
def test_audio_and_file_parts_without_a_bound_are_refused(part: dict[str, Any], named: str) -> None:
    prompt = measure_prompt([user([part])])
    for m in (CATALOG.get("google/gemini-2.5-pro"), TEXT_ONLY):
        with pytest.raises(CostUnbounded, match=f"1 {named} on {m.id}"):
            worst_case(m, prompt, max_tokens=10)


def test_audio_and_file_parts_with_a_bound_are_priced() -> None:
    parts = [{"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}, {"type": "file", "file": {}}]
    m = model(input_modalities=("audio", "file", "text"), audio_tokens=1000, file_tokens=5000,
              audio_per_m=Decimal("3"))
    prompt = measure_prompt([user(parts)])
    worst = worst_case(m, prompt, max_tokens=0)
    assert worst.prompt_tokens == prompt.text_tokens + 6000
    assert worst.cost_nanos == token_cost_nanos(prompt.text_tokens + 5000, Decimal("1")) + 1000 * 3000


@pytest.mark.parametrize("odd", [
    {"type": "video_url", "video_url": {"url": "https://example.com/v.mp4"}},
    {"kind": "mystery"},
    42,
])
def test_an_unknown_part_is_refused_on_every_model(odd: Any) -> None:
    prompt = measure_prompt([user([{"type": "text", "text": "hi"}, odd])])
    assert prompt.unpriced
    for m in (GPT_4O, TEXT_ONLY):
        with pytest.raises(CostUnbounded) as info:
            worst_case(m, prompt, max_tokens=10)
        assert "content part" in str(info.value) and m.id in str(info.value) and "\n" not in str(info.value)


def test_a_value_that_is_not_json_is_refused() -> None:
    prompt = measure_prompt([{"role": "user", "content": "hi", "extra": object()}])
    with pytest.raises(CostUnbounded, match="value of type object in message 0"):
        worst_case(GPT_4O, prompt, max_tokens=10)


# --- the catalogue ------------------------------------------------------------------------------


def test_the_curated_catalogue_carries_modalities_bounds_and_overrides() -> None:
    assert TEXT_ONLY.input_modalities == ("text",)
    assert CATALOG.get("google/gemini-2.5-pro").reasoning_per_m == Decimal("10")
    assert CATALOG.get("openai/gpt-5.5").price_overrides[0] == PriceOverride(272000, Decimal("10"), Decimal("45"))
    assert all(m.image_tokens is None or "image" in m.input_modalities for m in CATALOG)


def test_a_live_listing_entry_fills_the_new_fields() -> None:
    entry = {"id": "vendor/vision", "context_length": 8192,
             "architecture": {"input_modalities": ["text", "image", "file"]},
             "pricing": {"prompt": "0.000001", "completion": "0.000002", "request": "0.0002", "image": "0.0015",
                         "internal_reasoning": "0.000004", "input_cache_write": "0.00000125",
                         "overrides": [{"min_prompt_tokens": 128000, "prompt": "0.000002"}]}}
    m = model_from_listing(entry)
    assert m is not None
    assert (m.request_usd, m.image_usd, m.reasoning_per_m, m.cache_write_per_m) == (
        Decimal("0.0002"), Decimal("0.0015"), Decimal("4"), Decimal("1.25"))
    assert m.input_modalities == ("file", "image", "text")
    assert m.price_overrides == (PriceOverride(128000, Decimal("2"), Decimal("2")),)


def test_a_listing_image_price_equal_to_the_token_price_or_zero_is_not_a_price_per_image() -> None:
    gemini_like = {"id": "g/x", "pricing": {"prompt": "0.00000125", "completion": "0.00001", "image": "0.00000125"},
                   "architecture": {"input_modalities": ["text", "image"]}}
    mid_2025 = {"id": "o/x", "pricing": {"prompt": "0.00000015", "completion": "0.0000006", "image": "0",
                                         "request": "0"}}
    for entry in (gemini_like, mid_2025):
        m = model_from_listing(entry)
        assert m is not None and m.image_usd is None and m.request_usd is None
    unknown = model_from_listing(gemini_like)
    assert unknown is not None
    with pytest.raises(CostUnbounded):
        worst_case(unknown, measure_prompt([user([IMAGE])]), max_tokens=1)


def test_a_catalogue_file_with_a_bad_modality_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "catalog.toml"
    path.write_text('[[model]]\nid = "a/b"\ntier = "fast"\nprompt_per_m = "1"\ncompletion_per_m = "1"\n'
                    'context = 1000\nmax_output = 100\ninput_modalities = ["smell"]\n')
    with pytest.raises(ConfigError, match="input_modalities"):
        load_catalog(path)


# --- through the engine ---------------------------------------------------------------------------


async def test_an_image_for_a_text_only_model_is_refused_before_any_upstream_call(
    sim: Simulator, tmp_path: Path
) -> None:
    path = tmp_path / "lyra.toml"
    path.write_text(budget_config_text(daily=200))
    environ = engine_env(sim) | {"LYRA_LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.db'}"}
    async with Lyra.from_config(path, environ=environ) as lyra:
        with pytest.raises(CostUnbounded, match="image part on deepseek/deepseek-chat"):
            await lyra.complete(model="deepseek/deepseek-chat", messages=[user([IMAGE])], max_tokens=10)
    assert sim.stats.calls == 0
