"""A prompt variant of the signal stages: what an experiment's arm changes in one decision."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lyra.trading.prompts import Messages

SignalPrompt = Callable[[Mapping[str, Any], Sequence[str]], Messages]


@dataclass(frozen=True, slots=True)
class SignalVariant:
    """The signal prompt to ask with and, when set, the models to ask (one routed call, in order).

    `tag` is recorded in the decision (the audit trail): the experiment, arm and episode.
    """

    signal: SignalPrompt
    models: tuple[str, ...] = ()
    tag: Mapping[str, Any] = field(default_factory=dict)


__all__ = ["SignalPrompt", "SignalVariant"]
