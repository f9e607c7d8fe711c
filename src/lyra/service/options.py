"""The gateway's own bounds, as typed options with defaults that suit a trading desk."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceOptions:
    """Limits the gateway enforces before a request reaches the engine.

    `max_body_bytes` bounds a request body (413 past it); `max_tokens` bounds what a client may
    ask for in one completion (400 past it, or past the model's own output limit).
    `body_timeout_s` bounds how long a request body may take to arrive (408 past it).
    `access_log` writes one JSON line per request to the `lyra.service.access` logger.
    """

    max_body_bytes: int = 1_048_576
    max_tokens: int = 32_768
    max_messages: int = 1_000
    body_timeout_s: float = 30.0
    access_log: bool = False

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_tokens", "max_messages"):
            if getattr(self, name) < 1:
                raise ValueError(f"ServiceOptions.{name} must be >= 1")
        if not 0 < self.body_timeout_s < float("inf"):
            raise ValueError("ServiceOptions.body_timeout_s must be a positive number of seconds")
