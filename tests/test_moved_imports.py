"""Scripts written against the flat layout keep working: an old path is the new module, with a warning."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from lyra._moved import MOVED


@pytest.mark.parametrize(("old", "new"), sorted(MOVED.items()))
def test_an_old_module_path_is_the_module_at_its_new_place(old: str, new: str) -> None:
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=f"{old} moved to {new}"):
        moved = importlib.import_module(old)
    assert moved is importlib.import_module(new)


def test_names_of_a_module_that_became_a_package_still_import() -> None:
    with pytest.warns(DeprecationWarning):
        from lyra.budget import BudgetGovernor
        from lyra.catalog import load_catalog
        from lyra.cli import app
        from lyra.consensus import Consensus
    from lyra.budget.governor import BudgetGovernor as governor
    from lyra.catalog.models import load_catalog as loader
    from lyra.cli.commands import app as cli
    from lyra.consensus.panel import Consensus as consensus

    assert (BudgetGovernor, load_catalog, app, Consensus) == (governor, loader, cli, consensus)
    with pytest.raises(ImportError):
        from lyra.budget import NoSuchName  # noqa: F401


def test_python_dash_m_runs_an_old_command_module() -> None:
    done = subprocess.run([sys.executable, "-m", "lyra.cli_serve", "--help"], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "--workers" in done.stdout
