"""Old import paths of modules that moved into packages keep working, with a DeprecationWarning.

Scripts written against the flat layout (`from lyra.router import Router`, `python -m
lyra.cli_serve`) still run: importing an old name returns the module at its new place (the same
module object). New code imports the new paths; the import contract does not see these aliases.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from collections.abc import Sequence
from types import CodeType, ModuleType

MOVED = {
    "lyra.router": "lyra.routing.router",
    "lyra.policy": "lyra.routing.policy",
    "lyra.policies": "lyra.routing.retry",
    "lyra.keys": "lyra.routing.keys",
    "lyra.limits": "lyra.routing.limits",
    "lyra.cache": "lyra.routing.cache",
    "lyra.forecast": "lyra.budget.forecast",
    "lyra.aggregation": "lyra.consensus.aggregation",
    "lyra.decision": "lyra.consensus.decision",
    "lyra.metrics": "lyra.observe.metrics",
    "lyra.recording": "lyra.observe.recording",
    "lyra.estimate": "lyra.catalog.estimate",
    "lyra.schedule": "lyra.ops.schedule",
    "lyra.live": "lyra.ops.live",
    "lyra.live_view": "lyra.ops.live_view",
    "lyra.plan": "lyra.ops.plan",
    "lyra.monitoring": "lyra.ops.monitoring",
    "lyra.cli_config": "lyra.cli.common",
    "lyra.cli_backtest": "lyra.cli.backtest",
    "lyra.cli_budget": "lyra.cli.budget",
    "lyra.cli_live": "lyra.cli.live",
    "lyra.cli_report": "lyra.cli.report",
    "lyra.cli_serve": "lyra.cli.serve",
    "lyra.cli_trading": "lyra.cli.trading",
    "lyra.tokens_cli": "lyra.cli.tokens",
    "lyra.demo": "lyra.cli.demo",
}


def _warn(old: str, new: str) -> None:
    warnings.warn(f"{old} moved to {new}; import it from there", DeprecationWarning, stacklevel=3)


class _Alias(importlib.abc.Loader):
    """Loads an old name as the module at its new place (and runs it for `python -m old`)."""

    def __init__(self, new: str) -> None:
        self.new = new

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        _warn(spec.name, self.new)
        return importlib.import_module(self.new)

    def exec_module(self, module: ModuleType) -> None:
        """The module ran at its new place already."""

    def get_code(self, fullname: str) -> CodeType | None:
        spec = importlib.util.find_spec(self.new)
        loader = spec.loader if spec is not None else None
        get_code = getattr(loader, "get_code", None)
        return get_code(self.new) if get_code is not None else None


class _MovedFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        new = MOVED.get(fullname)
        if new is None:
            return None
        found = importlib.util.find_spec(new)  # its file, for `python -m old` (sys.argv[0])
        return importlib.util.spec_from_loader(fullname, _Alias(new),
                                               origin=found.origin if found is not None else None)


def install() -> None:
    """Put the old names on the import path (once)."""
    if not any(isinstance(finder, _MovedFinder) for finder in sys.meta_path):
        sys.meta_path.append(_MovedFinder())


def forward(package: str, module: str, name: str) -> object:
    """A package's attribute read from the module that held it before the package existed."""
    if name.startswith("__"):
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    try:
        found = getattr(importlib.import_module(module), name)
    except AttributeError:
        raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
    _warn(f"{package}.{name}", f"{module}.{name}")
    return found


__all__ = ["MOVED", "forward", "install"]
