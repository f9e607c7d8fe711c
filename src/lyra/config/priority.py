"""Admission priority: which calls go first when a rate limit or the budget binds.

Four named levels, highest first: "emergency" (an exit that must not wait), "high" (risk checks),
"normal" (signals, news, analysis) and "low" (code generation, anything that can wait). A task's
level is `tasks.<name>.priority`, or its default below; a request may raise its own level with
`priority=` (the engine's existing "high" / "emergency"), never lower it below its task's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal

from lyra.types import CompletionRequest

if TYPE_CHECKING:
    from lyra.config.schema import Settings, TaskSettings

Priority = Literal["emergency", "high", "normal", "low"]
PRIORITIES: tuple[Priority, ...] = ("emergency", "high", "normal", "low")  # highest first
# The rank of each level: 0 is served first.
RANK: dict[str, int] = {name: i for i, name in enumerate(PRIORITIES)}

# A task without its own `priority`: a risk check outranks the signals it guards; generated code
# can always wait a minute. Every other task is "normal".
DEFAULT_TASK_PRIORITY: dict[str, Priority] = {"risk_assessment": "high", "code_generation": "low"}


def task_priority(name: str | None, task: TaskSettings | None) -> Priority:
    """A task's configured level, or its default (None, an unknown or unconfigured task: "normal")."""
    if task is not None and task.priority is not None:
        return task.priority
    return DEFAULT_TASK_PRIORITY.get(name or "", "normal")


class PriorityTable:
    """Each request's admission level, from its task's setting and its own `priority`."""

    def __init__(self, tasks: Mapping[str, TaskSettings] | None = None) -> None:
        self._tasks: dict[str, Priority] = {n: task_priority(n, t) for n, t in (tasks or {}).items()}

    @classmethod
    def of_settings(cls, settings: Settings) -> PriorityTable:
        return cls(settings.tasks)

    def level(self, request: CompletionRequest) -> Priority:
        """The request's level: its task's, raised (never lowered) by the request's own `priority`.

        The request field defaults to "normal", which therefore means "the task's level": a
        code_generation call stays "low" unless its caller asks for "high" or "emergency".
        """
        task = request.task
        base = self._tasks.get(task) if task is not None else None
        if base is None:
            base = DEFAULT_TASK_PRIORITY.get(task or "", "normal")
        asked = request.priority
        if asked != "normal" and RANK.get(asked, len(PRIORITIES)) < RANK[base]:
            return asked  # an unknown value (the type allows none) is ignored rather than trusted
        return base

    def rank(self, request: CompletionRequest) -> int:
        """The request's rank: 0 ("emergency") is served first."""
        return RANK[self.level(request)]
