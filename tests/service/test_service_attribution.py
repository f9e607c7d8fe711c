"""Spend attributed by end user (OpenAI's `user`) and by tags (`metadata`, `x-lyra-tags`), end to end:
the real `openai` SDK against the gateway on loopback, the simulator behind it, the ledger file,
GET /v1/usage?by=user|tag, and `lyra usage --by user|tag` over the same ledger."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest
import typer
from gateway_support import DESK_TOKEN, MESSAGES, OPS_TOKEN, running
from quant_support import QUANT_TOKEN, quant_config_text
from typer.testing import CliRunner

from lyra import Lyra
from lyra.cli.budget import register
from lyra.ledger import Ledger, LedgerRow, queries
from lyra.service import create_app
from lyra.simulator import Simulator
from support import engine_env

TAGS = "x-lyra-tags"
ODD_USER = "[red]jürgen[/red] #7"  # markup, a non-ASCII letter: printed as sent, never interpreted


@contextlib.asynccontextmanager
async def serving(sim: Simulator, tmp_path: Path) -> AsyncIterator[tuple[str, dict[str, str]]]:
    """The gateway with desk, quant and ops; yields its URL and the environment that finds its ledger."""
    path = tmp_path / "lyra.toml"
    path.write_text(quant_config_text())
    environ = engine_env(sim) | {"LYRA_LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.db'}"}
    async with running(create_app(Lyra.from_config(path, environ=environ))) as url:
        yield url, environ


def sdk(url: str, token: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key=token, base_url=url, max_retries=0)


def ledger_rows(environ: dict[str, str]) -> list[LedgerRow]:
    ledger = Ledger(environ["LYRA_LEDGER_URL"])
    try:
        return ledger.rows(since_ts=0)
    finally:
        ledger.close()


async def usage(client: openai.AsyncOpenAI, by: str) -> dict[Any, int]:
    """GET /v1/usage?by=...: each group's billed cost in nano-dollars."""
    answer = await client.get(f"/usage?by={by}", cast_to=object)
    assert isinstance(answer, dict) and answer["by"] == by
    return {line["group"]: line["cost_nanos"] for line in answer["data"]}


async def traffic(url: str) -> None:
    """desk: three users, tags from metadata and from the header (one tag each); quant: its own user."""
    async with sdk(url, DESK_TOKEN) as desk, sdk(url, QUANT_TOKEN) as quant:
        await desk.chat.completions.create(model="tier:fast", messages=MESSAGES, max_tokens=24, user="alice",
                                           metadata={"desk": "alpha"})
        await desk.chat.completions.create(model="tier:fast", messages=MESSAGES, max_tokens=24, user="alice",
                                           extra_headers={TAGS: "run:7"})
        await desk.chat.completions.create(model="tier:fast", messages=MESSAGES, max_tokens=24, user=ODD_USER,
                                           metadata={"desk": "alpha"}, extra_headers={TAGS: "desk:alpha ,, desk:alpha,"})
        await desk.chat.completions.create(model="tier:fast", messages=MESSAGES, max_tokens=24)  # no one
        stream = await desk.chat.completions.create(model="tier:fast", messages=MESSAGES, max_tokens=24,
                                                    stream=True, user="bob", metadata={"run": "7"})
        async for _ in stream:
            pass
        await quant.chat.completions.create(model="tier:fast", messages=MESSAGES, max_tokens=24, user="carol",
                                            metadata={"book": "secret-fund"})


async def test_usage_by_user_and_by_tag_sum_exactly_to_the_ledger(sim: Simulator, tmp_path: Path) -> None:
    async with serving(sim, tmp_path) as (url, environ):
        await traffic(url)
        async with sdk(url, DESK_TOKEN) as desk, sdk(url, OPS_TOKEN) as ops:
            by_user, by_tag = await usage(desk, "user"), await usage(desk, "tag")
            everyone, every_tag = await usage(ops, "user"), await usage(ops, "tag")
    attempts = [row for row in ledger_rows(environ) if row.kind == "attempt"]
    desk_rows = [row for row in attempts if row.client == "desk"]
    assert set(by_user) == {"alice", ODD_USER, "bob", None}
    assert set(by_tag) == {"desk:alpha", "run:7", None}  # the header's tag and metadata's, once
    for group, cost in by_user.items():
        assert cost == sum(row.cost_nanos for row in desk_rows if row.end_user == group) > 0
    assert sum(by_user.values()) == sum(by_tag.values()) == sum(row.cost_nanos for row in desk_rows)
    assert everyone["carol"] == sum(row.cost_nanos for row in attempts if row.end_user == "carol") > 0
    assert every_tag["book:secret-fund"] > 0
    assert sum(everyone.values()) == sum(every_tag.values()) == sum(row.cost_nanos for row in attempts)
    assert {row.tags for row in desk_rows} == {"desk:alpha", "run:7", None}
    assert {row.end_user for row in desk_rows if row.tags == "run:7"} == {"alice", "bob"}


async def test_a_client_never_sees_another_clients_users_or_tags(sim: Simulator, tmp_path: Path) -> None:
    async with serving(sim, tmp_path) as (url, _):
        await traffic(url)
        async with sdk(url, QUANT_TOKEN) as quant, sdk(url, DESK_TOKEN) as desk:
            assert set(await usage(quant, "user")) == {"carol"}
            assert set(await usage(quant, "tag")) == {"book:secret-fund"}
            text = json.dumps([await desk.get(f"/usage?by={by}", cast_to=object) for by in ("user", "tag")])
    assert "carol" not in text and "secret-fund" not in text and "alice" in text


@pytest.mark.parametrize(("fields", "headers", "param"), [
    ({"metadata": {"desk": 5}}, {}, "metadata.desk"),
    ({"metadata": "desk:alpha"}, {}, "metadata"),
    ({"metadata": {f"k{i}": "v" for i in range(17)}}, {}, "metadata"),
    ({"metadata": {"desk": "a" * 129}}, {}, "metadata.desk"),
    ({"metadata": {"desk": ""}}, {}, "metadata.desk"),
    ({"metadata": {"a,b": "c"}}, {}, "metadata"),
    ({"metadata": {"desk:x": "c"}}, {}, "metadata"),
    ({"metadata": {"desk": "two\nlines"}}, {}, "metadata.desk"),
    ({"metadata": {"desk": "a,b"}}, {}, "metadata.desk"),
    ({"user": "u" * 257}, {}, "user"),
    ({"user": 42}, {}, "user"),
    ({"user": "bell\x07"}, {}, "user"),
    ({"user": "lyra-" + "Ab3" * 10}, {}, "user"),  # shaped like a token: never stored
    ({}, {TAGS: "t" * 194}, TAGS),
    ({}, {TAGS: "ok,sk-" + "Zz9" * 10}, TAGS),
    ({"metadata": {f"k{i}": "v" for i in range(10)}}, {TAGS: ",".join(f"h{i}" for i in range(7))}, "metadata"),
])
async def test_bad_attribution_is_a_one_line_400_naming_the_field(
        sim: Simulator, tmp_path: Path, fields: dict[str, Any], headers: dict[str, str], param: str) -> None:
    async with serving(sim, tmp_path) as (url, environ), sdk(url, DESK_TOKEN) as desk:
        with pytest.raises(openai.BadRequestError) as caught:
            await desk.chat.completions.create(model="tier:fast", messages=MESSAGES, max_tokens=16,
                                               extra_body=fields, extra_headers=headers)
    error = caught.value
    assert error.param == param
    assert isinstance(error.body, dict) and "\n" not in error.body["message"]
    assert error.body["message"].startswith(f"{param}:") or param == "metadata"
    assert "Ab3Ab3" not in error.body["message"] and "Zz9Zz9" not in error.body["message"]
    assert error.response.headers["x-ratelimit-remaining-requests"]  # the request still counted
    assert ledger_rows(environ) == []  # refused before anything was routed


def invoke(environ: dict[str, str], *args: str) -> str:
    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, list(args), env=environ | {"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    return result.stdout


async def test_lyra_usage_by_user_and_by_tag(sim: Simulator, tmp_path: Path) -> None:
    async with serving(sim, tmp_path) as (url, environ):
        await traffic(url)
    config = str(tmp_path / "lyra.toml")
    table = invoke(environ, "usage", "-c", config, "--by", "user", "--since", "1h")
    assert "by user" in table and "alice" in table and "carol" in table
    assert ODD_USER in table  # literally: the markup is not read as markup
    rows = json.loads(invoke(environ, "usage", "-c", config, "--by", "user", "--json"))["rows"]
    attempts = [row for row in ledger_rows(environ) if row.kind == "attempt"]
    assert {row["group"]: row["cost_nanos"] for row in rows}["alice"] == sum(
        row.cost_nanos for row in attempts if row.end_user == "alice")
    assert sum(row["cost_nanos"] for row in rows) == sum(row.cost_nanos for row in attempts)
    tags = invoke(environ, "usage", "-c", config, "--by", "tag")
    assert "desk:alpha" in tags and "book:secret-fund" in tags
    assert "a request with several tags counts in each" in " ".join(tags.split())


async def test_usage_by_tag_past_its_bound_is_a_400_naming_by(sim: Simulator, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    async with serving(sim, tmp_path) as (url, _):
        await traffic(url)
        monkeypatch.setattr(queries, "MAX_SUMMARY_TAGS", 1)
        async with sdk(url, DESK_TOKEN) as desk:
            with pytest.raises(openai.BadRequestError) as caught:
                await desk.get("/usage?by=tag", cast_to=object)
    assert caught.value.param == "by" and "shorter window" in caught.value.message
