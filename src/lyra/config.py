"""Typed settings loaded from lyra.toml and the environment; secrets come only from the environment."""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lyra.catalog import TIERS, Catalog
from lyra.errors import ConfigError

TASKS = (
    "market_analysis",
    "signal_generation",
    "risk_assessment",
    "news_sentiment",
    "code_generation",
)
_SECRET_FIELD = re.compile(r"(api_?key|secret|password|bearer)", re.IGNORECASE)
_SECRET_VALUE = re.compile(r"^(sk-or-|sk-)[A-Za-z0-9_\-]{8,}")
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_CADENCE = re.compile(r"^[1-9][0-9]*[smh]$")


# Money and budget shares are exact decimals: TOML floats are parsed as Decimal, never as float.
_MAX_USD = Decimal(1_000_000_000)
Usd = Annotated[Decimal, Field(allow_inf_nan=False, le=_MAX_USD)]
Share = Annotated[Decimal, Field(allow_inf_nan=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OpenRouterSettings(_Strict):
    base_url: str = "https://openrouter.ai/api/v1"
    app_title: str = "Lyra Trading System"
    app_url: str = "https://github.com/lyra-trading/lyra"


class BudgetSettings(_Strict):
    daily_usd: Usd = Field(Decimal(200), gt=0)
    reserve_share: Share = Field(Decimal("0.10"), ge=0, lt=1)
    low_budget_usd: Usd = Field(Decimal(20), ge=0)
    low_budget_model: str = "openai/gpt-oss-20b:free"
    day_starts_utc_hour: int = Field(0, ge=0, le=23)


class KeySettings(_Strict):
    purpose: str = ""
    env: str
    daily_usd: Usd = Field(gt=0)
    daily_tokens: int = Field(gt=0)


class TierSettings(_Strict):
    models: list[str] = Field(min_length=1)
    keys: list[str] = Field(min_length=1)
    budget_share: Share = Field(ge=0, le=1)
    timeout_s: float = Field(gt=0)
    selection: Literal["preference", "round_robin"] = "preference"


class TaskSettings(_Strict):
    tier: str
    models: list[str] = Field(default_factory=list)
    keys: list[str] = Field(default_factory=list)
    cache_ttl_s: float = Field(0, ge=0)
    max_tokens: int = Field(600, gt=0)
    temperature: float = Field(0.2, ge=0, le=2)
    every: str = "on_demand"  # "30s", "1m", "5m", "1h", "before_trade" or "on_demand"
    symbols: list[str] = Field(default_factory=list)
    expected_prompt_tokens: int = Field(500, gt=0)  # per call, for `lyra plan` before there is history
    expected_completion_tokens: int = Field(200, gt=0)

    @field_validator("every")
    @classmethod
    def _cadence(cls, value: str) -> str:
        return _check_cadence(value)


class ScheduleSettings(_Strict):
    """When `lyra live` runs and what `lyra plan` assumes about trades and monitoring."""

    session_utc: str = Field("00:00-24:00", pattern=r"^\d\d:\d\d-\d\d:\d\d$")  # the trading day
    trade_share: float = Field(0.2, ge=0, le=1)  # share of signal ticks that propose a trade
    proposed_notional_usd: float = Field(5_000, gt=0)
    final_panel: str = "trade"
    health_every: str = "15m"
    code_requests_per_day: int = Field(0, ge=0)

    @field_validator("health_every")
    @classmethod
    def _cadence(cls, value: str) -> str:
        return _check_cadence(value, periodic=True)


def _check_cadence(value: str, *, periodic: bool = False) -> str:
    if _CADENCE.match(value) or (not periodic and value in ("before_trade", "on_demand")):
        return value
    events = "" if periodic else ', "before_trade" or "on_demand"'
    raise ValueError(f'{value!r} is not a cadence; use e.g. "30s", "5m", "1h"{events}')


class PanelMember(_Strict):
    model: str
    key: str
    weight: float = Field(gt=0)


class PanelSettings(_Strict):
    rule: Literal["weighted", "confidence", "supermajority"] = "weighted"
    threshold: float = Field(0.75, gt=0, le=1)
    quorum: float = Field(0.5, ge=0, le=1)
    deadline_s: float = Field(15, gt=0)
    task: str = "signal_generation"  # whose budget and cache rules the members' calls follow
    max_tokens: int = Field(400, gt=0)
    members: list[PanelMember] = Field(min_length=1)
    # Escalation cascade: ask `escalate_from` (a cheaper panel) first and come to this one only
    # when it disagrees, is unsure, or the notional is at least `escalate_notional_usd`.
    escalate_from: str | None = None
    escalate_notional_usd: float = Field(10_000, ge=0)
    escalate_below_agreement: float = Field(0.5, ge=0, le=1)


class RetrySettings(_Strict):
    attempts_per_model: int = Field(3, ge=1, le=10)
    base_delay_s: float = Field(0.25, ge=0)
    max_delay_s: float = Field(8, ge=0)
    deadline_s: float = Field(30, gt=0)
    breaker_failures: int = Field(5, ge=1)
    breaker_cooldown_s: float = Field(30, ge=0)


class LimitSettings(_Strict):
    """Token buckets. OpenRouter limits per account, so these mostly protect keys' partitions."""

    key_rpm: int = Field(6000, gt=0)
    key_tpm: int = Field(20_000_000, gt=0)
    model_rpm: dict[str, int] = Field(default_factory=dict)
    free_rpm: int = Field(20, gt=0)
    free_rpd: int = Field(50, gt=0)


class RiskSettings(_Strict):
    """Risk limits enforced in code; no model answer can lift them."""

    account_equity_usd: float = Field(100_000, gt=0)
    risk_per_trade: float = Field(0.01, gt=0, le=0.2)  # equity share lost if the ATR stop is hit
    atr_stop_multiple: float = Field(2.0, gt=0)
    max_position_share: float = Field(0.10, gt=0, le=1)  # of equity, per position
    daily_drawdown_halt: float = Field(0.05, gt=0, lt=1)  # halts new entries
    emergency_stop_loss: float = Field(0.03, gt=0, lt=1)  # adverse move that closes exposure
    premium_notional_usd: float = Field(10_000, ge=0)  # from here: premium tier and full panel


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
        for key_name, key_settings in self.keys.items():
            if not _ENV_NAME.match(key_settings.env):
                raise ValueError(
                    f"keys.{key_name}.env: {key_settings.env!r} is not an environment variable name"
                )
        shares = sum(t.budget_share for t in self.tiers.values())
        if shares > 1:
            raise ValueError(f"tiers.*.budget_share: the shares add up to {shares:.2f}, more than 1")
        for client_name, client in self.clients.items():
            for i, tier_name in enumerate(client.tiers):
                _known(tier_name, self.tiers, f"clients.{client_name}.tiers[{i}]", "tier")
        return self

    def model_ids(self) -> set[str]:
        """Every model id the configuration names."""
        ids = {self.budget.low_budget_model}
        for tier in self.tiers.values():
            ids.update(tier.models)
        for task in self.tasks.values():
            ids.update(task.models)
        for panel in self.panels.values():
            ids.update(m.model for m in panel.members)
        return ids

    def check_models(self, catalog: Catalog, source: str) -> None:
        """Refuse model ids the catalogue does not know (they could not be priced)."""
        places: list[tuple[str, str]] = [("budget.low_budget_model", self.budget.low_budget_model)]
        for name, tier in self.tiers.items():
            places += [(f"tiers.{name}.models[{i}]", m) for i, m in enumerate(tier.models)]
        for name, task in self.tasks.items():
            places += [(f"tasks.{name}.models[{i}]", m) for i, m in enumerate(task.models)]
        for name, panel in self.panels.items():
            places += [(f"panels.{name}.members[{i}].model", m.model) for i, m in enumerate(panel.members)]
        known = [m.id for m in catalog]
        for where, model_id in places:
            if model_id not in catalog:
                hint = _did_you_mean(model_id, known)
                raise ConfigError(
                    f"{source}: {where}: unknown model {model_id!r}{hint}; "
                    "use an id from `lyra models` (or `lyra models --refresh` for the full listing)"
                )


def _known(name: str, table: Mapping[str, Any], where: str, what: str) -> None:
    if name not in table:
        raise ValueError(f"{where}: unknown {what} {name!r}{_did_you_mean(name, list(table))}")


def _did_you_mean(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


@dataclass(frozen=True, slots=True)
class Secret:
    """An API key that never shows itself in a repr, a str or a log line."""

    _value: str

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    """Settings plus what came from the environment: the secrets and where the file was."""

    settings: Settings
    source: str
    secrets: dict[str, Secret]
    ledger_url: str | None = None  # LYRA_LEDGER_URL, else [ledger] url, else the default file
    redis_url: str | None = None  # LYRA_REDIS_URL

    @property
    def simulated(self) -> bool:
        """True when no key is set, so Lyra runs against its built-in simulator."""
        return not self.secrets


def example_config_text() -> str:
    """The example configuration shipped with Lyra."""
    return resources.files("lyra").joinpath("data/lyra.example.toml").read_text("utf-8")


def load_config(
    path: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    catalog: Catalog | None = None,
) -> LoadedConfig:
    """Load lyra.toml (or the shipped example) and the key secrets from the environment."""
    if path is None:
        text, source, folder = example_config_text(), "lyra.example.toml", Path.cwd()
    else:
        file = Path(path)
        try:
            text = file.read_text("utf-8")
        except FileNotFoundError as exc:
            raise ConfigError(f"{file}: no such file; copy lyra.example.toml to start one") from exc
        except OSError as exc:
            raise ConfigError(f"{file}: cannot read it ({exc.strerror})") from exc
        source, folder = str(file), file.resolve().parent
    settings = parse_settings(text, source)
    if catalog is not None:
        settings.check_models(catalog, source)
    env = dict(environ) if environ is not None else _environment(folder)
    if base := env.get("LYRA_OPENROUTER_BASE_URL"):
        settings = settings.model_copy(
            update={"openrouter": settings.openrouter.model_copy(update={"base_url": base})}
        )
    return LoadedConfig(
        settings=settings, source=source, secrets=_secrets(settings, env, source),
        ledger_url=env.get("LYRA_LEDGER_URL") or settings.ledger.url, redis_url=env.get("LYRA_REDIS_URL"),
    )


def parse_settings(text: str, source: str) -> Settings:
    """Validate TOML text into Settings; every error is one line naming the field."""
    try:
        raw = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    _refuse_secrets(raw, source, "")
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_first_error(exc)}") from None


def _refuse_secrets(node: Any, source: str, where: str) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{where}.{key}" if where else str(key)
            if _SECRET_FIELD.search(str(key)) and key != "token_sha256":
                raise ConfigError(
                    f"{source}: {here}: secrets do not belong in the file; put the key in the "
                    "environment variable named by `env` (or in .env) and delete this line"
                )
            _refuse_secrets(value, source, here)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            _refuse_secrets(value, source, f"{where}[{i}]")
    elif isinstance(node, str) and _SECRET_VALUE.match(node):
        raise ConfigError(
            f"{source}: {where}: this looks like an API key; secrets belong in the environment "
            "(LYRA_KEY_<NAME> or OPENROUTER_API_KEY), not in the file"
        )


def _first_error(exc: ValidationError) -> str:
    found = exc.errors()
    # A misspelt field also shows as the real one missing; the misspelling is the useful line.
    err = next((e for e in found if e["type"] == "extra_forbidden"), found[0])
    where = ".".join(str(p) for p in err["loc"]) or "(top level)"
    if err["type"] == "extra_forbidden":
        field = str(err["loc"][-1])
        return f"{where}: unknown field{_did_you_mean(field, _fields_at(err['loc']))}; remove or rename it"
    if err["type"] == "missing":
        return f"{where}: required field is missing"
    message = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "value_error" and not err["loc"]:
        return message
    return f"{where}: {message}"


def _fields_at(loc: tuple[int | str, ...]) -> list[str]:
    model: Any = Settings
    for part in loc[:-1]:
        fields = getattr(model, "model_fields", None)
        if fields is None:
            continue
        if part in fields:
            annotation = fields[part].annotation
            args = getattr(annotation, "__args__", ())
            model = args[-1] if args else annotation
    fields = getattr(model, "model_fields", {})
    return list(fields)


def _environment(folder: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for candidate in (Path.cwd() / ".env", folder / ".env"):
        if candidate.is_file():
            from dotenv import dotenv_values

            env.update({k: v for k, v in dotenv_values(candidate).items() if v is not None})
    env.update(os.environ)
    return env


def _secrets(settings: Settings, env: Mapping[str, str], source: str) -> dict[str, Secret]:
    shared = env.get("OPENROUTER_API_KEY", "").strip()
    found = {name: env.get(key.env, "").strip() or shared for name, key in settings.keys.items()}
    if not any(found.values()):
        return {}
    missing = [name for name, value in found.items() if not value]
    if missing:
        name = missing[0]
        raise ConfigError(
            f"{source}: keys.{name}: environment variable {settings.keys[name].env} is not set; "
            "set it, set OPENROUTER_API_KEY to use one key for every name, or remove the key"
        )
    return {name: Secret(value) for name, value in found.items()}
