"""`lyra budget` and `lyra usage` over a ledger and a state file filled by a real engine run."""

from __future__ import annotations

import asyncio
import collections
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner, Result

from lyra import Lyra, LyraError
from lyra.cli.budget import parse_since, register
from lyra.days import budget_day
from lyra.ledger import Ledger
from lyra.money import usd_to_nanos
from lyra.simulator import Fault, Simulator
from lyra.state import Charge, SqliteBackend
from lyra.types import Completion
from support import budget_config_text, engine_env

KEY_NAMES = ("xai", "grok4", "codex", "deepseek1", "deepseek2", "premium", "microsoft", "universal")
FAILING_MODEL = "openai/gpt-4o-mini"


@dataclass
class Recorded:
    """What the engine run before the commands did: its config, ledger and completions."""

    config: Path
    ledger: Path
    state: Path
    done: list[Completion]


def cli() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def invoke(*args: str | Path, columns: int = 200) -> Result:
    return CliRunner().invoke(cli(), [str(a) for a in args], env={"COLUMNS": str(columns)})


def as_json(result: Result) -> dict[str, Any]:
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout, parse_float=Decimal)  # money is exact USD: read it as decimals
    assert isinstance(payload, dict)
    return payload


@pytest.fixture
async def recorded(sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Recorded:
    """A $1-a-day engine on a SQLite state file has served a few calls and failed one."""
    ledger, state = tmp_path / "ledger.db", tmp_path / "state.db"
    for name, value in (engine_env(sim) | {"LYRA_LEDGER_URL": f"sqlite:///{ledger}"}).items():
        monkeypatch.setenv(name, value)
    config = tmp_path / "lyra.toml"
    config.write_text(budget_config_text(daily=1.0).replace(
        '[state]\nbackend = "sqlite"', f'[state]\nbackend = "sqlite"\npath = "{state}"'))
    msg = [{"role": "user", "content": "BTC 1h: RSI 64. Signal?"}]
    async with Lyra.from_config(config) as lyra:
        done = [await lyra.complete(tier="fast", messages=msg, cache="bypass") for _ in range(3)]
        done += [await lyra.complete(task="market_analysis", messages=msg, cache="bypass") for _ in range(2)]
        done += [await lyra.complete(model="openai/gpt-4o", messages=msg, max_tokens=200) for _ in range(2)]
        sim.add_fault(Fault(kind="server_error", model=FAILING_MODEL))
        with pytest.raises(LyraError):
            await lyra.complete(model=FAILING_MODEL, messages=msg)
    return Recorded(config, ledger, state, done)


def ledger_spend(path: Path) -> int:
    ledger = Ledger(f"sqlite:///{path}")
    try:
        return ledger.spend_between(0, math.inf).total_nanos
    finally:
        ledger.close()


# --- lyra budget -------------------------------------------------------------------------------


def test_budget_json_shows_every_cap_with_todays_spend(recorded: Recorded) -> None:
    payload = as_json(invoke("budget", "-c", recorded.config, "--json"))
    caps = {c["name"]: c for c in payload["caps"]}
    expected = {"global"} | {f"tier:{t}" for t in ("premium", "advanced", "specialized", "fast")}
    expected |= {f"key:{k}" for k in KEY_NAMES} | {f"key_tokens:{k}" for k in KEY_NAMES}
    assert set(caps) == expected
    spent = sum(c.cost_nanos for c in recorded.done)
    assert spent > 0
    assert usd_to_nanos(caps["global"]["spent"]) == spent == ledger_spend(recorded.ledger)
    assert caps["global"] | {"spent": 0} == {"name": "global", "unit": "usd", "limit": 1,
                                             "spent": 0, "reserved": 0, "remaining": Decimal(1_000_000_000 - spent) / 10**9}
    tokens = collections.Counter[str]()
    for c in recorded.done:
        tokens[c.key_name or ""] += c.prompt_tokens + c.completion_tokens
    for key, used in tokens.items():
        assert caps[f"key_tokens:{key}"]["unit"] == "tokens"
        assert caps[f"key_tokens:{key}"]["spent"] == used
    assert payload["day"] == datetime.now(UTC).strftime("%Y-%m-%d")


def test_budget_rebuilds_from_the_ledger_with_memory_state(recorded: Recorded, tmp_path: Path) -> None:
    memory = tmp_path / "memory.toml"
    memory.write_text(budget_config_text(daily=1.0).replace('[state]\nbackend = "sqlite"', '[state]\nbackend = "memory"'))
    payload = as_json(invoke("budget", "--config", memory, "--json"))
    caps = {c["name"]: c for c in payload["caps"]}
    assert usd_to_nanos(caps["global"]["spent"]) == ledger_spend(recorded.ledger) > 0


async def spend_and_hold(path: Path, *, spent: int, held: int) -> None:
    """What another process on the same state file did: spent some of today's cap, holds more."""
    day = budget_day(datetime.now(UTC).timestamp())
    state = SqliteBackend(path)
    try:
        await state.seed_committed({f"d{day}:global": spent})
        assert await state.reserve("in-flight", [Charge(f"d{day}:global", 1_000_000_000, held)], 300) is None
    finally:
        await state.close()


def test_budget_table_has_bars_for_spent_and_reserved(recorded: Recorded) -> None:
    asyncio.run(spend_and_hold(recorded.state, spent=500_000_000, held=300_000_000))
    result = invoke("budget", "-c", recorded.config, columns=80)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    global_row = next(line for line in lines if line.lstrip().startswith("global"))
    assert global_row.split() == ["global", "█████▒▒▒··", "80%", "$0.50", "$0.30", "$0.20", "$1.00"]
    headings = [line.strip() for line in lines if line.strip() in ("tiers", "keys", "key tokens")]
    assert headings == ["tiers", "keys", "key tokens"]
    assert sum(1 for line in lines if line.lstrip().startswith("universal")) == 2  # $ and tokens
    assert all(len(line) <= 80 for line in lines)


def test_budget_with_a_missing_config_is_one_line(tmp_path: Path) -> None:
    result = invoke("budget", "-c", tmp_path / "nope.toml", columns=40)
    assert result.exit_code == 2
    config_line, error_line = result.stderr.splitlines()  # which file, then why it cannot be used
    assert config_line.startswith("config: ") and "nope.toml: no such file" in error_line


# --- lyra usage --------------------------------------------------------------------------------


def test_usage_by_model_matches_the_calls(recorded: Recorded) -> None:
    payload = as_json(invoke("usage", "-c", recorded.config, "--since", "1h", "--by", "model", "--json"))
    rows = {r["group"]: r for r in payload["rows"]}
    requests = collections.Counter(c.model for c in recorded.done)
    cost = collections.Counter[str]()
    for c in recorded.done:
        cost[c.model] += c.cost_nanos
    requests[FAILING_MODEL] += 1
    assert {m: r["requests"] for m, r in rows.items()} == dict(requests)
    assert {m: r["cost_nanos"] for m, r in rows.items() if r["cost_nanos"]} == +cost
    assert rows[FAILING_MODEL]["errors"] == 1
    assert all(r["p50_latency_ms"] is not None for m, r in rows.items() if m != FAILING_MODEL)
    assert payload["by"] == "model"


def test_usage_by_day_and_by_key(recorded: Recorded) -> None:
    days = as_json(invoke("usage", "-c", recorded.config, "--by", "day", "--json"))["rows"]
    assert [(d["group"], d["requests"]) for d in days] == [
        (datetime.now(UTC).strftime("%Y-%m-%d"), len(recorded.done) + 1)]
    keys = as_json(invoke("usage", "-c", recorded.config, "--by", "key", "--json"))["rows"]
    spent = {k["group"]: k["cost_nanos"] for k in keys if k["group"]}
    assert sum(spent.values()) == sum(c.cost_nanos for c in recorded.done)


def test_usage_table_has_totals(recorded: Recorded) -> None:
    result = invoke("usage", "-c", recorded.config, "--by", "tier", columns=80)
    assert result.exit_code == 0, result.output
    assert all(len(line) <= 80 for line in result.stdout.splitlines())
    for text in ("Usage since", "by tier", "requests", "p95", "fast", "premium", "total"):
        assert text in result.stdout
    total = next(line for line in result.stdout.splitlines() if "total" in line)
    assert f" {len(recorded.done) + 1} " in total


@pytest.mark.parametrize("since", ["30m", "12h", "7d", "2020-01-01", "2020-01-01T12:00:00+02:00"])
def test_usage_accepts_each_form_of_since(recorded: Recorded, since: str) -> None:
    rows = as_json(invoke("usage", "-c", recorded.config, "--since", since, "--json"))["rows"]
    assert sum(r["requests"] for r in rows) == len(recorded.done) + 1


def test_usage_since_a_future_date_is_empty(recorded: Recorded) -> None:
    assert as_json(invoke("usage", "-c", recorded.config, "--since", "2999-01-01", "--json"))["rows"] == []
    result = invoke("usage", "-c", recorded.config, "--since", "2999-01-01")
    assert "nothing recorded" in result.stdout


@pytest.mark.parametrize(("args", "option"), [
    (["--since", "7x"], "--since"), (["--since", "yesterday"], "--since"), (["--by", "colour"], "--by"),
])
def test_usage_bad_option_is_one_line_naming_it(args: list[str], option: str) -> None:
    result = invoke("usage", *args, columns=40)  # one line even where a table would wrap
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"error: {option}:")


def test_usage_without_a_ledger_file_creates_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "none" / "ledger.db"
    monkeypatch.setenv("LYRA_LEDGER_URL", f"sqlite:///{missing}")
    assert as_json(invoke("usage", "--json"))["rows"] == []
    assert not missing.exists()


# --- parse_since -------------------------------------------------------------------------------


def test_parse_since_durations_dates_and_times() -> None:
    now = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)
    assert parse_since("30m", now=now) == now - timedelta(minutes=30)
    assert parse_since("12h", now=now) == now - timedelta(hours=12)
    assert parse_since("7D", now=now) == now - timedelta(days=7)
    assert parse_since("1.5h", now=now) == now - timedelta(minutes=90)
    assert parse_since("2025-01-31") == datetime(2025, 1, 31, tzinfo=UTC)
    assert parse_since("2025-01-31T08:00:00+01:00") == datetime(2025, 1, 31, 7, tzinfo=UTC)
    for bad in ("", "7", "-3d", "d7", "31/01/2025", "99999999999d"):
        with pytest.raises(ValueError, match="--since"):
            parse_since(bad)


def test_budget_shows_each_tiers_end_of_day_forecast(recorded: Recorded) -> None:
    payload = as_json(invoke("budget", "-c", recorded.config, "--json"))
    tiers = {c["name"]: c for c in payload["caps"] if c["name"].startswith("tier:")}
    assert set(tiers) == {"tier:premium", "tier:advanced", "tier:specialized", "tier:fast"}
    for cap in tiers.values():
        assert cap["forecast"] >= cap["spent"]  # today's pace only adds to what is spent


def test_budget_caption_names_a_tier_on_pace_to_pass_its_cap() -> None:
    from lyra.budget.governor import CapLine
    from lyra.cli.budget import BudgetView, budget_table

    lines = [CapLine("tier:advanced", 70_000_000_000, 30_000_000_000, 0), CapLine("tier:fast", 20_000_000_000, 1, 0)]
    view = BudgetView("2026-11-25", lines, 0, {"advanced": 90_000_000_000, "fast": 5})
    caption = str(budget_table(view).caption)
    assert "on pace to pass its cap today" in caption and "advanced $90.00 of $70.00" in caption
    assert "fast" not in caption.split("today")[1]
