"""Fixtures for the trading tests: small CSV files written the way real tools write them."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

WriteFile = Callable[..., Path]


@pytest.fixture
def write_csv(tmp_path: Path) -> WriteFile:
    """Write dedented text to a file in tmp_path and return its path."""

    def write(text: str, name: str = "prices.csv", encoding: str = "utf-8") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding=encoding)
        return path

    return write
