"""Upper bounds on a call's tokens and cost, for reserving budget before the call is made.

The budget reserves the worst case of every attempt, so each number here must be a true upper
bound for every input, never an average:

- text in any script is bounded by its UTF-8 bytes: a byte-level BPE or a byte-fallback
  tokenizer never makes more tokens than bytes. Tokenizers that normalise Unicode first can
  lengthen text (NFKD turns U+FDFA, 3 bytes, into 33), so the bound takes the longest of the
  text and its NFD and NFKD forms (NFC and NFKC never exceed those two);
- structured values (tools, a JSON schema, `tool_calls`) are bounded as if a provider rendered
  them in indented JSON or YAML with every non-ASCII character escaped;
- chat templates add tokens per request, per message and per part; tool use and schemas add a
  hidden system prompt: fixed allowances below cover them;
- image, audio and file parts are priced from the catalogue (a per-image price, a per-part
  token bound); a part that cannot be priced for the model makes the cost unbounded, and the
  call is refused with `CostUnbounded`.
"""

from __future__ import annotations

import json
import math
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson

from lyra.catalog.models import ModelInfo
from lyra.errors import CostUnbounded
from lyra.money import token_cost_nanos, usd_to_nanos
from lyra.types import Message

# Tokens a chat template adds around the whole request: BOS, the generation prompt and default
# system prompts some templates insert when none is given (Llama 3's dates, Qwen's identity line:
# about 20-30 tokens each).
_REQUEST_OVERHEAD = 128
# Around each message: role markers, separators and end-of-turn tokens (3-6 in the OpenAI, Llama 3,
# Gemma, Qwen and DeepSeek templates).
_MESSAGE_OVERHEAD = 16
# Around each content part: a dummy-prefix or separator token, an image placeholder's markers.
_PART_OVERHEAD = 8
# The hidden system prompt of tool use: Anthropic documents 264-346 tokens; OpenRouter's template
# for models without native tools is not documented. Three times the largest documented one.
_TOOLS_OVERHEAD = 1024
# Instructions a provider adds to enforce a JSON schema or JSON mode.
_SCHEMA_OVERHEAD = 512
# Bytes one node of a structure costs in two-space-indented JSON beside its key and value: ": ",
# ",", a newline, and two spaces per level of depth; a provider's rendering (four-space indents,
# YAML for models without native tools) stays within twice that.
_NODE_BYTES = 6
_INDENT_BYTES = 2
_RENDER_FACTOR = 2

# The content part types each kind of media arrives in (OpenAI and OpenRouter shapes).
_IMAGE_TYPES = frozenset({"image_url", "input_image", "image"})
_AUDIO_TYPES = frozenset({"input_audio", "audio"})
_FILE_TYPES = frozenset({"file", "input_file"})
_TEXT_TYPES = frozenset({"text", "input_text"})


@dataclass(frozen=True, slots=True)
class PromptShape:
    """What a request's input contains, measured once per request.

    `text_tokens` bounds every token that is not media: text, message fields, tools, the schema
    and template overheads. `unpriced` names parts that no catalogue price can bound (an unknown
    part type, a value that is not JSON); any of them makes every model refuse the request.
    """

    text_tokens: int
    images: int = 0
    audios: int = 0
    files: int = 0
    cache_control: bool = False
    unpriced: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class WorstCase:
    """The most one attempt can use and cost on one model."""

    prompt_tokens: int
    completion_tokens: int
    cost_nanos: int


# --- measuring a request ------------------------------------------------------------------


def text_bytes(text: str) -> int:
    """An upper bound on the tokens of `text` for any byte-level or byte-fallback tokenizer."""
    raw = len(text.encode("utf-8", "surrogatepass"))
    if text.isascii():
        return raw  # every normal form of ASCII is itself
    return max(raw, *(len(unicodedata.normalize(form, text).encode("utf-8", "surrogatepass"))
                      for form in ("NFD", "NFKD")))


def _string_bytes(text: str) -> int:
    """Bytes of a string inside a rendered structure: escaped (ASCII-only JSON) or normalised."""
    if text.isascii():
        return len(orjson.dumps(text))  # the same escapes as json.dumps for ASCII, much faster
    escaped = len(json.dumps(text))  # ensure_ascii: "\\uXXXX" for each non-ASCII code unit
    return max(escaped, text_bytes(text))


def _structure_bytes(value: object, where: str, unpriced: list[str]) -> int:
    """An upper bound on the bytes of `value` as a provider may render it in a prompt.

    Twice its JSON at two-space indentation covers four-space indentation, YAML and compact
    forms. ASCII JSON is measured by orjson at once; anything else is walked node by node with
    the same per-node allowance, escaping or normalising each string at its longest.
    """
    try:
        rendered = orjson.dumps(value, option=orjson.OPT_INDENT_2)
    except TypeError:
        rendered = b"\x80"  # not plain JSON (a big int, a non-str key, an object): walk it
    if rendered.isascii():
        return _RENDER_FACTOR * len(rendered)
    return _RENDER_FACTOR * _walk_bytes(value, where, unpriced)


def _walk_bytes(value: object, where: str, unpriced: list[str]) -> int:
    total = 0
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        total += _NODE_BYTES + _INDENT_BYTES * depth
        if isinstance(item, str):
            total += _string_bytes(item)
        elif isinstance(item, Mapping):
            for key, child in item.items():
                total += _string_bytes(str(key))
                stack.append((child, depth + 1))
        elif isinstance(item, list | tuple):
            stack.extend((child, depth + 1) for child in item)
        elif item is None or isinstance(item, bool):
            total += 5
        elif isinstance(item, int):
            if abs(item) >= 10**18:  # also keeps str() clear of Python's digit limit
                unpriced.append(f"a number too large for JSON in {where}")
            else:
                total += len(str(item))
        elif isinstance(item, float):
            total += len(repr(item))
        else:
            unpriced.append(f"a value of type {type(item).__name__} in {where}")
    return total


def _part_kind(part: Mapping[str, Any]) -> str | None:
    kind = part.get("type")
    if not isinstance(kind, str):
        return "text" if isinstance(part.get("text"), str) and len(part) == 1 else None
    if kind in _TEXT_TYPES:
        return "text"
    if kind in _IMAGE_TYPES:
        return "image"
    if kind in _AUDIO_TYPES:
        return "audio"
    if kind in _FILE_TYPES:
        return "file"
    return None


@dataclass(slots=True)
class _Tally:
    tokens: int = _REQUEST_OVERHEAD
    images: int = 0
    audios: int = 0
    files: int = 0
    cache_control: bool = False
    unpriced: list[str] = field(default_factory=list)


def _measure_part(part: object, where: str, tally: _Tally) -> None:
    tally.tokens += _PART_OVERHEAD
    if isinstance(part, str):
        tally.tokens += text_bytes(part)
        return
    if not isinstance(part, Mapping):
        tally.unpriced.append(f"a content part of type {type(part).__name__} in {where}")
        return
    tally.cache_control |= "cache_control" in part
    kind = _part_kind(part)
    if kind is None:
        tally.unpriced.append(f"a content part of type {str(part.get('type'))[:40]!r} in {where}")
        return
    if kind == "text":
        text = part.get("text")
        if not isinstance(text, str):
            tally.unpriced.append(f"a text part without a string 'text' in {where}")
            return
        tally.tokens += text_bytes(text)
        return
    if kind == "image":
        tally.images += 1
    elif kind == "audio":
        tally.audios += 1
    else:
        tally.files += 1
        file = part.get("file")
        name = file.get("filename") if isinstance(file, Mapping) else None
        if isinstance(name, str):
            tally.tokens += text_bytes(name)  # some providers put the file name in the prompt


def _measure_message(message: object, index: int, tally: _Tally) -> None:
    where = f"message {index}"
    tally.tokens += _MESSAGE_OVERHEAD
    if not isinstance(message, Mapping):
        tally.unpriced.append(f"{where}, which is a {type(message).__name__}, not an object")
        return
    for name, value in message.items():
        if name == "content":
            continue
        # name, tool_calls, tool_call_id, reasoning_details... all reach the prompt.
        tally.tokens += _structure_bytes(value, f"{where} field {str(name)[:40]!r}", tally.unpriced)
        if name == "cache_control":
            tally.cache_control = True
    content = message.get("content")
    if content is None:
        return
    if isinstance(content, str):
        tally.tokens += text_bytes(content)
    elif isinstance(content, list | tuple):
        for part in content:
            _measure_part(part, where, tally)
    else:
        tally.tokens += _structure_bytes(content, f"{where} content", tally.unpriced)


def measure_prompt(
    messages: Sequence[Message],
    *,
    tools: Sequence[Mapping[str, Any]] | None = None,
    response_format: Mapping[str, Any] | None = None,
) -> PromptShape:
    """Measure a chat request's input once: a text token bound and its media parts."""
    tally = _Tally()
    for index, message in enumerate(messages):
        _measure_message(message, index, tally)
    if tools:
        tally.tokens += _TOOLS_OVERHEAD + _structure_bytes(tools, "tools", tally.unpriced)
    if response_format:
        tally.tokens += _SCHEMA_OVERHEAD + _structure_bytes(response_format, "response_format",
                                                            tally.unpriced)
    return PromptShape(text_tokens=tally.tokens, images=tally.images, audios=tally.audios,
                       files=tally.files, cache_control=tally.cache_control,
                       unpriced=tuple(dict.fromkeys(tally.unpriced)))


def estimate_text_tokens(text: str) -> int:
    """Tokens in generated text, for the rare body that reports no usage (an estimate, not a bound)."""
    return max(1, -(-len(text) // 4))


# --- pricing it on a model ----------------------------------------------------------------


def _refuse(part: str, model: ModelInfo, why: str) -> CostUnbounded:
    return CostUnbounded(f"cannot bound the cost of {part} on {model.id}: {why}", cap="estimate")


def _accepts(model: ModelInfo, modality: str) -> bool:
    return modality in model.input_modalities


def _media_tokens(model: ModelInfo, prompt: PromptShape) -> tuple[int, int]:
    """Prompt tokens of images and files, and audio tokens; refuses what cannot be bounded."""
    tokens = audio = 0
    if prompt.images:
        if not _accepts(model, "image"):
            raise _refuse(_count(prompt.images, "image part"), model,
                          "the model does not take images; pick a model that does or drop the images")
        if model.image_tokens is None and model.image_usd is None:
            raise _refuse(_count(prompt.images, "image part"), model,
                          "the catalogue has no image price or per-image token bound for it; "
                          "add image_usd or image_tokens to its entry or pick another model")
        tokens += prompt.images * (model.image_tokens or 0)
    if prompt.audios:
        if not _accepts(model, "audio"):
            raise _refuse(_count(prompt.audios, "audio part"), model,
                          "the model does not take audio; pick a model that does or send a transcript")
        if model.audio_tokens is None:
            raise _refuse(_count(prompt.audios, "audio part"), model,
                          "the catalogue has no per-part audio token bound for it; send a transcript")
        audio = prompt.audios * model.audio_tokens
    if prompt.files:
        if not _accepts(model, "file"):
            raise _refuse(_count(prompt.files, "file part"), model,
                          "the model does not take files; send the text of the file instead")
        if model.file_tokens is None:
            raise _refuse(_count(prompt.files, "file part"), model,
                          "the catalogue has no per-file token bound for it; send the file's text instead")
        tokens += prompt.files * model.file_tokens
    return tokens, audio


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _prices(model: ModelInfo, prompt_tokens: int) -> tuple[Decimal, Decimal, Decimal]:
    """The highest prompt, completion and audio prices that can apply to this prompt size."""
    prompt, completion = model.prompt_per_m, model.completion_per_m
    audio = model.audio_per_m if model.audio_per_m is not None else prompt
    for override in model.price_overrides:
        if prompt_tokens >= override.min_prompt_tokens:
            prompt = max(prompt, override.prompt_per_m)
            completion = max(completion, override.completion_per_m)
            audio = max(audio, override.audio_per_m or override.prompt_per_m)
    if model.reasoning_per_m is not None:
        completion = max(completion, model.reasoning_per_m)  # reasoning tokens are in the output
    return prompt, completion, max(audio, prompt)


# The share of max_tokens OpenRouter gives the reasoning budget for each effort level
# (docs: guides/best-practices/reasoning-tokens); "max" and levels Lyra does not know take all of it.
_EFFORT_SHARE = {"max": Decimal(1), "xhigh": Decimal("0.95"), "high": Decimal("0.8"),
                 "medium": Decimal("0.5"), "low": Decimal("0.2"), "minimal": Decimal("0.1"),
                 "none": Decimal(0)}


def reasoning_bound(reasoning: Mapping[str, Any] | None, max_tokens: int) -> int:
    """The most reasoning tokens a `reasoning` request can add beside `max_tokens`.

    An explicit `max_tokens` is the reasoning budget; an effort level is its documented share of
    `max_tokens` (counted again, in case a provider bills the budget beside it); `enabled` alone
    is OpenRouter's default effort (medium). No `reasoning`, or `enabled: false`, adds nothing.
    """
    if not reasoning or reasoning.get("enabled") is False:
        return 0
    budget = reasoning.get("max_tokens")
    if isinstance(budget, int) and not isinstance(budget, bool) and budget >= 0:
        return budget
    effort = reasoning.get("effort", "medium")
    share = _EFFORT_SHARE.get(effort, Decimal(1)) if isinstance(effort, str) else Decimal(1)
    return math.ceil(share * max_tokens)


def worst_case(
    model: ModelInfo,
    prompt: PromptShape,
    *,
    max_tokens: int,
    reasoning_max_tokens: int | None = None,
) -> WorstCase:
    """The most one attempt with this prompt can cost on `model`, rounded up to the nano-dollar.

    Completion tokens are `max_tokens` plus `reasoning_max_tokens` (a provider may count the
    reasoning budget beside max_tokens), priced at the higher of the completion and internal
    reasoning prices. Raises CostUnbounded when a part of the prompt cannot be priced.
    """
    if prompt.unpriced:
        raise _refuse(prompt.unpriced[0], model, "no price can bound it; remove it from the request")
    if max_tokens < 0 or (reasoning_max_tokens or 0) < 0:
        raise _refuse("a negative max_tokens", model, "max_tokens must be 0 or more")
    media, audio = _media_tokens(model, prompt)
    prompt_tokens = prompt.text_tokens + media + audio
    completion_tokens = max_tokens + (reasoning_max_tokens or 0)
    prompt_price, completion_price, audio_price = _prices(model, prompt_tokens)
    if prompt.cache_control and model.cache_write_per_m is not None:
        # A cache write bills at its own price, which may replace the prompt price or be added
        # to it: both together bound either reading.
        prompt_price += model.cache_write_per_m
        audio_price += model.cache_write_per_m
    cost = (
        token_cost_nanos(prompt.text_tokens + media, prompt_price, round_up=True)
        + token_cost_nanos(audio, audio_price, round_up=True)
        + token_cost_nanos(completion_tokens, completion_price, round_up=True)
    )
    if prompt.images and model.image_usd is not None:
        cost += usd_to_nanos(model.image_usd * prompt.images, round_up=True)
    if model.request_usd is not None:
        cost += usd_to_nanos(model.request_usd, round_up=True)
    return WorstCase(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens, cost_nanos=cost)


__all__ = [
    "PromptShape",
    "WorstCase",
    "estimate_text_tokens",
    "measure_prompt",
    "reasoning_bound",
    "text_bytes",
    "worst_case",
]
