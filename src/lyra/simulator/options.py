"""Settings of one simulator instance."""

from __future__ import annotations

from dataclasses import dataclass

FINAL_USAGE_FORMS = ("empty_choices", "empty_delta", "alternate")
# "uniform": each tier's range; "heavy_tail": the same, with a few calls far slower (profiles.py).
LATENCY_PROFILES = ("uniform", "heavy_tail")


@dataclass(frozen=True, kw_only=True)
class SimulatorOptions:
    """How the simulator draws latencies, reports generations and frames streams.

    `time_scale` multiplies every simulated latency (0 disables sleeping); `final_usage_form`
    picks which of OpenRouter's two final-usage-chunk shapes streams end with.
    """

    seed: int = 7
    time_scale: float = 1.0
    generation_lag_s: float = 0.5
    final_usage_form: str = "alternate"
    default_key_limit_usd: float | None = None
    # /generation also answers 404 to the first this-many lookups of each generation: its lag
    # counted in lookups rather than seconds, for tests that must not wait on the clock.
    generation_lag_lookups: int = 0
    # A repeated prompt prefix is read from the provider's cache at its lower price (prompt_cache.py).
    prompt_caching: bool = False
    latency: str = "uniform"  # how latencies are drawn: one of LATENCY_PROFILES

    def __post_init__(self) -> None:
        if self.time_scale < 0:
            raise ValueError("SimulatorOptions.time_scale must be >= 0")
        if self.generation_lag_s < 0:
            raise ValueError("SimulatorOptions.generation_lag_s must be >= 0")
        if self.generation_lag_lookups < 0:
            raise ValueError("SimulatorOptions.generation_lag_lookups must be >= 0")
        if self.latency not in LATENCY_PROFILES:
            raise ValueError(f"SimulatorOptions.latency must be one of {', '.join(LATENCY_PROFILES)}")
        if self.final_usage_form not in FINAL_USAGE_FORMS:
            raise ValueError(
                f"SimulatorOptions.final_usage_form must be one of {', '.join(FINAL_USAGE_FORMS)}"
            )
