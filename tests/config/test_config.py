"""Configuration: the shipped example loads; each kind of mistake fails with one clear line."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from lyra.catalog.models import load_catalog
from lyra.config import example_config_text, load_config
from lyra.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "lyra.toml"
    path.write_text(text)
    return path


def test_example_has_the_origin_setup() -> None:
    loaded = load_config(environ={}, catalog=load_catalog())
    s = loaded.settings
    assert set(s.keys) == {"xai", "grok4", "codex", "deepseek1", "deepseek2", "premium", "microsoft",
                           "universal"}
    assert {k: v.daily_usd for k, v in s.keys.items()}["premium"] == 50
    assert s.keys["grok4"].daily_tokens == 500_000
    assert {t: v.budget_share for t, v in s.tiers.items()} == {
        "premium": Decimal("0.40"), "advanced": Decimal("0.35"), "specialized": Decimal("0.15"),
        "fast": Decimal("0.10")}
    assert set(s.tasks) == {"market_analysis", "signal_generation", "risk_assessment",
                            "news_sentiment", "code_generation"}
    assert [m.weight for m in s.panels["trade"].members] == [0.30, 0.25, 0.20, 0.15, 0.10]
    assert s.budget.daily_usd == 200
    assert loaded.simulated


def test_secrets_come_from_environment_and_shared_key_fills_all() -> None:
    loaded = load_config(environ={"OPENROUTER_API_KEY": "sk-or-v1-shared0000000000"})
    assert not loaded.simulated
    assert loaded.secrets["premium"].reveal() == "sk-or-v1-shared0000000000"
    assert "shared" not in repr(loaded.secrets) and "shared" not in repr(loaded)
    specific = load_config(environ={"OPENROUTER_API_KEY": "sk-or-v1-shared0000000000",
                                    "LYRA_KEY_PREMIUM": "sk-or-v1-premium000000000"})
    assert specific.secrets["premium"].reveal() == "sk-or-v1-premium000000000"
    assert specific.secrets["xai"].reveal() == "sk-or-v1-shared0000000000"


def test_dotenv_file_next_to_config_is_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    path = write(tmp_path, example_config_text())
    (tmp_path / ".env").write_text("OPENROUTER_API_KEY=sk-or-v1-fromdotenv0000000\n")
    loaded = load_config(path)
    assert loaded.secrets["universal"].reveal() == "sk-or-v1-fromdotenv0000000"


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (("daily_usd = 50", "dialy_usd = 50"),
         "keys.premium.dialy_usd: unknown field (did you mean 'daily_usd'?)"),
        (('tier = "premium"\nmodels = ["anthropic/claude-opus-4.8", "openai/gpt-4o"]',
          'tier = "platinum"\nmodels = ["anthropic/claude-opus-4.8", "openai/gpt-4o"]'),
         "tasks.risk_assessment.tier: unknown tier 'platinum'"),
        (('"openai/gpt-4o-mini", "anthropic/claude-3-haiku"]',
          '"openai/gpt-4o-mimi", "anthropic/claude-3-haiku"]'),
         "tiers.fast.models[1]: unknown model 'openai/gpt-4o-mimi' (did you mean 'openai/gpt-4o-mini'?)"),
        (('env = "LYRA_KEY_PREMIUM"', 'env = "LYRA_KEY_PREMIUM"\napi_key = "abc"'),
         "keys.premium.api_key: secrets do not belong in the file"),
        (('env = "LYRA_KEY_XAI"', 'env = "sk-or-v1-0123456789abcdef0123"'),
         "keys.xai.env: this looks like an API key"),
        (("[tiers.premium]\n", "[tiers.platinum]\n"), "tiers.platinum: unknown tier"),
        (("budget_share = 0.40", "budget_share = 0.90"), "the shares add up to 1.50"),
        (("daily_usd = 200", "daily_usd = -5"), "budget.daily_usd: must be more than 0"),
        (("[budget]", "[budget"), "not valid TOML"),
    ],
)
def test_bad_config_fails_with_one_line_naming_the_field(
    tmp_path: Path, edit: tuple[str, str], expected: str
) -> None:
    text = example_config_text()
    assert edit[0] in text
    path = write(tmp_path, text.replace(edit[0], edit[1], 1))
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={}, catalog=load_catalog())
    message = str(info.value)
    assert message.startswith(str(path))
    assert expected in message
    assert "\n" not in message


def test_missing_env_var_names_the_key_and_the_variable(tmp_path: Path) -> None:
    env = {f"LYRA_KEY_{n.upper()}": "sk-or-v1-x0000000000000" for n in
           ("xai", "grok4", "codex", "deepseek1", "deepseek2", "premium", "microsoft")}
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, example_config_text()), environ=env)
    assert "keys.universal: environment variable LYRA_KEY_UNIVERSAL is not set" in str(info.value)


def test_missing_file_says_how_to_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no such file; copy lyra\.example\.toml"):
        load_config(tmp_path / "nope.toml", environ={})


def test_base_url_override_from_environment() -> None:
    loaded = load_config(environ={"LYRA_OPENROUTER_BASE_URL": "http://127.0.0.1:9/api/v1"})
    assert loaded.settings.openrouter.base_url == "http://127.0.0.1:9/api/v1"


def test_privileged_tasks_and_the_step_down_order_are_configuration(tmp_path: Path) -> None:
    from support import fast_config_text

    path = tmp_path / "lyra.toml"
    row = 'low_budget_model = "openai/gpt-oss-20b:free"\n'
    path.write_text(fast_config_text().replace(row, row + 'privileged_tasks = ["risk_assessment", "news_sentiment"]\n'
                                                        'step_down = { premium = "fast" }\n', 1))
    budget = load_config(path, environ={}).settings.budget
    assert budget.privileged_tasks == ["risk_assessment", "news_sentiment"]
    assert budget.step_down == {"premium": "fast"}
    path.write_text(fast_config_text().replace(row, row + 'step_down = { premium = "cheap" }\n', 1))
    with pytest.raises(ConfigError, match=r"budget\.step_down\.premium: unknown tier 'cheap'"):
        load_config(path, environ={})
