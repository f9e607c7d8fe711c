"""The choices of one answer: text or tool calls, reasoning, log-probabilities, and their tokens."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import orjson

from lyra.catalog.estimate import reasoning_bound
from lyra.catalog.models import ModelInfo
from lyra.simulator import schema as js
from lyra.simulator.chat_options import ChatOptions
from lyra.simulator.chat_request import ChatRequest
from lyra.simulator.profiles import ModelProfile
from lyra.simulator.responder import request_rng, respond
from lyra.simulator.tokens import count_text, message_text, truncate_to_tokens

_TOOL_FINISH = {"anthropic": "tool_use", "google": "STOP"}  # native finish reasons of a tool call
_MAX_PARALLEL = 4
_THOUGHTS = (
    "The user asks about {topic}.",
    "I should check what the request needs before answering.",
    "Weighing the options: the simplest answer that is correct is best.",
    "Nothing here calls for live data, so I answer from the context given.",
    "Let me make sure the answer follows the requested format.",
)


@dataclass(slots=True)
class SimChoice:
    """One choice, computed before any byte is sent."""

    index: int
    content: str
    tool_calls: list[dict[str, Any]]
    reasoning: str | None  # the text shown; None when excluded or not asked
    reasoning_tokens: int
    logprobs: list[dict[str, Any]] | None
    finish_reason: str
    native_finish_reason: str

    @property
    def completion_tokens(self) -> int:
        calls = sum(count_text(c["function"]["name"] + c["function"]["arguments"]) for c in self.tool_calls)
        return count_text(self.content) + calls + self.reasoning_tokens


def make_choices(model: ModelInfo, profile: ModelProfile, req: ChatRequest, seed: int) -> list[SimChoice]:
    return [_choice(model, profile, req, seed, index) for index in range(req.options.n)]


def _choice(model: ModelInfo, profile: ModelProfile, req: ChatRequest, seed: int, index: int) -> SimChoice:
    options = req.options
    rng = request_rng(seed + index, model.id, req.payload)
    messages = req.payload.get("messages") or []
    tools = _tools_to_call(options, messages, rng)
    reasoning_text, reasoning_tokens = _reasoning(model, req, rng)
    shown = None if options.reasoning is None or options.reasoning.exclude else reasoning_text
    if tools:
        calls = [_call(tool, rng) for tool in tools]
        return SimChoice(index, "", calls, shown, reasoning_tokens, [] if options.logprobs else None,
                         "tool_calls", _TOOL_FINISH.get(model.provider.lower(), "tool_calls"))
    content = respond(model, req.payload, seed + index)
    finish, native = "stop", profile.native_stop
    if req.max_tokens is not None and count_text(content) > req.max_tokens:
        content = truncate_to_tokens(content, req.max_tokens)
        finish, native = "length", profile.native_length
    logprobs = token_logprobs(content, options.top_logprobs, rng) if options.logprobs else None
    return SimChoice(index, content, [], shown, reasoning_tokens, logprobs, finish, native)


def _tools_to_call(options: ChatOptions, messages: list[Any], rng: random.Random) -> list[dict[str, Any]]:
    """The tools a model calls: none for "none"; the named one; under "auto", calls until a tool answers."""
    tools = list(options.tools)
    choice = options.tool_choice
    if not tools or choice == "none":
        return []
    if isinstance(choice, dict):
        wanted = choice["function"]["name"]
        return [t for t in tools if t["function"]["name"] == wanted][:1]
    last = messages[-1] if messages and isinstance(messages[-1], dict) else {}
    if choice == "auto" and last.get("role") == "tool":
        return []  # the tool has answered: reply in text
    if options.parallel_tool_calls and len(tools) > 1:
        return tools[:_MAX_PARALLEL]
    return [tools[rng.randrange(len(tools))]]


def _call(tool: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    function = tool["function"]
    parameters = function.get("parameters")
    schema = parameters if isinstance(parameters, dict) else {"type": "object", "properties": {}}
    arguments = js.generate(schema, schema, rng, text=str(function.get("description") or function["name"]))
    if not isinstance(arguments, dict):
        arguments = {}
    return {
        "id": f"call_{rng.getrandbits(96):024x}",
        "type": "function",
        "function": {"name": function["name"], "arguments": orjson.dumps(arguments).decode()},
    }


def _reasoning(model: ModelInfo, req: ChatRequest, rng: random.Random) -> tuple[str | None, int]:
    """The reasoning text and its tokens, within the budget its effort or max_tokens allows."""
    asked = req.options.reasoning
    if asked is None:
        return None, 0
    budget = reasoning_bound({"effort": asked.effort, "max_tokens": asked.max_tokens},
                             req.max_tokens or model.max_output)
    last = next((message_text(m.get("content")) for m in reversed(req.payload.get("messages") or [])
                 if isinstance(m, dict) and m.get("role") == "user"), "")
    topic = " ".join(last.split()[:8]) or "it"
    count = 2 + rng.randrange(len(_THOUGHTS) - 1)
    text = " ".join(t.format(topic=topic) for t in _THOUGHTS[:count])
    text = truncate_to_tokens(text, budget)
    return (text or None), count_text(text)


def token_logprobs(content: str, top: int, rng: random.Random) -> list[dict[str, Any]]:
    """choice.logprobs.content: one entry per token (four characters, as the token counts are)."""
    entries = []
    for start in range(0, len(content), 4):
        token = content[start : start + 4]
        logprob = -round(rng.random() * 1.5, 4)
        alternatives = [token, token.upper(), token.lower(), " " + token, token[::-1],
                        *(f"{token}{n}" for n in range(top))]
        tops = [{"token": alt, "logprob": round(logprob - 0.5 * rank, 4) if rank else logprob,
                 "bytes": list(alt.encode())} for rank, alt in enumerate(dict.fromkeys(alternatives))]
        entries.append({"token": token, "logprob": logprob, "bytes": list(token.encode()),
                        "top_logprobs": tops[:top]})
    return entries
