"""Lyra: AI model orchestration for trading on OpenRouter."""


from lyra import _moved
from lyra.catalog.models import Catalog, ModelInfo, load_catalog
from lyra.config import LoadedConfig, Settings, load_config
from lyra.engine import CompletionStream, Lyra
from lyra.errors import (
    BudgetExceeded,
    ConfigError,
    LedgerUnavailable,
    LyraError,
    NoModelAvailable,
    RateLimited,
    StateUnavailable,
    StreamInterrupted,
    Unavailable,
    UpstreamError,
    UpstreamTimeout,
)
from lyra.types import Attempt, Completion

__version__ = "0.1.0"

_moved.install()  # old import paths of modules that moved into packages still resolve, with a warning

__all__ = [
    "Attempt",
    "BudgetExceeded",
    "Catalog",
    "Completion",
    "CompletionStream",
    "ConfigError",
    "LedgerUnavailable",
    "LoadedConfig",
    "Lyra",
    "LyraError",
    "ModelInfo",
    "NoModelAvailable",
    "RateLimited",
    "Settings",
    "StateUnavailable",
    "StreamInterrupted",
    "Unavailable",
    "UpstreamError",
    "UpstreamTimeout",
    "__version__",
    "load_catalog",
    "load_config",
]
