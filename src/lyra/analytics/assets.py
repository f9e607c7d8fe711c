"""The page parts shipped in lyra/service/static: the vendored Chart.js, the report views, the style."""

from __future__ import annotations

from importlib.resources import files

STATIC = ("service", "static")


def asset(name: str) -> str:
    """The text of one file in lyra/service/static."""
    return files("lyra").joinpath(*STATIC, name).read_text(encoding="utf-8")
