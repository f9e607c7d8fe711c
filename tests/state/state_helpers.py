"""Helpers shared by the state tests (a plain module: conftest files cannot be imported by name)."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from lyra.state import StateBackend


def rid() -> str:
    """A fresh reservation id, as the budget makes one per attempt."""
    return uuid.uuid4().hex


class FakeClock:
    """A clock that moves only when told to, for the memory backend's expiry and refill."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Harness:
    """A backend, and a way to let time pass that suits it (a fake clock, or real sleep)."""

    kind: str
    backend: StateBackend
    advance: Callable[[float], Awaitable[None]]
