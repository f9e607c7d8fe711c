"""One schema for each fact: `lyra budget --json` and GET /v1/budget, `lyra usage --json` and
GET /v1/usage write the same names and types over the same ledger and state, and every money
field in them, and in consensus and decide answers, is a JSON number of exact USD."""

from __future__ import annotations

import asyncio
import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from gateway_support import DESK_TOKEN, MESSAGES, OPS_TOKEN, gateway_config_text, running
from typer.testing import CliRunner

from lyra import Lyra
from lyra.cli.commands import app
from lyra.service import create_app
from lyra.simulator import Simulator
from support import engine_env

DESK = {"Authorization": f"Bearer {DESK_TOKEN}"}
OPS = {"Authorization": f"Bearer {OPS_TOKEN}"}
# The documented form: a JSON number of USD with at most 9 decimals, no exponent, no trailing zero.
USD_NUMBER = re.compile(r"-?(0|[1-9]\d*)(\.\d{0,8}[1-9])?")
CAP_AMOUNTS = ("limit", "spent", "reserved", "remaining", "forecast")


class Number(str):
    """A JSON number kept as the text it was written as."""


def raw(text: str) -> Any:
    """Parse JSON keeping every number's own text, so the test sees exactly how money was written."""
    return json.loads(text, parse_float=Number, parse_int=Number)


def money_fields(value: Any, where: str = "") -> list[tuple[str, Any]]:
    """Every money field of an answer: `*_usd` fields, and the amounts of a cap line in `usd`."""
    found: list[tuple[str, Any]] = []
    if isinstance(value, dict):
        usd_line = value.get("unit") == "usd"
        for key, item in value.items():
            path = f"{where}.{key}"
            if (key.endswith("_usd") and key != "notional_usd") or (usd_line and key in CAP_AMOUNTS):
                found.append((path, item))
            else:
                found += money_fields(item, path)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += money_fields(item, f"{where}[{i}]")
    return found


def assert_money_is_exact_usd(answer: Any) -> int:
    fields = money_fields(answer)
    for path, value in fields:
        assert isinstance(value, Number) and USD_NUMBER.fullmatch(value), (path, value)
    for path, value in _nanos_fields(answer):
        assert isinstance(value, Number) and re.fullmatch(r"-?\d+", value), (path, value)
    return len(fields)


def _nanos_fields(value: Any, where: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [f for k, v in value.items() for f in ([(f"{where}.{k}", v)] if k.endswith("_nanos")
                                                      else _nanos_fields(v, f"{where}.{k}"))]
    if isinstance(value, list):
        return [f for i, v in enumerate(value) for f in _nanos_fields(v, f"{where}[{i}]")]
    return []


def shape(value: Any) -> Any:
    """Names and JSON types, not values: a dict's keys with the shape of each, a number as `number`."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    return "number" if isinstance(value, Number) else type(value).__name__


@pytest.fixture
def config(sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A gateway config on a SQLite state file and ledger that the CLI then reads too."""
    for name, value in (engine_env(sim) | {"LYRA_LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.db'}"}).items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "lyra.toml"
    path.write_text(gateway_config_text(state=f'backend = "sqlite"\npath = "{tmp_path / "state.db"}"'))
    return path


async def served(config: Path) -> dict[str, str]:
    """Spend through the gateway (chat, a consensus, a decision), then read its budget and usage."""
    async with running(create_app(Lyra.from_config(config))) as url, aiohttp.ClientSession() as session:
        for _ in range(2):
            async with session.post(url + "/chat/completions", headers=DESK,
                                    json={"model": "tier:fast", "messages": MESSAGES}) as r:
                assert r.status == 200, await r.text()
        answers = {}
        async with session.post(url + "/consensus", headers=OPS,
                                json={"messages": MESSAGES, "panel": "quick", "cascade": False}) as r:
            assert r.status == 200, await r.text()
            answers["/consensus"] = await r.text()
        async with session.post(url + "/decide", headers=OPS, json={"sample": "GOOGL"}) as r:
            assert r.status == 200, await r.text()
            answers["/decide"] = await r.text()
        for path in ("/budget", "/usage"):  # last: they say what everything above spent
            async with session.get(url + path, headers=OPS) as r:
                assert r.status == 200, await r.text()
                answers[path] = await r.text()
    return answers


async def cli_json(*argv: str) -> Any:
    result = await asyncio.to_thread(CliRunner().invoke, app, list(argv))
    assert result.exit_code == 0, result.output
    return raw(result.stdout)


async def test_budget_and_usage_have_one_schema_in_the_cli_and_the_gateway(config: Path) -> None:
    answers = await served(config)
    gateway_budget, gateway_usage = raw(answers["/budget"]), raw(answers["/usage"])
    cli_budget = await cli_json("budget", "-c", str(config), "--json")
    cli_usage = await cli_json("usage", "-c", str(config), "--since", "1d", "--json")

    # The same caps, named and typed alike, with the same amounts for the same state.
    cli_caps = {c["name"]: c for c in cli_budget["caps"]}
    gateway_caps = {c["name"]: c for c in gateway_budget["caps"]}
    assert set(cli_caps) == set(gateway_caps) and "client:desk" in gateway_caps and "global" in gateway_caps
    for name, line in gateway_caps.items():
        from_cli = {k: v for k, v in cli_caps[name].items() if k != "forecast"}  # the CLI adds a forecast
        assert shape(from_cli) == shape(line) and from_cli == line, name
    assert Decimal(gateway_caps["client:desk"]["spent"]) > 0
    assert gateway_caps["key_tokens:" + next(n.split(":")[1] for n in gateway_caps if n.startswith("key:"))][
        "unit"] == "tokens"
    for field in ("day", "money", "caps"):
        assert shape(cli_budget[field]) == shape(gateway_budget[field]) or field == "caps"
        assert cli_budget[field] == gateway_budget[field] or field == "caps"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", cli_budget["day"])

    # Usage lines: the same fields and types, the same rows.
    assert [shape(row) for row in cli_usage["rows"]] == [shape(row) for row in gateway_usage["data"]]
    assert [(r["group"], r["cost_usd"]) for r in cli_usage["rows"]] == [
        (r["group"], r["cost_usd"]) for r in gateway_usage["data"]]
    for row in gateway_usage["data"]:
        assert Decimal(row["cost_usd"]) * 10**9 == int(row["cost_nanos"])

    for answer in (cli_budget, gateway_budget, cli_usage, gateway_usage):
        assert assert_money_is_exact_usd(answer) > 0


async def test_consensus_and_decide_answers_write_money_as_exact_usd(config: Path) -> None:
    answers = await served(config)
    consensus, decide = raw(answers["/consensus"]), raw(answers["/decide"])
    assert assert_money_is_exact_usd(consensus) == 1 + len(consensus["votes"])  # the panel's and each vote's
    assert Decimal(consensus["cost_usd"]) > 0
    from_cli = await cli_json("consensus", "-c", str(config), "--panel", "quick", "--json", MESSAGES[0]["content"])
    assert assert_money_is_exact_usd(from_cli) >= 1 + len(from_cli["votes"])  # and an escalation's, if any
    assert set(from_cli) == set(consensus) and shape(from_cli["cost_usd"]) == shape(consensus["cost_usd"])
    # The account block is the paper account's market figures (equity, P&L); its AI spend is in nano-dollars.
    assert assert_money_is_exact_usd({k: v for k, v in decide.items() if k != "account"}) > 0
    assert re.fullmatch(r"\d+", decide["account"]["ai_spend_nanos"])
    assert Decimal(decide["cost_usd"]) * 10**9 == int(decide["cost_nanos"]) > 0


def test_the_money_form_check_refuses_strings_floats_and_exponents() -> None:
    for written in ('{"cost_usd": "0.001"}', '{"cost_usd": 1e-7}', '{"cost_usd": 0.10}',
                    '{"unit": "usd", "spent": "1"}', '{"cost_usd": 0.0000000001}'):
        with pytest.raises(AssertionError):
            assert_money_is_exact_usd(raw(written))
    assert assert_money_is_exact_usd(raw('{"unit": "usd", "spent": 0.000000123, "cost_nanos": 123}')) == 1
