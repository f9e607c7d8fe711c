"""`[portfolio]`: the limits code enforces on a rebalancing decision, and the live cadence."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class PortfolioSettings(BaseModel):
    """Limits on target weights (fractions of equity); a model's proposal is only ever shrunk to them."""

    # The same strictness as every other section: a value of the wrong TOML type is refused.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    max_weight: float = Field(0.40, gt=0, le=1)  # |weight| of one symbol
    max_gross: float = Field(1.0, gt=0, le=3)  # sum of |weights|
    max_net: float = Field(1.0, ge=0, le=1)  # |sum of weights|
    max_turnover: float = Field(0.50, gt=0, le=6)  # sum of |weight changes| in one rebalance
    cash_floor: float = Field(0.05, ge=0, lt=1)  # cash kept, as a share of equity: net <= 1 - floor
    allow_short: bool = False
    every: str = Field(
        "1d", pattern=r"^[1-9][0-9]*[mhdw]$"
    )  # `lyra live --portfolio`: how often to rebalance
    symbols: list[str] = Field(default_factory=list)  # `lyra live --portfolio`: the data sources to hold

    @model_validator(mode="after")
    def _consistent(self) -> PortfolioSettings:
        if self.max_weight > self.max_gross:
            raise ValueError(
                f"portfolio.max_weight {self.max_weight} is above portfolio.max_gross {self.max_gross}"
            )
        return self


__all__ = ["PortfolioSettings"]
