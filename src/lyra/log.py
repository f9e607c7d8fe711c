"""Logging under the `lyra` logger, with a filter that masks anything shaped like a key."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable
from typing import Any

_KEY_SHAPES = re.compile(
    r"(sk-or-[A-Za-z0-9_\-]{4})[A-Za-z0-9_\-]+"  # an OpenRouter key: its first four characters stay
    r"|(Bearer\s+)(?!<token>[`'\"]?(?:\s|$))\S+"  # any bearer token, not the `<token>` of a hint
    r"|\b(lyra-|sk-)[A-Za-z0-9_\-]{20,}"  # a gateway client token, another provider's key
    r"|(\b[a-z][a-z0-9+.\-]*://[^/\s:@]*:)[^@\s/]+(?=@)"  # the password inside a URL
)


def mask_secrets(text: str) -> str:
    """Replace anything that looks like an API key, a bearer token or a URL's password with `***`."""
    return _KEY_SHAPES.sub(lambda m: (m.group(1) or m.group(2) or m.group(3) or m.group(4)) + "***", text)


def mask_known(text: str, secrets: Iterable[str]) -> str:
    """mask_secrets, and every one of `secrets` written out of the text whatever its shape."""
    for secret in sorted((s for s in secrets if len(s) >= 6), key=len, reverse=True):
        text = text.replace(secret, "***")
    return mask_secrets(text)


class SecretMaskFilter(logging.Filter):
    """Rewrites each record's message so no key survives into any handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_secrets(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


_MASK = SecretMaskFilter()


class CurrentStderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes each record to `sys.stderr` as it is when the record is emitted, not when configured.

    A handler that kept the stream of its first command would write to a closed file once that
    stream is swapped and closed (a test runner's capture, a redirected embedding).
    """

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:  # StreamHandler.__init__ assigns it; the property decides
        return None


def get_logger(name: str) -> logging.Logger:
    """A logger under `lyra` whose records are masked before any handler sees them."""
    logger = logging.getLogger(name)
    if _MASK not in logger.filters:
        logger.addFilter(_MASK)
    return logger
