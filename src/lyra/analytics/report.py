"""The report's values: per model, key, day and month, signals, agreement, caps and advice."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from decimal import Decimal
from typing import Any

from lyra.analytics.accounts import AccountLine, accounts_section
from lyra.analytics.drift import CostDrift
from lyra.analytics.window import Window
from lyra.money import nanos_to_usd


def usd(nanos: int | None) -> Decimal | None:
    """Nano-dollars as an exact USD Decimal for display and JSON; sums stay in integer nanos."""
    return None if nanos is None else nanos_to_usd(nanos)


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelStats:
    """One served model over the window: outcomes, latency of successful requests and spend."""

    model: str
    tier: str
    requests: int
    errors: int
    attempts: int
    attempt_errors: int
    cached: int
    cost_nanos: int
    tokens: int
    avg_latency_ms: float | None
    p50_latency_ms: float | None
    p95_latency_ms: float | None
    refused: int = 0  # failed requests a budget cap refused before the model was asked (in `errors`)

    @property
    def reached(self) -> int:
        """Requests that reached the model: all but the budget's refusals."""
        return self.requests - self.refused

    @property
    def failures(self) -> int:
        """The model's own failures: failed requests less the budget's refusals."""
        return self.errors - self.refused

    @property
    def error_rate(self) -> float:
        """The model's failures over the requests that reached it (a budget refusal is no failure)."""
        return self.failures / self.reached if self.reached else 0.0

    @property
    def success_rate(self) -> float:
        return 1.0 - self.error_rate if self.reached else 0.0

    @property
    def cost_per_request_nanos(self) -> int:
        return self.cost_nanos // self.reached if self.reached else 0

    @property
    def cache_hit_rate(self) -> float | None:
        return self.cached / self.reached if self.reached else None


@dataclass(frozen=True, slots=True, kw_only=True)
class KeyStats:
    """One key: its attempts and their failures, spend, and today's use of its caps."""

    key: str
    attempts: int
    attempt_errors: int
    cost_nanos: int
    tokens: int
    today_spent_nanos: int | None = None
    cap_nanos: int | None = None
    today_tokens: int | None = None
    cap_tokens: int | None = None

    @property
    def error_rate(self) -> float:
        return self.attempt_errors / self.attempts if self.attempts else 0.0

    @property
    def utilisation(self) -> float | None:
        """Today's spend as a share of the key's daily $ cap."""
        if self.cap_nanos is None or self.today_spent_nanos is None or not self.cap_nanos:
            return None
        return self.today_spent_nanos / self.cap_nanos

    @property
    def token_utilisation(self) -> float | None:
        """Today's tokens as a share of the key's daily token cap (tokens over tokens, never dollars)."""
        if self.cap_tokens is None or self.today_tokens is None or not self.cap_tokens:
            return None
        return self.today_tokens / self.cap_tokens


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientStats:
    """One gateway client: its requests, refusals and spend over the window, and today's use of its cap."""

    client: str
    requests: int
    errors: int
    refused: int
    cost_nanos: int
    tokens: int
    today_spent_nanos: int | None = None
    today_reserved_nanos: int | None = None
    cap_nanos: int | None = None

    @property
    def utilisation(self) -> float | None:
        """Today's spend and holds as a share of the client's daily $ cap."""
        if not self.cap_nanos or self.today_spent_nanos is None:
            return None
        return (self.today_spent_nanos + (self.today_reserved_nanos or 0)) / self.cap_nanos


@dataclass(frozen=True, slots=True)
class Spend:
    """Spend and requests of one UTC hour ("2025-01-31T14:00Z"), day ("2025-01-31") or month."""

    period: str
    cost_nanos: int
    requests: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Signals:
    """Trading decisions in the window; BUY and SELL are signals, HOLD is not."""

    decisions: int
    signals: int
    decision_cost_nanos: int
    spend_nanos: int

    @property
    def spend_per_signal_nanos(self) -> int | None:
        """All AI spend in the window divided by the signals it produced."""
        return self.spend_nanos // self.signals if self.signals else None

    @property
    def decision_cost_per_signal_nanos(self) -> int | None:
        """What the decision pipeline itself cost, per signal."""
        return self.decision_cost_nanos // self.signals if self.signals else None


@dataclass(frozen=True, slots=True, kw_only=True)
class Agreement:
    """How much panels agreed: their mean agreement, and how often each model voted with the outcome."""

    panels: int
    mean_agreement: float | None
    by_model: dict[str, float] = field(default_factory=dict)
    votes_by_model: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Cap:
    """One of today's budget caps: global, tier:<name>, key:<name>, key_tokens:<name>, client:<name>."""

    name: str
    unit: str
    limit: int
    spent: int
    reserved: int

    def to_dict(self) -> dict[str, Any]:
        def amount(value: int) -> Decimal | int:
            return nanos_to_usd(value) if self.unit == "usd" else value

        return {"name": self.name, "unit": self.unit, "limit": amount(self.limit),
                "spent": amount(self.spent), "reserved": amount(self.reserved),
                "used_share": round((self.spent + self.reserved) / self.limit, 4) if self.limit else None}


@dataclass(frozen=True, slots=True)
class Advice:
    """A model that does worse than its tier's peers, and why, as sentences."""

    model: str
    tier: str
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class DecisionView:
    """A recent decision with the votes behind it, for the dashboard."""

    seq: int
    ts: float
    symbol: str | None
    action: str | None
    cost_nanos: int
    agreement: float | None
    votes: list[dict[str, Any]]
    decision_id: str | None = None  # the audit record's id; `seq` is its place in the hash chain
    audit_hash: str | None = None
    bar_time: str | None = None  # the time of the bar decided on, as the decision recorded it
    price: float | None = None
    notional_usd: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Report:
    """Every KPI of one window, with to_dict() for JSON, the dashboard and the HTML file."""

    window: Window
    generated_ts: float
    requests: int
    errors: int
    cost_nanos: int
    models: list[ModelStats]
    keys: list[KeyStats]
    days: list[Spend]
    months: list[Spend]
    signals: Signals
    agreement: Agreement
    caps: list[Cap]
    advice: list[Advice]
    decisions: list[DecisionView]
    simulated: bool = False  # the simulator's money (no key set), kept apart from real money
    client: str | None = None  # one gateway client's own report; None: the whole desk's
    accounts: list[AccountLine] = field(default_factory=list)  # paper accounts, as stored now
    cost_drift: CostDrift | None = None  # booked vs billed (GET /generation); None for a client
    clients: list[ClientStats] = field(default_factory=list)  # an operator: every client; a client: itself
    breakers: dict[str, str] = field(default_factory=dict)  # model: open / half-open / closed (an operator's)
    hours: list[Spend] = field(default_factory=list)  # the intraday series: spend and requests per UTC hour
    alerts: list[str] = field(default_factory=list)

    @property
    def success_rate(self) -> float | None:
        return 1 - self.errors / self.requests if self.requests else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "object": "report",
            "money": "simulated" if self.simulated else "real",
            "client": self.client,  # whose report this is; null: every client's (an operator's view)
            "window": {"start_ts": self.window.start_ts, "end_ts": self.window.end_ts,
                       "label": self.window.label},
            "generated_ts": self.generated_ts,
            "totals": {"requests": self.requests, "errors": self.errors, "success_rate": self.success_rate,
                       "cost_nanos": self.cost_nanos, "cost_usd": usd(self.cost_nanos),
                       "refused": self.refused, "model_failures": self.errors - self.refused,
                       "cached": self.cached, "cache_hit_rate": self.cache_hit_rate},
            "models": [_model(m) for m in self.models],
            "keys": [_key(k) for k in self.keys],
            "days": [_spend(s) for s in self.days],
            "months": [_spend(s) for s in self.months],
            "signals": _signals(self.signals),
            "agreement": asdict(self.agreement),
            "budget": [c.to_dict() for c in self.caps],
            "advice": [{"model": a.model, "tier": a.tier, "reasons": list(a.reasons)} for a in self.advice],
            "decisions": [asdict(d) | {"cost_usd": usd(d.cost_nanos)} for d in self.decisions],
            "paper_accounts": accounts_section(self.accounts),  # as they stand now, whatever the window
            "cost_drift": None if self.cost_drift is None else self.cost_drift.to_dict(),
            "clients": [_client(c) for c in self.clients],
            "breakers": dict(self.breakers),
            "alerts": list(self.alerts),
            "hours": [_spend(s) for s in self.hours],
        }

    @property
    def refused(self) -> int:
        """Requests a budget cap refused (counted in `errors`, but no model's failure)."""
        return sum(m.refused for m in self.models)

    @property
    def cached(self) -> int:
        return sum(m.cached for m in self.models)

    @property
    def cache_hit_rate(self) -> float | None:
        """Requests answered from the cache, over those that were not refused."""
        reached = self.requests - self.refused
        return round(self.cached / reached, 4) if reached > 0 else None


def _model(m: ModelStats) -> dict[str, Any]:
    return asdict(m) | {"error_rate": round(m.error_rate, 4), "success_rate": round(m.success_rate, 4),
                        "cost_usd": usd(m.cost_nanos),
                        "cost_per_request_usd": usd(m.cost_per_request_nanos),
                        "model_failures": m.failures,
                        "cache_hit_rate": None if m.cache_hit_rate is None else round(m.cache_hit_rate, 4)}


def _key(k: KeyStats) -> dict[str, Any]:
    util, tokens = k.utilisation, k.token_utilisation
    return asdict(k) | {"error_rate": round(k.error_rate, 4), "cost_usd": usd(k.cost_nanos),
                        "utilisation": None if util is None else round(util, 4),
                        "today_spent_usd": usd(k.today_spent_nanos), "cap_usd": usd(k.cap_nanos),
                        "token_utilisation": None if tokens is None else round(tokens, 4)}


def _client(c: ClientStats) -> dict[str, Any]:
    util = c.utilisation
    return asdict(c) | {"cost_usd": usd(c.cost_nanos), "model_failures": c.errors - c.refused,
                        "today_spent_usd": usd(c.today_spent_nanos),
                        "today_reserved_usd": usd(c.today_reserved_nanos), "cap_usd": usd(c.cap_nanos),
                        "utilisation": None if util is None else round(util, 4)}


def _spend(s: Spend) -> dict[str, Any]:
    return {"period": s.period, "cost_nanos": s.cost_nanos, "cost_usd": usd(s.cost_nanos),
            "requests": s.requests}


def _signals(s: Signals) -> dict[str, Any]:
    return asdict(s) | {"spend_per_signal_usd": usd(s.spend_per_signal_nanos),
                        "decision_cost_per_signal_usd": usd(s.decision_cost_per_signal_nanos)}
