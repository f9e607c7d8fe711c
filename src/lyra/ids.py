"""Cheap unique ids: a random per-process prefix plus a counter (os.urandom per call is slow)."""

from __future__ import annotations

import itertools
import os
import secrets

_counter = itertools.count(1)
_prefix = ""
_prefix_pid = -1


def new_id() -> str:
    """An id unique across processes and hosts, for requests and reservations."""
    global _prefix, _prefix_pid
    if _prefix_pid != os.getpid():  # a forked child must not reuse its parent's prefix
        _prefix, _prefix_pid = secrets.token_hex(6), os.getpid()
    return f"{_prefix}{next(_counter):x}"
