"""The settings of lyra.toml as strict pydantic models: types, bounds and cross-references."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    field_validator,
    model_validator,
)

from lyra.catalog.models import TIERS, Catalog
from lyra.config.calibration import CalibrationSettings
from lyra.config.desk import ArbitrageSettings, ComplianceSettings, check_desk_references
from lyra.config.experiments import ExperimentSettings
from lyra.config.hedge import HedgeSettings
from lyra.config.portfolio import PortfolioSettings
from lyra.config.priority import Priority
from lyra.config.provider import ProviderSettings, alias_error, describe_ceiling, is_alias, price_excess
from lyra.config.stages import FINAL_PANEL, SIGNAL_PANEL, STAGES
from lyra.config.upstreams import UpstreamSettings, check_upstream_names, price_refusal, split_model
from lyra.days import parse_session
from lyra.errors import ConfigError, FailureKind
from lyra.failures import FailureAction
from lyra.redact import mask_optional_url, mask_url

TASKS = (
    "market_analysis",
    "signal_generation",
    "risk_assessment",
    "news_sentiment",
    "code_generation",
)
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_CADENCE = re.compile(r"^[1-9][0-9]*[smh]$")




def _exact(value: object) -> object:
    """A TOML integer is an exact amount too (200 -> Decimal(200)); a bool is not a number."""
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    return value


# Money and budget shares are exact decimals: TOML floats are parsed as Decimal, never as float.
# Anything past these bounds is a typo (or `inf`), not a budget: refused rather than trusted.
_MAX_USD = Decimal(1_000_000_000)
_MAX_NOTIONAL_USD = 1e12
_MAX_SECONDS = 7 * 86_400.0
_MAX_TOKENS = 10**15
_MAX_RATE = 10**9
Usd = Annotated[Decimal, BeforeValidator(_exact), Field(allow_inf_nan=False, le=_MAX_USD)]
Share = Annotated[Decimal, BeforeValidator(_exact), Field(allow_inf_nan=False, le=1)]
Seconds = Annotated[float, Field(ge=0, le=_MAX_SECONDS)]
Notional = Annotated[float, Field(ge=0, le=_MAX_NOTIONAL_USD)]
Tokens = Annotated[int, Field(gt=0, le=_MAX_TOKENS)]
Rate = Annotated[int, Field(gt=0, le=_MAX_RATE)]


class _Strict(BaseModel):
    # strict: a value of the wrong TOML type is refused, never coerced (true is not 1, "5" is not 5).
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


def check_http_url(value: str) -> str:
    """An http(s) URL with a host and a numeric port, or a ValueError that does not echo it."""
    example = "e.g. https://openrouter.ai/api/v1"
    if not value or any(c.isspace() or not c.isprintable() for c in value):
        raise ValueError(f"not an http(s) URL ({example})")
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        raise ValueError(f"not an http(s) URL: the port must be a number ({example})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL ({example})")
    if port == 0:
        raise ValueError(f"not an http(s) URL: port 0 ({example})")
    return value


class OpenRouterSettings(_Strict):
    base_url: str = "https://openrouter.ai/api/v1"
    app_title: str = Field("Lyra Trading System", max_length=200)
    app_url: str = "https://github.com/lyra-trading/lyra"

    @field_validator("base_url", "app_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_http_url(value)

    @field_validator("app_title")
    @classmethod
    def _title(cls, value: str) -> str:
        if not value.isprintable():
            raise ValueError("must be one line of printable text (it is sent as an HTTP header)")
        return value

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            yield name, mask_url(value) if name == "base_url" else value


class BudgetSettings(_Strict):
    daily_usd: Usd = Field(Decimal(200), gt=0)
    reserve_share: Share = Field(Decimal("0.10"), ge=0, lt=1)
    low_budget_usd: Usd = Field(Decimal(20), ge=0)
    low_budget_model: str = "openai/gpt-oss-20b:free"
    day_starts_utc_hour: int = Field(0, ge=0, le=23)
    # Tasks whose calls may spend the reserved slice (a risk check must never starve), and the tier
    # a tier steps down to when its own share runs low.
    privileged_tasks: list[str] = Field(default_factory=lambda: ["risk_assessment"])
    step_down: dict[str, str] = Field(default_factory=lambda: {"premium": "advanced", "advanced": "fast",
                                                              "specialized": "fast"})


class KeySettings(_Strict):
    purpose: str = ""
    env: str
    daily_usd: Usd = Field(gt=0)
    daily_tokens: Tokens

    @field_validator("env")
    @classmethod
    def _env_name(cls, value: str) -> str:
        # The value is never echoed: a key pasted here by mistake must not reach a terminal or a log.
        if not _ENV_NAME.match(value) or len(value) > 100:
            raise ValueError(
                "not an environment variable name (capitals, digits and _, e.g. LYRA_KEY_PREMIUM); "
                "name the variable here and put the key itself in that variable or in .env"
            )
        return value


class TierSettings(_Strict):
    models: list[str] = Field(min_length=1)
    keys: list[str] = Field(min_length=1)
    budget_share: Share = Field(ge=0, le=1)
    timeout_s: Seconds = Field(gt=0)
    selection: Literal["preference", "round_robin"] = "preference"
    # The tier's profile: OpenRouter provider preferences sent with each of its requests (the
    # privacy fields and max_price cannot be loosened by a caller) and the service tier asked for.
    provider: ProviderSettings | None = None
    service_tier: Literal["flex", "priority"] | None = None
    hedge: HedgeSettings | None = None  # None: the tier's default (lyra.config.hedge.tier_hedge)


class TaskSettings(_Strict):
    tier: str
    models: list[str] = Field(default_factory=list)
    keys: list[str] = Field(default_factory=list)
    cache_ttl_s: Seconds = 0
    max_tokens: Tokens = 600
    temperature: float = Field(0.2, ge=0, le=2)
    every: str = "on_demand"  # "30s", "1m", "5m", "1h", "before_trade" or "on_demand"
    symbols: list[str] = Field(default_factory=list)
    expected_prompt_tokens: Tokens = 500  # per call, for `lyra plan` before there is history
    expected_completion_tokens: Tokens = 200
    # Who is admitted first when a rate limit or the budget binds (lyra.config.priority); None: the
    # task's default (risk_assessment "high", code_generation "low", the rest "normal").
    priority: Priority | None = None

    @field_validator("every")
    @classmethod
    def _cadence(cls, value: str) -> str:
        return _check_cadence(value)


class ScheduleSettings(_Strict):
    """When `lyra live` runs and what `lyra plan` assumes about trades and monitoring."""

    # The trading day, "HH:MM-HH:MM" in UTC; one that ends before it starts runs overnight.
    session_utc: str = "00:00-24:00"
    trade_share: float = Field(0.2, ge=0, le=1)  # share of signal ticks that propose a trade
    proposed_notional_usd: Notional = Field(5_000, gt=0)
    final_panel: str = "trade"
    health_every: str = "15m"
    code_requests_per_day: int = Field(0, ge=0, le=_MAX_RATE)

    @field_validator("health_every")
    @classmethod
    def _cadence(cls, value: str) -> str:
        return _check_cadence(value, periodic=True)

    @field_validator("session_utc")
    @classmethod
    def _session(cls, value: str) -> str:
        parse_session(value)
        return value


def _check_cadence(value: str, *, periodic: bool = False) -> str:
    if (_CADENCE.match(value) and len(value) <= 8) or (
        not periodic and value in ("before_trade", "on_demand")
    ):
        return value
    events = "" if periodic else ', "before_trade" or "on_demand"'
    raise ValueError(f'{value!r} is not a cadence; use e.g. "30s", "5m", "1h"{events}')


class PanelMember(_Strict):
    model: str
    key: str
    weight: float = Field(gt=0, le=_MAX_RATE)


class PanelSettings(_Strict):
    rule: Literal["weighted", "confidence", "supermajority"] = "weighted"
    threshold: float = Field(0.75, gt=0, le=1)
    quorum: float = Field(0.5, ge=0, le=1)
    deadline_s: Seconds = Field(15, gt=0)
    task: str = "signal_generation"  # whose budget and cache rules the members' calls follow
    max_tokens: Tokens = 400
    members: list[PanelMember] = Field(min_length=1)
    # Escalation cascade: ask `escalate_from` (a cheaper panel) first and come to this one only
    # when it disagrees, is unsure, or the notional is at least `escalate_notional_usd`.
    escalate_from: str | None = None
    escalate_notional_usd: Notional = 10_000
    escalate_below_agreement: float = Field(0.5, ge=0, le=1)
    # "tuned": the cheap panel's calibrated stop, then the members one at a time with the sequential
    # stop (lyra.consensus.cascade, settings in [calibration]); "configured": the rule above.
    cascade: Literal["configured", "tuned"] = "configured"


class RetrySettings(_Strict):
    attempts_per_model: int = Field(3, ge=1, le=10)
    base_delay_s: Seconds = 0.25
    max_delay_s: Seconds = 8
    deadline_s: Seconds = Field(30, gt=0)
    breaker_failures: int = Field(5, ge=1, le=_MAX_RATE)
    breaker_cooldown_s: Seconds = 30
    # What to do about each kind of failed attempt, where the default table (lyra.failures) does not
    # suit: e.g. on_failure = { timeout = "raise" } to give up on a slow model at once.
    on_failure: dict[Annotated[FailureKind, Strict(False)], Annotated[FailureAction, Strict(False)]] = Field(
        default_factory=dict)


class LimitSettings(_Strict):
    """Token buckets. OpenRouter limits per account, so these mostly protect keys' partitions."""

    key_rpm: Rate = 6000
    key_tpm: Tokens = 20_000_000
    model_rpm: dict[str, Rate] = Field(default_factory=dict)
    free_rpm: Rate = 20
    free_rpd: Rate = 50
    # The share of every bucket that "normal" and "low" calls leave untouched, so that a risk check
    # or an emergency call finds a token at once in any process sharing the bucket (README).
    priority_headroom_share: float = Field(0.05, ge=0, lt=1)


class RiskSettings(_Strict):
    """Risk limits enforced in code; no model answer can lift them."""

    account_equity_usd: Notional = Field(100_000, gt=0)
    risk_per_trade: float = Field(0.01, gt=0, le=0.2)  # equity share lost if the ATR stop is hit
    atr_stop_multiple: float = Field(2.0, gt=0, le=100)
    max_position_share: float = Field(0.10, gt=0, le=1)  # of equity, per position
    daily_drawdown_halt: float = Field(0.05, gt=0, lt=1)  # halts new entries
    emergency_stop_loss: float = Field(0.03, gt=0, lt=1)  # adverse move that closes exposure
    premium_notional_usd: Notional = 10_000  # from here: premium tier and full panel
    # A backtest or `lyra run` fails (non-zero exit) when more than this share of its decisions had
    # a stage that failed (a budget refusal, an outage): its figures show the failures, not the models.
    max_failed_share: float = Field(0.10, ge=0, le=1)


class StateSettings(_Strict):
    # sqlite (the default) outlives the process and is shared by every Lyra process on the machine;
    # redis is shared across hosts; memory is one process only (tests, a single script).
    backend: Literal["memory", "sqlite", "redis"] = "sqlite"
    path: str | None = None  # sqlite file; default: state.db (state-sim.db when simulated), data folder
    prefix: str = "lyra:"  # redis key prefix


class LedgerSettings(_Strict):
    url: str | None = None
    enabled: bool = True
    # SQLite: "normal" survives a killed process; "full" also an OS crash or power loss, at an fsync
    # per group commit (BENCHMARKS.md).
    synchronous: Literal["normal", "full"] = "normal"

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else check_ledger_url(value)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        for name, value in super().__repr_args__():
            yield name, mask_optional_url(value) if name == "url" else value


def check_ledger_url(value: str) -> str:
    """A sqlite:/// or postgresql:// URL with a numeric port, or a ValueError that does not echo it."""
    check_url(value, ("sqlite", "postgresql", "postgres"), "database",
               "use sqlite:///path/to/ledger.db or postgresql://user@host:5432/db")
    return value


class ReconcileSettings(_Strict):
    """Asking OpenRouter's /generation what each attempt was billed (lyra.reconcile)."""

    enabled: bool = True
    # A warning is logged when billed spend differs from booked by more than this share of it.
    warn_drift_share: Share = Field(Decimal("0.02"), ge=0)
    first_delay_s: Seconds = 1.0  # /generation answers 404 for a while after the call
    max_delay_s: Seconds = 60.0
    lookups: int = Field(8, ge=1, le=50)  # tries per generation before it is left for `lyra reconcile`
    queue_size: int = Field(10_000, ge=1, le=1_000_000)
    workers: int = Field(4, ge=1, le=64)


class ClientSettings(_Strict):
    token_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    daily_usd: Usd = Field(gt=0)
    tiers: list[str] = Field(default_factory=lambda: list(TIERS))
    requests_per_min: int = Field(600, gt=0)
    # A client sees only its own usage, caps, report and decisions; an admin (an operator) sees all.
    role: Literal["client", "admin"] = "client"


class Settings(_Strict):
    """The whole of lyra.toml, validated."""

    openrouter: OpenRouterSettings = OpenRouterSettings()
    budget: BudgetSettings = BudgetSettings()
    keys: dict[str, KeySettings]
    tiers: dict[str, TierSettings]
    tasks: dict[str, TaskSettings]
    panels: dict[str, PanelSettings] = Field(default_factory=dict)
    retry: RetrySettings = RetrySettings()
    limits: LimitSettings = LimitSettings()
    risk: RiskSettings = RiskSettings()
    state: StateSettings = StateSettings()
    ledger: LedgerSettings = LedgerSettings()
    clients: dict[str, ClientSettings] = Field(default_factory=dict)
    schedule: ScheduleSettings = ScheduleSettings()
    reconcile: ReconcileSettings = ReconcileSettings()
    upstreams: dict[str, UpstreamSettings] = Field(default_factory=dict)  # lyra.config.upstreams
    calibration: CalibrationSettings = CalibrationSettings()
    portfolio: PortfolioSettings = PortfolioSettings()
    compliance: ComplianceSettings = ComplianceSettings()
    arbitrage: ArbitrageSettings = ArbitrageSettings()
    experiments: dict[str, ExperimentSettings] = Field(default_factory=dict)  # prompt variants under test

    @model_validator(mode="after")
    def _cross_references(self) -> Settings:
        for tier_name, tier in self.tiers.items():
            if tier_name not in TIERS:
                raise ValueError(f"tiers.{tier_name}: unknown tier; use one of {', '.join(TIERS)}")
            for i, key in enumerate(tier.keys):
                _known(key, self.keys, f"tiers.{tier_name}.keys[{i}]", "key")
        for task_name, task in self.tasks.items():
            _known(task.tier, self.tiers, f"tasks.{task_name}.tier", "tier")
            for i, key in enumerate(task.keys):
                _known(key, self.keys, f"tasks.{task_name}.keys[{i}]", "key")
        for panel_name, panel in self.panels.items():
            for i, member in enumerate(panel.members):
                _known(member.key, self.keys, f"panels.{panel_name}.members[{i}].key", "key")
            _known(panel.task, self.tasks, f"panels.{panel_name}.task", "task")
            if panel.escalate_from is not None:
                _known(panel.escalate_from, self.panels, f"panels.{panel_name}.escalate_from", "panel")
        _known(self.schedule.final_panel, self.panels or {"trade": None}, "schedule.final_panel", "panel")
        shares = sum(t.budget_share for t in self.tiers.values())
        if shares > 1:
            raise ValueError(f"tiers.*.budget_share: the shares add up to {shares:.2f}, more than 1")
        for client_name, client in self.clients.items():
            for i, tier_name in enumerate(client.tiers):
                _known(tier_name, self.tiers, f"clients.{client_name}.tiers[{i}]", "tier")
        for upper, lower in self.budget.step_down.items():
            for where, name in ((f"budget.step_down.{upper}", upper), (f"budget.step_down.{upper}", lower)):
                _known(name, dict.fromkeys(TIERS), where, "tier")
        for i, task_name in enumerate(self.budget.privileged_tasks):
            _known(task_name, {**dict.fromkeys(TASKS), **self.tasks}, f"budget.privileged_tasks[{i}]", "task")
        self._check_upstreams()
        arbitrage = self.arbitrage if "arbitrage" in self.model_fields_set else None  # checked when given
        check_desk_references(self.compliance, arbitrage, {"tiers": self.tiers, "tasks": self.tasks,
                                                           "keys": self.keys})
        return self

    def _check_upstreams(self) -> None:
        if not self.upstreams:
            return
        openrouter_keys = {f"tiers.{n}.keys": t.keys for n, t in self.tiers.items()}
        openrouter_keys.update({f"tasks.{n}.keys": t.keys for n, t in self.tasks.items()})
        check_upstream_names(self.upstreams, self.keys, openrouter_keys)
        for panel_name, panel in self.panels.items():
            for i, member in enumerate(panel.members):
                split = self.upstream_of(member.model)
                own = self.upstreams[split].keys if split is not None else []
                where = f"panels.{panel_name}.members[{i}].key"
                if split is None and any(member.key in u.keys for u in self.upstreams.values()):
                    raise ValueError(f"{where}: key {member.key!r} belongs to an upstream; "
                                     f"{member.model!r} is OpenRouter's, so name one of OpenRouter's keys")
                if own and member.key not in own:
                    raise ValueError(f"{where}: {member.model!r} is served by upstream {split!r}, whose keys "
                                     f"are {', '.join(own)}; name one of them")

    def upstream_of(self, model_id: str) -> str | None:
        """The upstream serving a `NAME:model-id`, or None for OpenRouter's own ids."""
        split = split_model(model_id, self.upstreams) if self.upstreams else None
        return split[0] if split is not None else None

    @model_validator(mode="after")
    def _exact_decision_ids(self) -> Settings:
        for where, model_id in self.decision_model_places():
            if is_alias(model_id):
                raise ValueError(alias_error(where, model_id))
        return self

    def decision_panels(self) -> list[str]:
        """The panels the decision pipeline asks, with the cheaper panels they escalate from."""
        found: list[str] = []
        todo = [SIGNAL_PANEL, FINAL_PANEL, self.schedule.final_panel]
        while todo:
            name = todo.pop(0)
            panel = self.panels.get(name)
            if panel is None or name in found:
                continue
            found.append(name)
            if panel.escalate_from is not None:
                todo.append(panel.escalate_from)
        return found

    def decision_tasks(self) -> list[str]:
        """The tasks the decision pipeline's stages and panels route by."""
        names = [s.task for s in STAGES if s.task is not None and s.panel is None]
        names += [self.panels[p].task for p in self.decision_panels()]
        return [n for n in dict.fromkeys(names) if n in self.tasks]

    def decision_tiers(self) -> list[str]:
        """The tiers that take part in trading decisions, and the tiers they step down to.

        The single-call stages' tiers (by tier or by task) and the decision panels' task tiers;
        a decision tier must name exact model ids.
        """
        found = [t for s in STAGES if s.panel is None and (t := s.routed_tier(self)) is not None]
        found += [self.tasks[t].tier for t in self.decision_tasks()]
        found = [t for t in dict.fromkeys(found) if t in self.tiers]
        for name in found:  # grows while it is walked: step-downs of step-downs
            lower = self.budget.step_down.get(name)
            if lower is not None and lower in self.tiers and lower not in found:
                found.append(lower)
        return found

    def decision_model_places(self) -> list[tuple[str, str]]:
        """Every (field, model id) a trading decision can be routed to."""
        places = [("budget.low_budget_model", self.budget.low_budget_model)]
        for name in self.decision_tiers():
            places += [(f"tiers.{name}.models[{i}]", m) for i, m in enumerate(self.tiers[name].models)]
        for name in self.decision_tasks():
            places += [(f"tasks.{name}.models[{i}]", m) for i, m in enumerate(self.tasks[name].models)]
        for name in self.decision_panels():
            places += [(f"panels.{name}.members[{i}].model", m.model)
                       for i, m in enumerate(self.panels[name].members)]
        return places

    def model_ids(self) -> set[str]:
        """Every OpenRouter model id the configuration names (not an upstream's `NAME:` ids: OpenRouter's
        listing, which these are checked against, does not know them)."""
        ids = {self.budget.low_budget_model}
        for tier in self.tiers.values():
            ids.update(tier.models)
        for task in self.tasks.values():
            ids.update(task.models)
        for panel in self.panels.values():
            ids.update(m.model for m in panel.members)
        return {m for m in ids if self.upstream_of(m) is None}

    def every_model_id(self) -> list[str]:
        """Every model id the configuration names, an upstream's `NAME:` ids included, each once."""
        ids = [self.budget.low_budget_model]
        for tier in self.tiers.values():
            ids += tier.models
        for task in self.tasks.values():
            ids += task.models
        for panel in self.panels.values():
            ids += [m.model for m in panel.members]
        return list(dict.fromkeys(ids))

    def check_models(self, catalog: Catalog, source: str, *, allow_retired: bool = False) -> None:
        """Refuse model ids the catalogue does not know (they could not be priced) or knows as retired.

        `allow_retired` lets `lyra models --check` load a config so as to name its retired ids.
        """
        places: list[tuple[str, str]] = [("budget.low_budget_model", self.budget.low_budget_model)]
        for name, tier in self.tiers.items():
            places += [(f"tiers.{name}.models[{i}]", m) for i, m in enumerate(tier.models)]
        for name, task in self.tasks.items():
            places += [(f"tasks.{name}.models[{i}]", m) for i, m in enumerate(task.models)]
        for name, panel in self.panels.items():
            places += [(f"panels.{name}.members[{i}].model", m.model) for i, m in enumerate(panel.members)]
        places += [(f"experiments.{name}.arms[{i}].models[{j}]", m) for name, e in self.experiments.items()
                   for i, arm in enumerate(e.arms) for j, m in enumerate(arm.models)]
        known = [m.id for m in catalog]
        for where, model_id in places:
            if self.upstream_of(model_id) is not None:
                refusal = price_refusal(model_id, self.upstreams)
                if refusal is not None:
                    raise ConfigError(f"{source}: {where}: {refusal}")
                continue
            found = catalog.find(model_id)
            if found is None:
                hint = did_you_mean(model_id, known)
                raise ConfigError(
                    f"{source}: {where}: unknown model {_shown(model_id)}{hint}; "
                    "use an id from `lyra models` (or `lyra models --refresh` for the full listing)"
                )
            if found.retired and not allow_retired:
                instead = (f"use {found.successor!r} instead" if found.successor
                           else "pick a current id from `lyra models`")
                raise ConfigError(f"{source}: {where}: {model_id!r} is retired (OpenRouter no longer "
                                  f"serves it); {instead}")
        self._check_ceilings(catalog, source)

    def _check_ceilings(self, catalog: Catalog, source: str) -> None:
        """Refuse a tier whose `provider.max_price` leaves none of its own models to try."""
        for name, tier in self.tiers.items():
            ceiling = tier.provider.max_price if tier.provider is not None else None
            if ceiling is None:
                continue
            over = {m: price_excess(info, ceiling) for m in tier.models
                    if (info := catalog.find(m)) is not None}
            if over and all(over.values()):
                first, why = next(iter(over.items()))
                raise ConfigError(
                    f"{source}: tiers.{name}.provider.max_price: every model of the tier costs more than "
                    f"{describe_ceiling(ceiling)} (USD per million tokens), e.g. {first}: {why}; "
                    "raise the ceiling or add a cheaper model")


def _known(name: str, table: Mapping[str, Any], where: str, what: str) -> None:
    if name not in table:
        raise ValueError(f"{where}: unknown {what} {_shown(name)}{did_you_mean(name, list(table))}")


_TOKEN_LIKE = re.compile(r"^(?=.*[0-9])[A-Za-z0-9_\-+=]{32,}$")


def _shown(value: str) -> str:
    """A name quoted for an error line, unless it is shaped like a pasted key (long, digits, no / or .)."""
    return "(value not shown: it looks like a key)" if _TOKEN_LIKE.match(value) else repr(value)


def did_you_mean(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_url(value: str, schemes: tuple[str, ...], what: str, fix: str) -> None:
    """A ValueError, which does not echo the URL, unless it has one of `schemes` and a numeric port."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        raise ValueError(f"the port must be a number from 1 to 65535; {fix}") from None
    if parts.scheme.split("+", 1)[0] not in schemes or any(c.isspace() for c in value):
        raise ValueError(f"not a {what} URL; {fix}")
