"""State backends: budget caps with reservations, and token buckets, behind one small interface."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from lyra.errors import ConfigError
from lyra.state.base import BucketLevel, CapUsage, Charge, Refusal, StateBackend
from lyra.state.memory import MemoryBackend
from lyra.state.sqlite import SqliteBackend

if TYPE_CHECKING:
    from lyra.state.redis import RedisBackend

__all__ = [
    "BucketLevel",
    "CapUsage",
    "Charge",
    "MemoryBackend",
    "RedisBackend",
    "Refusal",
    "SqliteBackend",
    "StateBackend",
    "open_backend",
]


def __getattr__(name: str) -> object:
    # The redis client takes ~100 ms to import: load it only for those who use it.
    if name == "RedisBackend":
        from lyra.state.redis import RedisBackend

        return RedisBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


KINDS = ("memory", "sqlite", "redis")


def open_backend(
    kind: str, *, path: str | Path | None = None, redis_url: str | None = None, prefix: str = "lyra:"
) -> StateBackend:
    """Open the state backend named in lyra.toml's [state] backend."""
    if kind == "memory":
        return MemoryBackend()
    if kind == "sqlite":
        if not path:
            raise ConfigError("[state] backend = 'sqlite' needs a path: set [state] path in lyra.toml")
        return SqliteBackend(path)
    if kind == "redis":
        if not redis_url:
            raise ConfigError("[state] backend = 'redis' needs a URL: set LYRA_REDIS_URL (redis://host:6379/0)")
        from lyra.state.redis import RedisBackend

        try:
            return RedisBackend(redis_url, prefix=prefix)
        except ValueError as exc:
            raise ConfigError(f"LYRA_REDIS_URL is not a Redis URL: {exc}") from exc
    raise ConfigError(f"[state] backend = {kind!r} is not available: use one of {', '.join(KINDS)}")
