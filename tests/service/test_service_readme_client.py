"""The README's gateway example works as written: the clients its `lyra token new` lines create can
call (or are refused, as the README says) the routes its examples call."""

from __future__ import annotations

import re
import shlex
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from gateway_support import MESSAGES, running
from typer.testing import CliRunner

from lyra import Lyra
from lyra.cli.commands import app
from lyra.service import create_app
from lyra.simulator import Simulator
from support import engine_env, fast_config_text

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_token_commands() -> dict[str, list[str]]:
    """Each `lyra token new NAME ...` line of the README's gateway example, by client name, as argv."""
    section = README.read_text().split("## The gateway, reports and the dashboard", 1)[1]
    commands = {}
    for line in section.splitlines():
        if line.startswith("lyra token new ") and "--admin" not in line:
            argv = shlex.split(line.split("#", 1)[0])[1:]
            commands[argv[2]] = argv
    return commands


def readme_chat_model() -> str:
    section = README.read_text().split("## The gateway, reports and the dashboard", 1)[1]
    found = re.search(r'client\.chat\.completions\.create\(model="([^"]+)"', section)
    assert found, "the README's gateway section has no chat example"
    return found.group(1)


def new_client(argv: list[str]) -> tuple[str, str]:
    """Run the README's `lyra token new` line: the token it prints, and the lines for lyra.toml."""
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.output
    token = next(line.strip() for line in result.stdout.splitlines() if line.startswith("    lyra-"))
    lines = result.stdout[result.stdout.index("[clients."):]
    return token, lines


@pytest.fixture
async def readme_gateway(sim: Simulator, tmp_path: Path) -> AsyncIterator[tuple[str, dict[str, str]]]:
    """The example config plus the README's clients, served; yields the /v1 URL and each client's token."""
    tokens, tables = {}, []
    for name, argv in readme_token_commands().items():
        tokens[name], table = new_client(argv)
        tables.append(table)
    path = tmp_path / "lyra.toml"
    path.write_text(fast_config_text() + "\n" + "\n".join(tables))
    environ = engine_env(sim) | {"LYRA_LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.db'}"}
    async with running(create_app(Lyra.from_config(path, environ=environ))) as url:
        yield url, tokens


async def call(session: aiohttp.ClientSession, method: str, url: str, token: str,
               body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
    async with session.request(method, url, json=body, headers={"Authorization": f"Bearer {token}"}) as r:
        return r.status, await r.json()


def readme_requests() -> list[tuple[str, str, dict[str, Any] | None]]:
    """The README's example calls: its chat line, and its routes with their documented bodies."""
    return [("POST", "/chat/completions", {"model": readme_chat_model(), "messages": MESSAGES}),
            ("POST", "/consensus", {"messages": MESSAGES}),  # the default panel
            ("POST", "/decide", {"sample": "GOOGL"}),
            ("GET", "/models", None), ("GET", "/usage", None), ("GET", "/budget", None),
            ("GET", "/report", None)]


def test_the_readme_creates_a_client_with_every_tier_and_one_with_two() -> None:
    commands = readme_token_commands()
    assert "desk" in commands and "--tiers" not in commands["desk"]
    assert "chat" in commands and commands["chat"][commands["chat"].index("--tiers") + 1] == "fast,advanced"


async def test_the_readme_desk_client_can_call_every_example_route(
        readme_gateway: tuple[str, dict[str, str]]) -> None:
    url, tokens = readme_gateway
    async with aiohttp.ClientSession() as session:
        for method, path, body in readme_requests():
            status, answer = await call(session, method, url + path, tokens["desk"], body)
            assert status == 200, (path, answer)


async def test_the_readme_chat_client_chats_and_is_refused_what_the_readme_says(
        readme_gateway: tuple[str, dict[str, str]]) -> None:
    url, tokens = readme_gateway
    async with aiohttp.ClientSession() as session:
        status, answer = await call(session, "POST", url + "/chat/completions", tokens["chat"],
                                    {"model": readme_chat_model(), "messages": MESSAGES})
        assert status == 200, answer
        for path, body in (("/decide", {"sample": "GOOGL"}), ("/consensus", {"messages": MESSAGES})):
            status, answer = await call(session, "POST", url + path, tokens["chat"], body)
            assert status == 403 and answer["error"]["code"] == "tier_not_allowed", (path, answer)


async def test_a_401_names_the_header_to_send_and_never_echoes_what_was_sent(
        readme_gateway: tuple[str, dict[str, str]]) -> None:
    url, _ = readme_gateway
    sent = "lyra-" + "Nq3" * 14
    async with aiohttp.ClientSession() as session:
        async with session.get(url + "/budget") as r:
            missing = (r.status, (await r.json())["error"]["message"])
        async with session.get(url + "/budget", headers={"Authorization": f"Token {sent}"}) as r:
            malformed = (r.status, await r.text())
    assert missing == (401, "missing bearer token: send `Authorization: Bearer <token>`")
    assert malformed[0] == 401 and "expected `Bearer <token>`" in malformed[1] and sent not in malformed[1]


def test_the_masking_of_bearer_tokens_spares_only_the_placeholder() -> None:
    from lyra.log import mask_secrets

    assert mask_secrets("send `Authorization: Bearer <token>`") == "send `Authorization: Bearer <token>`"
    for secret in ("<token>abc", "<token><token>", "lyra-abc", "<tokens>"):
        assert mask_secrets(f"Authorization: Bearer {secret} sent") == "Authorization: Bearer *** sent"
