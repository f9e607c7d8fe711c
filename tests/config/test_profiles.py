"""Tier profiles in lyra.toml: OpenRouter provider preferences, service tier, exact ids on decision tiers."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from lyra.catalog.models import load_catalog
from lyra.config import example_config_text, load_config, parse_settings
from lyra.errors import ConfigError

PREMIUM = "budget_share = 0.40\ntimeout_s = 8\n"
PREMIUM_PROFILE = ('provider = { zdr = true, data_collection = "deny", '
                   'max_price = { prompt = 5, completion = 25 } }\n')


def edited(old: str, new: str, text: str | None = None) -> str:
    text = text if text is not None else example_config_text()
    assert text.count(old) == 1, old
    return text.replace(old, new)


def premium(profile_lines: str) -> str:
    """The example with the premium tier's profile replaced by `profile_lines`."""
    return edited(PREMIUM + PREMIUM_PROFILE, PREMIUM + profile_lines)


def test_the_shipped_decision_tiers_pin_a_private_profile() -> None:
    s = load_config(environ={}, catalog=load_catalog()).settings
    assert s.decision_tiers() == ["fast", "advanced", "premium"]
    assert s.decision_panels() == ["quick", "trade"]
    for name in s.decision_tiers():
        provider = s.tiers[name].provider
        assert provider is not None, name
        assert provider.zdr is True and provider.data_collection == "deny"
        assert provider.max_price is not None and provider.max_price.prompt is not None
        assert provider.require_parameters is None  # sent with every structured-output request
    assert s.tiers["premium"].provider is not None and s.tiers["premium"].provider.max_price is not None
    assert s.tiers["premium"].provider.max_price.completion == Decimal(25)
    assert s.tiers["fast"].provider is not None and s.tiers["fast"].provider.max_price is not None
    assert s.tiers["fast"].provider.max_price.prompt == Decimal("0.25")  # exact, never a float
    assert s.tiers["specialized"].provider is None  # code generation is not a decision tier


def test_every_shipped_decision_model_is_an_exact_catalogued_id() -> None:
    s = load_config(environ={}, catalog=load_catalog()).settings
    catalog = load_catalog()
    for where, model_id in s.decision_model_places():
        assert "~" not in model_id and not model_id.split(":")[0].endswith("-latest"), where
        info = catalog.find(model_id)
        assert info is not None and not info.retired, where


def test_a_full_profile_loads_with_every_2026_field() -> None:
    text = premium(
        'service_tier = "flex"\n'
        '[tiers.premium.provider]\n'
        'order = ["anthropic", "openai"]\nallow_fallbacks = false\nrequire_parameters = true\n'
        'data_collection = "deny"\nzdr = true\nenforce_distillable_text = true\n'
        'only = ["anthropic", "openai", "google-vertex"]\nignore = ["deepinfra"]\n'
        'quantizations = ["fp16", "bf16"]\nsort = "price"\npreferred_min_throughput = 50\n'
        'preferred_max_latency = { p50 = 1.5, p90 = 4 }\n'
        'max_price = { prompt = 5, completion = 25, request = 0.01, image = 0.005 }\n')
    tier = parse_settings(text, "lyra.toml").tiers["premium"]
    assert tier.service_tier == "flex"
    assert tier.provider is not None and tier.provider.max_price is not None
    assert tier.provider.max_price.request == Decimal("0.01")
    assert tier.provider.preferred_max_latency is not None
    assert tier.provider.quantizations == ["fp16", "bf16"] and tier.provider.allow_fallbacks is False


@pytest.mark.parametrize(
    ("profile", "expected"),
    [
        ('provider = { data_collection = "never" }\n',
         'tiers.premium.provider.data_collection: expected "allow" or "deny"'),
        ('provider = { zdr = "yes" }\n', "tiers.premium.provider.zdr: expected true or false, got a string"),
        ('provider = { sort = "cheapest" }\n',
         'tiers.premium.provider.sort: expected "price", "throughput" or "latency"'),
        ('provider = { quantizations = ["fp12"] }\n', "tiers.premium.provider.quantizations.0: expected"),
        ("provider = { max_price = { prompt = -1 } }\n",
         "tiers.premium.provider.max_price.prompt: must be at least 0"),
        ("provider = { max_price = { promt = 1 } }\n",
         "tiers.premium.provider.max_price.promt: unknown field (did you mean 'prompt'?)"),
        ("provider = { zdrr = true }\n", "tiers.premium.provider.zdrr: unknown field (did you mean 'zdr'?)"),
        ('provider = { max_price = "5" }\n', "tiers.premium.provider.max_price: expected a table, got a string"),
        ('service_tier = "fastest"\n', 'tiers.premium.service_tier: expected "flex" or "priority"'),
        ("provider = { require_parameters = 1 }\n",
         "tiers.premium.provider.require_parameters: expected true or false, got a whole number"),
    ],
)
def test_a_bad_profile_fails_with_one_line_naming_the_field(profile: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(premium(profile), "lyra.toml")
    message = str(caught.value)
    assert message.startswith(f"lyra.toml: {expected}"), message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ('models = ["anthropic/claude-opus-4.8", "openai/gpt-4o", "google/gemini-2.5-pro"]',
         'models = ["~anthropic/claude-opus-latest", "openai/gpt-4o", "google/gemini-2.5-pro"]',
         "tiers.premium.models[0]"),
        ('"openai/gpt-4o-mini", "anthropic/claude-3-haiku"]\nkeys',
         '"openai/chatgpt-4o-latest", "anthropic/claude-3-haiku"]\nkeys', "tiers.fast.models[1]"),
        ('tier = "premium"\nmodels = ["anthropic/claude-opus-4.8", "openai/gpt-4o"]',
         'tier = "premium"\nmodels = ["openrouter/auto", "openai/gpt-4o"]', "tasks.risk_assessment.models[0]"),
        ('{ model = "x-ai/grok-4.6", key = "grok4", weight = 0.10 }',
         '{ model = "~x-ai/grok-latest", key = "grok4", weight = 0.10 }', "panels.trade.members[4].model"),
        ('low_budget_model = "openai/gpt-oss-20b:free"', 'low_budget_model = "~openai/gpt-oss-latest:free"',
         "budget.low_budget_model"),
    ],
)
def test_an_alias_on_a_decision_route_is_refused_naming_the_field(old: str, new: str, field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(edited(old, new), "lyra.toml")
    message = str(caught.value)
    assert message.startswith(f"lyra.toml: {field}: "), message
    assert "alias" in message and "exact model id" in message and "replayed" in message


def test_an_alias_outside_the_decision_tiers_is_allowed() -> None:
    text = edited('models = ["openai/gpt-5.3-codex", "qwen/qwen3-coder", "microsoft/phi-4",',
                  'models = ["~openai/gpt-codex-latest", "qwen/qwen3-coder", "microsoft/phi-4",')
    settings = parse_settings(text, "lyra.toml")  # specialized (code generation) does not decide trades
    assert settings.tiers["specialized"].models[0] == "~openai/gpt-codex-latest"
    assert "specialized" not in settings.decision_tiers()


def test_a_step_down_target_of_a_decision_tier_is_a_decision_tier() -> None:
    text = edited('# step_down = { premium = "advanced", advanced = "fast", specialized = "fast" }',
                  'step_down = { premium = "specialized" }')
    text = edited('models = ["openai/gpt-5.3-codex", "qwen/qwen3-coder", "microsoft/phi-4",',
                  'models = ["~openai/gpt-codex-latest", "qwen/qwen3-coder", "microsoft/phi-4",', text)
    with pytest.raises(ConfigError, match=r"^lyra.toml: tiers\.specialized\.models\[0\]: "):
        parse_settings(text, "lyra.toml")


def test_a_ceiling_under_every_model_of_its_tier_is_refused_at_load(tmp_path: Path) -> None:
    path = tmp_path / "lyra.toml"
    path.write_text(premium("provider = { max_price = { prompt = 1, completion = 2 } }\n"))
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={}, catalog=load_catalog())
    message = str(caught.value)
    assert f"{path}: tiers.premium.provider.max_price: every model of the tier costs more than " in message
    assert "max_price = { prompt = 1, completion = 2 }" in message
    assert "anthropic/claude-opus-4.8: prompt 5 > 1, completion 25 > 2" in message


def test_a_ceiling_that_leaves_one_model_loads(tmp_path: Path) -> None:
    path = tmp_path / "lyra.toml"
    path.write_text(premium("provider = { max_price = { prompt = 1.25, completion = 10 } }\n"))
    loaded = load_config(path, environ={}, catalog=load_catalog())
    provider = loaded.settings.tiers["premium"].provider
    assert provider is not None and provider.max_price is not None
    assert provider.max_price.prompt == Decimal("1.25")
