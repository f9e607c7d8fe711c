"""How every `lyra` command finds its configuration, says which it uses, and reports a bad one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lyra.config import ConfigChoice, find_config, read_config_text
from lyra.terminal import Column, DataConsole, FitTable, data_console, fit_table

# The console policy of every command: data (model ids, names, tags, paths, error text, model output)
# is printed literally. Consoles come from data_console() (no emoji codes, no highlighting; width from
# $COLUMNS, the terminal, or 160 when piped); tables are FitTables, which fit the width without
# cutting a word; data put into a markup string goes through rich.markup.escape.

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c",
                 help="lyra.toml to use (default: $LYRA_CONFIG, else ./lyra.toml, else the shipped example)"),
]


def use_config(given: Path | None) -> ConfigChoice:
    """Find the configuration (--config, $LYRA_CONFIG, ./lyra.toml, the example) and say so on stderr.

    The line goes to stderr so that a command printing JSON keeps stdout clean.
    """
    choice = find_config(given)
    typer.echo(choice.describe(), err=True)
    if choice.path is not None:
        read_config_text(choice.path, choice.reason)  # missing or unreadable: say so before anything starts
    return choice


def database_errors() -> tuple[type[BaseException], ...]:
    """What a ledger or state database raises when it cannot be reached or read."""
    import sqlite3

    from redis import RedisError
    from sqlalchemy.exc import SQLAlchemyError

    return OSError, sqlite3.Error, SQLAlchemyError, RedisError


def first_line(exc: BaseException) -> str:
    """`Type: first line of the message` of a driver's error (the wrapped one, for SQLAlchemy's)."""
    original = getattr(exc, "orig", None) or exc
    lines = str(original).strip().splitlines()
    return f"{type(original).__name__}: {lines[0]}" if lines else type(original).__name__


def fail(message: object) -> typer.Exit:
    """Print `error: ...` as one line on stderr; the caller raises the returned Exit (status 2)."""
    typer.echo(f"error: {' '.join(str(message).split())}", err=True)
    return typer.Exit(2)


__all__ = [
    "Column",
    "ConfigOption",
    "DataConsole",
    "FitTable",
    "data_console",
    "database_errors",
    "fail",
    "first_line",
    "fit_table",
    "use_config",
]
