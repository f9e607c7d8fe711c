"""Passwords in URLs never show in a repr or a str of the loaded configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from lyra import Lyra
from lyra.config import example_config_text, load_config
from lyra.redact import mask_url

PASSWORD = "Wombat-Secret-7781"


@pytest.mark.parametrize(("url", "masked"), [
    (f"postgresql://lyra:{PASSWORD}@db.example:5432/lyra", "postgresql://lyra:***@db.example:5432/lyra"),
    (f"postgresql+psycopg://lyra:{PASSWORD}@db/lyra?sslmode=require",
     "postgresql+psycopg://lyra:***@db/lyra?sslmode=require"),
    (f"redis://:{PASSWORD}@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
    (f"redis://default:{PASSWORD}@cache:6379", "redis://default:***@cache:6379"),
    (f"rediss://{PASSWORD}@cache:6380", "rediss://***@cache:6380"),  # redis-py reads a lone user as a password
    (f"https://proxy:{PASSWORD}@proxy.example/api/v1", "https://proxy:***@proxy.example/api/v1"),
    ("postgresql://lyra@db/lyra", "postgresql://lyra@db/lyra"),
    ("sqlite:////var/lib/lyra/ledger.db", "sqlite:////var/lib/lyra/ledger.db"),
    (f"http://[::1:{PASSWORD}@bad", "***"),  # cannot be parsed: hidden whole
])
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked
    assert PASSWORD not in mask_url(url)


def test_no_repr_or_str_of_the_loaded_config_shows_a_url_password(tmp_path: Path) -> None:
    path = tmp_path / "lyra.toml"
    path.write_text(example_config_text()
                    .replace("[ledger]\n", f'[ledger]\nurl = "postgresql://lyra:{PASSWORD}@db.example/lyra"\n', 1)
                    .replace('base_url = "https://openrouter.ai/api/v1"',
                             f'base_url = "https://proxy:{PASSWORD}@proxy.example/api/v1"', 1))
    loaded = load_config(path, environ={"LYRA_REDIS_URL": f"redis://:{PASSWORD}@127.0.0.1:6379/0",
                                        "OPENROUTER_API_KEY": f"sk-or-v1-{PASSWORD}"})
    assert loaded.ledger_url is not None and PASSWORD in loaded.ledger_url  # the real value is kept
    shown = [repr(loaded), str(loaded), repr(loaded.settings), str(loaded.settings),
             repr(loaded.settings.ledger), str(loaded.settings.ledger), repr(loaded.settings.openrouter),
             repr(Lyra(loaded))]
    for text in shown:
        assert PASSWORD not in text
    assert "postgresql://lyra:***@db.example/lyra" in repr(loaded)
    assert "redis://:***@127.0.0.1:6379/0" in repr(loaded)
    assert "https://proxy:***@proxy.example/api/v1" in repr(loaded.settings)
