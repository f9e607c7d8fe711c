"""Finding lyra.toml, reading and validating it into one-line errors, and the secrets from the environment."""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import (
    ValidationError,
)

from lyra.catalog.models import Catalog
from lyra.config.schema import Settings, check_http_url, check_ledger_url, check_url, did_you_mean
from lyra.errors import ConfigError
from lyra.redact import mask_optional_url

_SECRET_FIELD = re.compile(r"(api_?key|secret|password|bearer)", re.IGNORECASE)
_SECRET_VALUE = re.compile(r"^(sk-or-|sk-)[A-Za-z0-9_\-]{8,}")

CONFIG_ENV = "LYRA_CONFIG"
CONFIG_FILE = "lyra.toml"
BASE_URL_ENV = "LYRA_OPENROUTER_BASE_URL"
LEDGER_URL_ENV = "LYRA_LEDGER_URL"
REDIS_URL_ENV = "LYRA_REDIS_URL"


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
    # The secrets of the keys that belong to an `[upstreams.*]` endpoint: apart from OpenRouter's,
    # so that a run with no OpenRouter key is still simulated and OPENROUTER_API_KEY never fills them.
    upstream_secrets: dict[str, Secret] = field(default_factory=dict)

    @property
    def simulated(self) -> bool:
        """True when no key is set, so Lyra runs against its built-in simulator."""
        return not self.secrets

    def __repr__(self) -> str:
        return (f"LoadedConfig(source={self.source!r}, keys={sorted(self.settings.keys)}, "
                f"secrets={self.secrets!r}, upstream_secrets={self.upstream_secrets!r}, "
                f"ledger_url={mask_optional_url(self.ledger_url)!r}, "
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
        upstream_secrets=_upstream_secrets(settings, env, source),
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
        check_url(url, ("redis", "rediss", "unix"), "Redis",
                   "use redis://host:6379/0 (or rediss:// for TLS); fix or unset it")
    except ValueError as exc:
        raise ConfigError(f"{REDIS_URL_ENV}: {exc}") from None


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
        return f"{where}: unknown field{did_you_mean(name, _fields_at(err['loc']))}; remove or rename it"
    if err["type"] == "missing":
        return f"{where}: required field is missing"
    if err["type"] in _EXPECTED:
        return f"{where}: expected {_EXPECTED[err['type']]}, got {_toml_type(err.get('input'))}"
    if err["type"] == "literal_error":
        choices = str(err.get("ctx", {}).get("expected", "")).replace("'", '"')
        return f"{where}: expected {choices}"
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
            # dict[str, X] and X | None: the part that is a table of fields.
            tables = [a for a in args if hasattr(a, "model_fields")]
            model = tables[0] if tables else (args[-1] if args else annotation)
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
    upstream_keys = {k for u in settings.upstreams.values() for k in u.keys}
    found = {name: env.get(key.env, "").strip() or shared for name, key in settings.keys.items()
             if name not in upstream_keys}
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


def _upstream_secrets(settings: Settings, env: Mapping[str, str], source: str) -> dict[str, Secret]:
    """Each upstream key's secret, from its own variable only; a missing one is one line naming it."""
    found: dict[str, Secret] = {}
    for name, upstream in settings.upstreams.items():
        for i, key in enumerate(upstream.keys):
            variable = settings.keys[key].env
            value = env.get(variable, "").strip()
            if not value:
                raise ConfigError(
                    f"{source}: upstreams.{name}.keys[{i}]: environment variable {variable} (keys.{key}.env) "
                    f"is not set; set it, or remove the key from the upstream if its server needs none")
            found[key] = Secret(value)
    return found
