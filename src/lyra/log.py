"""Logging under the `lyra` logger, with a filter that masks anything shaped like a key."""

from __future__ import annotations

import logging
import re

_KEY_SHAPES = re.compile(r"(sk-or-[A-Za-z0-9_\-]{4})[A-Za-z0-9_\-]+|(Bearer\s+)\S+")


def mask_secrets(text: str) -> str:
    """Replace anything that looks like an API key or bearer token with a masked form."""
    return _KEY_SHAPES.sub(lambda m: (m.group(1) or m.group(2)) + "***", text)


class SecretMaskFilter(logging.Filter):
    """Rewrites each record's message so no key survives into any handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_secrets(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


_MASK = SecretMaskFilter()


def get_logger(name: str) -> logging.Logger:
    """A logger under `lyra` whose records are masked before any handler sees them."""
    logger = logging.getLogger(name)
    if _MASK not in logger.filters:
        logger.addFilter(_MASK)
    return logger
