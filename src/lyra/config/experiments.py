"""`[experiments.NAME]`: prompt variants (and models) of a task, compared by a sequential test."""

from __future__ import annotations

import string
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

# The named variants of the built-in signal prompt (lyra.trading.experiments holds their text).
BUILTIN_VARIANTS = ("builtin", "brief", "risk_first", "trend_follow")
TEMPLATE_FIELDS = ("features", "news")
_NAME = r"^[a-z][a-z0-9_\-]{0,39}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class ArmSettings(_Strict):
    """One arm: a named variant of the built-in prompt or a template of its own, and optionally models."""

    name: str = Field(pattern=_NAME)
    # A named variant of the built-in prompt (BUILTIN_VARIANTS), unless `template` is given.
    prompt: str = "builtin"
    # The user message, with {features} (the fenced JSON features) and optionally {news}.
    template: str | None = Field(None, min_length=1, max_length=4000)
    # Candidate models in order for the signal call of this arm; empty: the pipeline's own routing.
    models: list[str] = Field(default_factory=list, max_length=8)

    @field_validator("prompt")
    @classmethod
    def _variant(cls, value: str) -> str:
        if value not in BUILTIN_VARIANTS:
            raise ValueError(f"unknown prompt variant {value!r}; use one of {', '.join(BUILTIN_VARIANTS)} "
                             "or a template")
        return value

    @field_validator("template")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            names = [f for _, f, _, _ in string.Formatter().parse(value) if f is not None]
        except ValueError as exc:
            raise ValueError(f"not a template ({exc}); write literal braces as {{{{ and }}}}") from None
        unknown = sorted(set(names) - set(TEMPLATE_FIELDS))
        if unknown:
            raise ValueError(f"unknown placeholder {{{unknown[0]}}}; use {{features}} and {{news}}")
        if "features" not in names:
            raise ValueError("a template must show the features: put {features} in it")
        return value

    @property
    def variant(self) -> str:
        """What the arm asks with, as the records show it: "template" or the named variant."""
        return "template" if self.template is not None else self.prompt


class ExperimentSettings(_Strict):
    """An experiment: arms on one task, the measure, and the sequential test's parameters."""

    task: Literal["signal_generation"] = "signal_generation"
    arms: list[ArmSettings] = Field(min_length=2, max_length=8)
    # hit_rate: a BUY or SELL right about the direction over the horizon scores 1, wrong 0 (HOLD: no
    # sample); return: the decision's realised return over the horizon, after costs (HOLD: 0),
    # clipped to +-return_bound and mapped to [0, 1] for the test.
    metric: Literal["hit_rate", "return"] = "hit_rate"
    delta: float = Field(0.05, gt=0, le=0.5)  # the chance of naming a wrong winner, at most
    min_samples: int = Field(10, ge=1, le=1_000_000)  # outcomes per arm before any verdict
    indifference: float = Field(0.05, gt=0, le=1)  # "no difference": means within this of each other
    return_bound: float = Field(0.10, gt=0, le=1)
    horizon_bars: int | None = Field(None, ge=1, le=10_000)  # None: the backtest's horizon; live: 5
    mode: Literal["offline", "shadow"] = "offline"
    seed: str = ""  # mixed into the assignment hash; change it to draw a fresh assignment

    @model_validator(mode="after")
    def _distinct_arms(self) -> ExperimentSettings:
        seen: set[str] = set()
        for i, arm in enumerate(self.arms):
            if arm.name in seen:
                raise ValueError(f"arms[{i}].name: {arm.name!r} is used twice")
            seen.add(arm.name)
        return self


__all__ = ["BUILTIN_VARIANTS", "TEMPLATE_FIELDS", "ArmSettings", "ExperimentSettings"]
