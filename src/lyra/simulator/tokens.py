"""Deterministic token counts: about four characters a token, like the GPT tokenizers on English."""

from __future__ import annotations

from typing import Any

MESSAGE_OVERHEAD = 4  # role and separators, as chat templates add per message


def count_text(text: str) -> int:
    """Tokens in a text: len/4 rounded up."""
    return (len(text) + 3) // 4


def message_text(content: Any) -> str:
    """The text of a message's content, whether a string or a list of typed parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(part.get("text", "")) for part in content if isinstance(part, dict)
        )
    return ""


def count_messages(messages: list[Any]) -> int:
    """Prompt tokens of a chat: the text of every message plus a fixed overhead per message."""
    total = 0
    for message in messages:
        if isinstance(message, dict):
            total += count_text(message_text(message.get("content"))) + MESSAGE_OVERHEAD
    return total


def truncate_to_tokens(text: str, max_tokens: int) -> str:
    """The longest prefix of `text` that counts as at most `max_tokens` tokens."""
    return text[: max(0, max_tokens) * 4]
