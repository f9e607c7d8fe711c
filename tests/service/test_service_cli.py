"""`lyra token new` and `lyra serve` as commands."""

from __future__ import annotations

import hashlib
import re

import typer
from typer.testing import CliRunner

from lyra.cli import serve as cli_serve
from lyra.cli import tokens as tokens_cli
from lyra.config import example_config_text, parse_settings
from lyra.service.auth import ClientAuth


def command_line() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """A group, as `lyra` is."""

    tokens_cli.register(app)
    cli_serve.register(app)
    return app


def test_token_new_prints_a_token_once_and_the_toml_with_its_hash() -> None:
    result = CliRunner().invoke(command_line(), ["token", "new", "desk", "--daily-usd", "12.5",
                                                 "--tiers", "fast,advanced", "--rpm", "90"])
    assert result.exit_code == 0, result.output
    tokens = re.findall(r"lyra-[A-Za-z0-9_\-]{40,}", result.output)
    assert len(tokens) == 1
    token = tokens[0]
    toml = result.output[result.output.index("[clients.desk]"):]
    assert hashlib.sha256(token.encode()).hexdigest() in toml
    settings = parse_settings(example_config_text() + "\n" + toml, "test")
    client = settings.clients["desk"]
    assert (client.daily_usd, client.tiers, client.requests_per_min) == (12.5, ["fast", "advanced"], 90)
    assert ClientAuth(settings.clients).authenticate(f"Bearer {token}").name == "desk"


def test_token_new_admin_makes_an_operator_token() -> None:
    result = CliRunner().invoke(command_line(), ["token", "new", "ops", "--admin"])
    assert result.exit_code == 0, result.output
    token = re.findall(r"lyra-[A-Za-z0-9_\-]{40,}", result.output)[0]
    settings = parse_settings(example_config_text() + "\n" + result.output[result.output.index("[clients.ops]"):],
                              "test")
    assert settings.clients["ops"].role == "admin"
    assert ClientAuth(settings.clients).authenticate(f"Bearer {token}").admin


def test_tokens_differ_every_time() -> None:
    outputs = [CliRunner().invoke(command_line(), ["token", "new", "a"]).output for _ in range(2)]
    first, second = (re.findall(r"lyra-\S{40,}", out)[0] for out in outputs)
    assert first != second


def test_token_new_names_a_bad_option() -> None:
    result = CliRunner().invoke(command_line(), ["token", "new", "desk", "--tiers", "gold"])
    assert result.exit_code == 2
    assert "--tiers" in result.output and "gold" in result.output
    assert "lyra-" not in result.output  # no token is printed for a refused request
    result = CliRunner().invoke(command_line(), ["token", "new", "bad name"])
    assert result.exit_code == 2 and "NAME" in result.output


def test_serve_binds_loopback_on_8080_by_default() -> None:
    result = CliRunner().invoke(command_line(), ["serve", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "127.0.0.1" in result.output and "8080" in result.output and "--workers" in result.output


def test_serve_refuses_a_bad_config_in_one_line(tmp_path: object) -> None:
    result = CliRunner().invoke(command_line(), ["serve", "--config", "/nonexistent/lyra.toml"])
    assert result.exit_code == 2
    assert "no such file" in result.output and "Traceback" not in result.output
