"""Typed settings loaded from lyra.toml and the environment; secrets come only from the environment."""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from lyra.catalog import TIERS, Catalog
from lyra.errors import ConfigError
from lyra.redact import mask_optional_url, mask_url
from lyra.schedule import parse_session

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


CONFIG_ENV = "LYRA_CONFIG"
CONFIG_FILE = "lyra.toml"
BASE_URL_ENV = "LYRA_OPENROUTER_BASE_URL"
LEDGER_URL_ENV = "LYRA_LEDGER_URL"
REDIS_URL_ENV = "LYRA_REDIS_URL"


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


class RetrySettings(_Strict):
    attempts_per_model: int = Field(3, ge=1, le=10)
    base_delay_s: Seconds = 0.25
    max_delay_s: Seconds = 8
    deadline_s: Seconds = Field(30, gt=0)
    breaker_failures: int = Field(5, ge=1, le=_MAX_RATE)
    breaker_cooldown_s: Seconds = 30


class LimitSettings(_Strict):
    """Token buckets. OpenRouter limits per account, so these mostly protect keys' partitions."""

    key_rpm: Rate = 6000
    key_tpm: Tokens = 20_000_000
    model_rpm: dict[str, Rate] = Field(default_factory=dict)
    free_rpm: Rate = 20
    free_rpd: Rate = 50


class RiskSettings(_Strict):
    """Risk limits enforced in code; no model answer can lift them."""

    account_equity_usd: Notional = Field(100_000, gt=0)
    risk_per_trade: float = Field(0.01, gt=0, le=0.2)  # equity share lost if the ATR stop is hit
    atr_stop_multiple: float = Field(2.0, gt=0, le=100)
    max_position_share: float = Field(0.10, gt=0, le=1)  # of equity, per position
    daily_drawdown_halt: float = Field(0.05, gt=0, lt=1)  # halts new entries
    emergency_stop_loss: float = Field(0.03, gt=0, lt=1)  # adverse move that closes exposure
    premium_notional_usd: Notional = 10_000  # from here: premium tier and full panel


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
    _check_url(value, ("sqlite", "postgresql", "postgres"), "database",
               "use sqlite:///path/to/ledger.db or postgresql://user@host:5432/db")
    return value


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
        known = [m.id for m in catalog]
        for where, model_id in places:
            found = catalog.find(model_id)
            if found is None:
                hint = _did_you_mean(model_id, known)
                raise ConfigError(
                    f"{source}: {where}: unknown model {_shown(model_id)}{hint}; "
                    "use an id from `lyra models` (or `lyra models --refresh` for the full listing)"
                )
            if found.retired and not allow_retired:
                instead = (f"use {found.successor!r} instead" if found.successor
                           else "pick a current id from `lyra models`")
                raise ConfigError(f"{source}: {where}: {model_id!r} is retired (OpenRouter no longer "
                                  f"serves it); {instead}")


def _known(name: str, table: Mapping[str, Any], where: str, what: str) -> None:
    if name not in table:
        raise ValueError(f"{where}: unknown {what} {_shown(name)}{_did_you_mean(name, list(table))}")


_TOKEN_LIKE = re.compile(r"^(?=.*[0-9])[A-Za-z0-9_\-+=]{32,}$")


def _shown(value: str) -> str:
    """A name quoted for an error line, unless it is shaped like a pasted key (long, digits, no / or .)."""
    return "(value not shown: it looks like a key)" if _TOKEN_LIKE.match(value) else repr(value)


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
    # Where each URL came from, for error lines: "LYRA_LEDGER_URL" or "lyra.toml: ledger.url".
    ledger_url_origin: str = ""
    redis_url_origin: str = REDIS_URL_ENV

    @property
    def simulated(self) -> bool:
        """True when no key is set, so Lyra runs against its built-in simulator."""
        return not self.secrets

    def __repr__(self) -> str:
        return (f"LoadedConfig(source={self.source!r}, keys={sorted(self.settings.keys)}, "
                f"secrets={self.secrets!r}, ledger_url={mask_optional_url(self.ledger_url)!r}, "
                f"redis_url={mask_optional_url(self.redis_url)!r}, settings={self.settings!r})")

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class ConfigChoice:
    """Which configuration file a command uses and why; `path` None is the shipped example."""

    path: Path | None
    reason: str  # "given with --config", "from LYRA_CONFIG", "found in the current folder", ...

    @property
    def source(self) -> str:
        """The name error lines start with."""
        return str(self.path) if self.path is not None else "lyra.example.toml"

    def describe(self) -> str:
        """One line for stderr, e.g. `config: /home/me/desk/lyra.toml (found in the current folder)`."""
        return f"config: {self.source} ({self.reason})"


def find_config(
    given: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> ConfigChoice:
    """The configuration to use: `given` (--config), else $LYRA_CONFIG, else ./lyra.toml, else the example.

    Every command and `Lyra.from_config(None)` go through this one order.
    """
    env = os.environ if environ is None else environ
    here = cwd or Path.cwd()
    if given is not None and str(given) != "":
        return ConfigChoice(Path(given), "given with --config")
    if named := env.get(CONFIG_ENV, "").strip():
        return ConfigChoice(Path(named), f"from {CONFIG_ENV}")
    local = here / CONFIG_FILE
    if local.is_file():
        return ConfigChoice(local, "found in the current folder")
    return ConfigChoice(None, f"the shipped example; no --config, {CONFIG_ENV} or ./{CONFIG_FILE}")


def example_config_text() -> str:
    """The example configuration shipped with Lyra."""
    return resources.files("lyra").joinpath("data/lyra.example.toml").read_text("utf-8")


def load_config(
    path: str | Path | ConfigChoice | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    catalog: Catalog | None = None,
) -> LoadedConfig:
    """Load lyra.toml and the key secrets from the environment.

    With no path, the file is found as every command finds it (see `find_config`): $LYRA_CONFIG,
    then ./lyra.toml, then the shipped example.
    """
    choice = path if isinstance(path, ConfigChoice) else find_config(path, environ=environ)
    if choice.path is None:
        text, source, folder = example_config_text(), choice.source, Path.cwd()
    else:
        file = choice.path
        text = read_config_text(file, choice.reason)
        source, folder = str(file), file.resolve().parent
    settings = parse_settings(text, source)
    if catalog is not None:
        settings.check_models(catalog, source)
    env = dict(environ) if environ is not None else _environment(folder)
    if base := env.get(BASE_URL_ENV):
        try:
            check_http_url(base)
        except ValueError as exc:
            raise ConfigError(f"{BASE_URL_ENV}: {exc}; fix or unset it") from None
        settings = settings.model_copy(
            update={"openrouter": settings.openrouter.model_copy(update={"base_url": base})}
        )
    ledger_url, ledger_origin = _ledger_url(settings, env, source)
    redis_url = env.get(REDIS_URL_ENV) or None
    if redis_url is not None:
        _check_redis_url(redis_url)
    return LoadedConfig(
        settings=settings, source=source, secrets=_secrets(settings, env, source),
        ledger_url=ledger_url, redis_url=redis_url, ledger_url_origin=ledger_origin,
    )


def _ledger_url(settings: Settings, env: Mapping[str, str], source: str) -> tuple[str | None, str]:
    if from_env := env.get(LEDGER_URL_ENV):
        try:
            check_ledger_url(from_env)
        except ValueError as exc:
            raise ConfigError(f"{LEDGER_URL_ENV}: {exc}; fix or unset it") from None
        return from_env, LEDGER_URL_ENV
    if settings.ledger.url:
        return settings.ledger.url, f"{source}: ledger.url"
    return None, "the default ledger file"


def _check_redis_url(url: str) -> None:
    try:
        _check_url(url, ("redis", "rediss", "unix"), "Redis",
                   "use redis://host:6379/0 (or rediss:// for TLS); fix or unset it")
    except ValueError as exc:
        raise ConfigError(f"{REDIS_URL_ENV}: {exc}") from None


def _check_url(value: str, schemes: tuple[str, ...], what: str, fix: str) -> None:
    """A ValueError, which does not echo the URL, unless it has one of `schemes` and a numeric port."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - parsing the port is the check
    except ValueError:
        raise ValueError(f"the port must be a number from 1 to 65535; {fix}") from None
    if parts.scheme.split("+", 1)[0] not in schemes or any(c.isspace() for c in value):
        raise ValueError(f"not a {what} URL; {fix}")


def read_config_text(file: Path, reason: str = "") -> str:
    """The text of a configuration file, or one line saying why it cannot be used."""
    named = f" ({reason})" if reason and reason != "given with --config" else ""
    try:
        data = file.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{file}: no such file{named}; copy lyra.example.toml to start one") from None
    except IsADirectoryError:
        raise ConfigError(f"{file}: is a folder, not a file{named}; name the lyra.toml inside it") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read it ({exc.strerror}){named}") from None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ConfigError(f"{file}: the file is UTF-16; save it as UTF-8")
    if b"\x00" in data:
        raise ConfigError(f"{file}: not a text file (it holds NUL bytes); a lyra.toml is UTF-8 TOML text")
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{file}: not UTF-8 text (byte {exc.start} is not); save it as UTF-8") from None


def parse_settings(text: str, source: str) -> Settings:
    """Validate TOML text into Settings; every error is one line naming the field."""
    try:
        raw = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {_one_line(str(exc))}") from None
    _refuse_secrets(raw, source, "")
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {_first_error(exc)}") from None


def _one_line(text: str) -> str:
    return " ".join(text.split())


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


# What each pydantic type error expected, in TOML's words.
_EXPECTED = {
    "float_type": "a number", "float_parsing": "a number", "int_type": "a whole number",
    "int_from_float": "a whole number", "int_parsing": "a whole number", "decimal_type": "a number",
    "is_instance_of": "a number", "string_type": "a string in quotes", "bool_type": "true or false",
    "list_type": "a list [...]", "dict_type": "a table", "model_type": "a table",
    "model_attributes_type": "a table",
}


_BOUNDS = {
    "greater_than": ("more than", "gt"), "greater_than_equal": ("at least", "ge"),
    "less_than": ("less than", "lt"), "less_than_equal": ("at most", "le"),
}


def _number(value: object) -> str:
    """A bound as a person writes it: 1,000,000,000 rather than Decimal('1000000000')."""
    if isinstance(value, str) and (found := re.fullmatch(r"Decimal\('(.*)'\)", value)):
        value = Decimal(found.group(1))  # pydantic gives a Decimal bound as its repr
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        return str(value)
    size: Decimal = abs(Decimal(value))
    return f"{value:,}" if size >= 10_000 else str(value)


def _toml_type(value: object) -> str:
    """How a parsed TOML value reads to the person who wrote it (never the value: it may be a secret)."""
    if isinstance(value, bool):
        return "true/false"
    kinds: tuple[tuple[type, str], ...] = (
        (int, "a whole number"), (Decimal, "a decimal number"), (float, "a number"),
        (str, "a string"), (list, "a list"), (dict, "a table"), (datetime, "a date-time"),
        (date, "a date"), (time, "a time"),
    )
    return next((name for kind, name in kinds if isinstance(value, kind)), type(value).__name__)


def _first_error(exc: ValidationError) -> str:
    found = exc.errors()
    # A misspelt field also shows as the real one missing; the misspelling is the useful line.
    err = next((e for e in found if e["type"] == "extra_forbidden"), found[0])
    where = ".".join(str(p) for p in err["loc"]) or "(top level)"
    if err["type"] == "extra_forbidden":
        name = str(err["loc"][-1])
        return f"{where}: unknown field{_did_you_mean(name, _fields_at(err['loc']))}; remove or rename it"
    if err["type"] == "missing":
        return f"{where}: required field is missing"
    if err["type"] in _EXPECTED:
        return f"{where}: expected {_EXPECTED[err['type']]}, got {_toml_type(err.get('input'))}"
    if err["type"] == "finite_number":
        return f"{where}: must be a finite number (not inf or nan)"
    if err["type"] in _BOUNDS:
        word, key = _BOUNDS[err["type"]]
        return f"{where}: must be {word} {_number(err.get('ctx', {}).get(key))}"
    message = _one_line(str(err["msg"]).removeprefix("Value error, "))
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
