"""Hostile configurations: each is refused with one line naming the file and the field, never a traceback.

Every row runs through load_config; a few also run through the real `lyra` command in a subprocess.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from lyra.catalog.models import load_catalog
from lyra.config import example_config_text, load_config
from lyra.errors import ConfigError

LYRA = str(Path(sys.executable).with_name("lyra"))
PASTED_KEY = "abc123verylongkeyQ9w8e7r6t5y4u3i2o1p0"  # a key pasted into `env`: never echoed
URL_PASSWORD = "Quokka-Pw-4411"


@dataclass(frozen=True)
class Row:
    """One hostile file: an edit of the example (or whole bytes), and what the error must name."""

    name: str
    field: str  # must appear in the one-line error
    edit: tuple[str, str] | None = None
    data: bytes | None = None
    secret: str | None = None  # must not appear in the error

    def write(self, folder: Path) -> Path:
        path = folder / "lyra.toml"
        if self.data is not None:
            path.write_bytes(self.data)
            return path
        assert self.edit is not None
        text = example_config_text()
        assert self.edit[0] in text, self.edit[0]
        path.write_text(text.replace(self.edit[0], self.edit[1], 1), encoding="utf-8")
        return path


ROWS = [
    Row("inf cap", "budget.daily_usd: must be a finite number", ("daily_usd = 200", "daily_usd = inf")),
    Row("nan share", "budget.reserve_share: must be a finite number",
        ("reserve_share = 0.10", "reserve_share = nan")),
    Row("astronomical cap", "budget.daily_usd: must be at most 1,000,000,000",
        ("daily_usd = 200", "daily_usd = 1e308")),
    Row("astronomical key cap", "keys.premium.daily_usd: must be at most",
        ("daily_usd = 50", "daily_usd = 1e30")),
    Row("astronomical share", "tiers.premium.budget_share: must be at most 1",
        ("budget_share = 0.40", "budget_share = 1e308")),
    Row("bool for a number", "tiers.premium.timeout_s: expected a number, got true/false",
        ("timeout_s = 8", "timeout_s = true")),
    Row("string for a number", "tiers.premium.timeout_s: expected a number, got a string",
        ("timeout_s = 8", 'timeout_s = "8"')),
    Row("bool for a decimal", "budget.reserve_share: expected a number, got true/false",
        ("reserve_share = 0.10", "reserve_share = true")),
    Row("fraction for a count", "keys.grok4.daily_tokens: expected a whole number, got a decimal number",
        ("daily_tokens = 500_000", "daily_tokens = 5.5")),
    Row("number for a string", "openrouter.app_title: expected a string in quotes, got a whole number",
        ('app_title = "Lyra Trading System"', "app_title = 5")),
    Row("date for a number", "tiers.premium.timeout_s: expected a number, got a date",
        ("timeout_s = 8", "timeout_s = 1979-05-27")),
    Row("infinite timeout", "tiers.premium.timeout_s: must be a finite number",
        ("timeout_s = 8", "timeout_s = inf")),
    Row("garbage base_url", "openrouter.base_url: not an http(s) URL",
        ('base_url = "https://openrouter.ai/api/v1"', 'base_url = "openrouter dot ai"')),
    Row("base_url port", "openrouter.base_url: not an http(s) URL: the port must be a number",
        ('base_url = "https://openrouter.ai/api/v1"', 'base_url = "https://openrouter.ai:x1/api/v1"')),
    Row("retired model", "tiers.premium.models[0]: 'anthropic/claude-3-opus' is retired",
        ('models = ["anthropic/claude-opus-4.8", "openai/gpt-4o", "google/gemini-2.5-pro"]',
         'models = ["anthropic/claude-3-opus", "openai/gpt-4o", "google/gemini-2.5-pro"]')),
    Row("session past midnight", "schedule.session_utc: 25:99 is not a time of day",
        ('session_utc = "00:00-24:00"', 'session_utc = "25:99-26:00"')),
    Row("empty session", "schedule.session_utc: '06:00-06:00' is empty",
        ('session_utc = "00:00-24:00"', 'session_utc = "06:00-06:00"')),
    Row("session shape", "schedule.session_utc: '9-17' is not a session",
        ('session_utc = "00:00-24:00"', 'session_utc = "9-17"')),
    Row("key pasted into env", "keys.xai.env: not an environment variable name",
        ('env = "LYRA_KEY_XAI"', f'env = "{PASTED_KEY}"'), secret=PASTED_KEY),
    Row("key pasted into a tier's keys", "tiers.premium.keys[0]: unknown key (value not shown",
        ('keys = ["premium", "universal"]', f'keys = ["{PASTED_KEY}", "universal"]'), secret=PASTED_KEY),
    Row("key pasted as a model id", "tiers.premium.models[0]: unknown model (value not shown",
        ('models = ["anthropic/claude-opus-4.8", "openai/gpt-4o", "google/gemini-2.5-pro"]',
         f'models = ["{PASTED_KEY}", "openai/gpt-4o", "google/gemini-2.5-pro"]'), secret=PASTED_KEY),
    Row("ledger port", "ledger.url: the port must be a number",
        ("[ledger]\n", f'[ledger]\nurl = "postgresql://lyra:{URL_PASSWORD}@127.0.0.1:5x32/lyra"\n'),
        secret=URL_PASSWORD),
    Row("ledger scheme", "ledger.url: not a database URL",
        ("[ledger]\n", f'[ledger]\nurl = "mysql://lyra:{URL_PASSWORD}@127.0.0.1/lyra"\n'), secret=URL_PASSWORD),
    Row("binary file", "not a text file", data=b"\x00\x01\x02lyra\xff\xfe"),
    Row("UTF-16 file", "the file is UTF-16; save it as UTF-8", data=example_config_text().encode("utf-16")),
    Row("Latin-1 file", "not UTF-8 text", data="[budget]\ndaily_usd = 200 # 200 €\n".encode("cp1252")),
]


@pytest.mark.parametrize("row", ROWS, ids=[row.name for row in ROWS])
def test_load_config_refuses_with_one_line_naming_the_field(tmp_path: Path, row: Row) -> None:
    path = row.write(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={}, catalog=load_catalog())
    message = str(info.value)
    assert message.startswith(f"{path}: ")
    assert row.field in message
    assert "\n" not in message
    if row.secret is not None:
        assert row.secret not in message


CLI_ROWS = [row for row in ROWS if row.name in (
    "bool for a number", "binary file", "UTF-16 file", "session past midnight", "key pasted into env",
    "ledger port", "retired model", "inf cap")]


@pytest.mark.parametrize("row", CLI_ROWS, ids=[row.name for row in CLI_ROWS])
def test_the_lyra_command_refuses_with_exit_2_and_one_error_line(tmp_path: Path, row: Row) -> None:
    path = row.write(tmp_path)
    done = subprocess.run([LYRA, "plan", "--json", "--no-history", "--config", str(path)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    config_line, error_line = done.stderr.splitlines()
    assert config_line == f"config: {path} (given with --config)"
    assert error_line.startswith(f"error: {path}: ") and row.field in error_line
    if row.secret is not None:
        assert row.secret not in done.stderr


def test_the_base_url_from_the_environment_is_checked_too() -> None:
    with pytest.raises(ConfigError, match=r"^LYRA_OPENROUTER_BASE_URL: not an http\(s\) URL"):
        load_config(environ={"LYRA_OPENROUTER_BASE_URL": "htp:/127.0.0.1 9/api"})


@pytest.mark.parametrize(("variable", "url", "expected"), [
    ("LYRA_LEDGER_URL", f"postgresql://lyra:{URL_PASSWORD}@127.0.0.1:five/x", "the port must be a number"),
    ("LYRA_LEDGER_URL", f"oracle://lyra:{URL_PASSWORD}@127.0.0.1/x", "not a database URL"),
    ("LYRA_REDIS_URL", f"redis://:{URL_PASSWORD}@127.0.0.1:six/0", "the port must be a number"),
    ("LYRA_REDIS_URL", f"http://:{URL_PASSWORD}@127.0.0.1/0", "not a Redis URL"),
])
def test_urls_from_the_environment_are_checked_without_echoing_them(
    variable: str, url: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(environ={variable: url})
    message = str(info.value)
    assert message.startswith(f"{variable}: ") and expected in message
    assert URL_PASSWORD not in message and "\n" not in message


@pytest.mark.parametrize(("edit", "value"), [
    (("daily_usd = 200", "daily_usd = 200"), "200"),  # a TOML integer is still an exact Decimal
    (("daily_usd = 200", "daily_usd = 200.5"), "200.5"),
    (("daily_usd = 200", "daily_usd = 1_000_000_000"), "1000000000"),  # the largest cap
])
def test_integers_and_decimals_are_both_exact_amounts(tmp_path: Path, edit: tuple[str, str], value: str) -> None:
    path = tmp_path / "lyra.toml"
    path.write_text(example_config_text().replace(*edit, 1))
    daily = load_config(path, environ={}).settings.budget.daily_usd
    assert str(daily) == value and type(daily).__name__ == "Decimal"


def test_integers_are_accepted_for_float_fields(tmp_path: Path) -> None:
    path = tmp_path / "lyra.toml"
    path.write_text(example_config_text().replace("timeout_s = 8", "timeout_s = 9", 1))
    assert load_config(path, environ={}).settings.tiers["premium"].timeout_s == 9.0


def test_a_folder_given_as_the_config_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"is a folder, not a file"):
        load_config(tmp_path, environ={})
