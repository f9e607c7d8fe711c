"""The `lyra` command: one module per command group, `common` for the shared consoles and errors.

`app` is the Typer application and `main` the console-script entry point (both in `commands.py`).
"""

from lyra._moved import forward


def __getattr__(name: str) -> object:
    """Names that `lyra.cli` held before it became a package (e.g. `from lyra.cli import ...`)."""
    return forward(__name__, "lyra.cli.commands", name)
