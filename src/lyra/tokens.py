"""Conservative token estimates for reserving budget before a call."""

from __future__ import annotations

from collections.abc import Sequence

from lyra.types import Message

# Tokenizers average 3.5-4.5 characters per token on English and JSON; 3 over-estimates on
# purpose, because this number sizes a budget reservation that must never fall short.
_CHARS_PER_TOKEN = 3
_PER_MESSAGE_OVERHEAD = 4


def estimate_prompt_tokens(messages: Sequence[Message]) -> int:
    """An upper-leaning estimate of the prompt tokens of a chat request."""
    total = 3
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            total += len(content) // _CHARS_PER_TOKEN + _PER_MESSAGE_OVERHEAD
        elif isinstance(content, list):
            for part in content:
                text = part.get("text") if isinstance(part, dict) else None
                total += (len(text) // _CHARS_PER_TOKEN if isinstance(text, str) else 85)
            total += _PER_MESSAGE_OVERHEAD
    return total


def estimate_text_tokens(text: str) -> int:
    """Tokens in generated text, for the rare body that reports no usage."""
    return max(1, -(-len(text) // 4))
