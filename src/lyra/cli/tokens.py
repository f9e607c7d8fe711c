"""`lyra token new NAME`: a fresh gateway client token, shown once, and its lyra.toml lines."""

from __future__ import annotations

import hashlib
import math
import re
import secrets
from typing import Annotated

import typer

from lyra.catalog.models import TIERS

TOKEN_PREFIX = "lyra-"
_ADMIN_LINE = 'role = "admin"  # an operator: sees every client\'s usage, the keys and /metrics\n'
_MAX_DAILY_USD = 1_000_000_000
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def new_token() -> str:
    """A random bearer token: 256 bits, URL-safe."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_sha256(token: str) -> str:
    """The hex digest lyra.toml stores in place of the token."""
    return hashlib.sha256(token.encode()).hexdigest()


def client_toml(name: str, token: str, *, daily_usd: float, tiers: list[str], requests_per_min: int,
                admin: bool = False) -> str:
    """The `[clients.NAME]` table for a token: only its hash goes into the file."""
    tier_list = ", ".join(f'"{t}"' for t in tiers)
    return (f"[clients.{name}]\n"
            f'token_sha256 = "{token_sha256(token)}"\n'
            f"daily_usd = {daily_usd:g}\n"
            f"tiers = [{tier_list}]\n"
            f"requests_per_min = {requests_per_min}\n"
            + (_ADMIN_LINE if admin else ""))


def register(app: typer.Typer) -> None:
    """Add the `token` command group to the `lyra` command line."""
    token_app = typer.Typer(no_args_is_help=True, rich_markup_mode=None, help="Gateway client tokens.")

    @token_app.command("new")
    def new(
        name: Annotated[str, typer.Argument(help="Client name, as in [clients.NAME]")],
        daily_usd: Annotated[float, typer.Option(help="The client's daily budget in USD")] = 25.0,
        tiers: Annotated[str, typer.Option(help="Comma-separated tiers it may use")] = ",".join(TIERS),
        requests_per_min: Annotated[int, typer.Option("--rpm", help="Requests per minute")] = 600,
        admin: Annotated[bool, typer.Option("--admin", help="An operator's token: it sees every client, "
                                                             "the keys and /metrics")] = False,
    ) -> None:
        """Print a new token once, and the [clients.NAME] lines (with its sha256) for lyra.toml."""
        chosen = [t.strip() for t in tiers.split(",") if t.strip()]
        problem = _check(name, daily_usd, chosen, requests_per_min)
        if problem:
            typer.echo(f"error: {problem}", err=True)
            raise typer.Exit(2)
        token = new_token()
        typer.echo(f"Token for client {name!r}; it is shown only this once, so store it now:\n")
        typer.echo(f"    {token}\n")
        typer.echo("Add these lines to lyra.toml (they hold the token's hash, not the token):\n")
        typer.echo(client_toml(name, token, daily_usd=daily_usd, tiers=chosen,
                               requests_per_min=requests_per_min, admin=admin))

    app.add_typer(token_app, name="token")


def _check(name: str, daily_usd: float, tiers: list[str], requests_per_min: int) -> str | None:
    if not _NAME.match(name):
        return f"NAME: {name!r} must be 1-64 letters, digits, '-' or '_'"
    if not math.isfinite(daily_usd) or daily_usd <= 0:
        return "--daily-usd: must be a finite number more than 0"
    if daily_usd > _MAX_DAILY_USD:
        return f"--daily-usd: must be at most {_MAX_DAILY_USD:,}, as lyra.toml's caps are"
    unknown = [t for t in tiers if t not in TIERS]
    if unknown or not tiers:
        return f"--tiers: unknown tier {unknown[0]!r}; use {', '.join(TIERS)}" if unknown else "--tiers: none"
    if requests_per_min < 1:
        return "--rpm: must be at least 1"
    return None
