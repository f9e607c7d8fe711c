"""Settings of the panel study: calibration per model, the calibrated vote and the cost-tuned cascade."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class CalibrationSettings(BaseModel):
    """`[calibration]`: how stated confidence is calibrated and how the cascade stops, walk-forward."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    method: Literal["isotonic", "platt"] = "isotonic"
    # Outcomes a model needs on record before its calibrated probability replaces its stated one.
    min_samples: int = Field(20, ge=1, le=100_000)
    bins: int = Field(10, ge=2, le=100)  # reliability curve and ECE bins
    # The calibrated vote trades when the probability of a rise is at least 0.5 + margin (BUY) or
    # at most 0.5 - margin (SELL), and holds in between.
    margin: float = Field(0.1, ge=0, lt=0.5)
    # The cascade keeps its expected disagreements with the full panel within 1 - this share.
    target_agreement: float = Field(0.95, gt=0, le=1)
    # Decisions on record (full panel asked) before the cascade may stop at the cheap panel at all.
    min_record: int = Field(20, ge=1, le=100_000)
    # The cascade stops only on a call at least this likely to be the full panel's (calibrated on
    # its record), and only while the expected disagreements stay within 1 - target_agreement.
    min_stop_probability: float = Field(0.9, gt=0, le=1)
    # Every n-th decision the cascade stops on is audited: the full panel is asked too (and paid), so
    # that the record goes on measuring the stopped calls. 0: never.
    audit_every: int = Field(5, ge=0, le=100_000)
    # The sequential stop inside the escalation judges the members not yet asked on the record's
    # complete answer sets that agree with the answers so far; with fewer than this many, it asks on.
    min_matches: int = Field(5, ge=1, le=100_000)
    # Complete answer sets (every member asked) on record before the sequential stop may stop at all;
    # until then every escalated decision asks every member.
    min_sets: int = Field(20, ge=1, le=100_000)
    # How the members not yet asked are judged: "matched" on the record's complete sets that agree
    # with the answers so far, or "predicted" each from the asked member that best predicts it.
    sequential: Literal["matched", "predicted"] = "predicted"
    self_consistency_samples: int = Field(3, ge=0, le=20)  # extra answers of one model per decision
    self_consistency_model: str | None = None  # None: the full panel's heaviest member
