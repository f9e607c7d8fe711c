"""Where Lyra keeps its files on this machine."""

from __future__ import annotations

import os
from pathlib import Path


def data_folder() -> Path:
    """Lyra's folder in the user's data folder ($XDG_DATA_HOME or ~/.local/share), created if missing."""
    xdg = os.environ.get("XDG_DATA_HOME", "")
    # The XDG spec says to ignore a relative XDG_DATA_HOME.
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "share"
    folder = base / "lyra"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def listing_cache_path() -> Path:
    """The cached copy of OpenRouter's live /models listing (`lyra models --refresh` writes it)."""
    return data_folder() / "models.json"


__all__ = ["data_folder", "listing_cache_path"]
