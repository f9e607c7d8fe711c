"""Models on `[upstreams.NAME]` endpoints, over loopback: a second simulator and a plain OpenAI server.

OpenRouter (the default upstream) is the `sim` fixture; upstream `a` is another simulator run
with its own key; upstream `local` is a plain OpenAI-compatible server with no key and no cost
fields (tests/upstreams/openai_server.py).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path

import openai
import pytest
import typer
from openai_server import OpenAIServer
from typer.testing import CliRunner

from lyra import BudgetExceeded, Lyra, NoModelAvailable
from lyra.cli.budget import register
from lyra.cli.live import register as register_plan
from lyra.config import load_config
from lyra.config.upstreams import split_model
from lyra.errors import ConfigError
from lyra.money import usd_to_nanos
from lyra.service import create_app
from lyra.simulator import Fault, Simulator, SimulatorOptions
from lyra.simulator.state import key_label
from lyra.trading.cassette import Cassette
from service.gateway_support import DESK_TOKEN, gateway_config_text, running
from support import TOKENS, engine_env, fast_config_text

MSG = [{"role": "user", "content": "Summarise BTC in one line."}]
FAST_MODELS = 'models = ["google/gemini-2.5-flash-lite", "openai/gpt-4o-mini", "anthropic/claude-3-haiku"]'
MARKET_MODELS = 'models = ["anthropic/claude-sonnet-4.6", "deepseek/deepseek-chat"]'
SIM_A_TOKEN = "sk-upstream-a-" + "51c0de" * 8
# OpenRouter's own body fields and headers, none of which another upstream may be sent.
OPENROUTER_ONLY_FIELDS = {"provider", "models", "usage", "transforms", "reasoning", "session_id", "route",
                          "plugins", "service_tier"}
OPENROUTER_HEADERS = {"x-title", "x-openrouter-title", "http-referer"}

# local: 0.2 and 1.0 USD per million tokens = 200 and 1000 nano-dollars per token, exactly (under the
# fast tier's max_price, which an upstream's models are held to like any other).
LOCAL_PROMPT_NANOS, LOCAL_COMPLETION_NANOS = 200, 1000


def upstreams_toml(sim_a: Simulator, local: OpenAIServer, *, a_daily: str = "", local_extra: str = "") -> str:
    return f"""

[keys.sim_a]
purpose = "upstream a (a fine-tuning host)"
env = "LYRA_KEY_SIM_A"
daily_usd = 5
daily_tokens = 1_000_000

[upstreams.a]
base_url = "{sim_a.base_url}"
keys = ["sim_a"]
{a_daily}
models = [{{ id = "openai/gpt-4o-mini", prompt_per_m_usd = 0.1, completion_per_m_usd = 0.4 }}]

[upstreams.local]
base_url = "{local.base_url}"
models = [{{ id = "my-signal-ft", prompt_per_m_usd = 0.2, completion_per_m_usd = 1.0, context = 8192 }},
          {{ id = "free-ft", prompt_per_m_usd = 0, completion_per_m_usd = 0 }}]
{local_extra}
"""


@pytest.fixture
async def local() -> AsyncIterator[OpenAIServer]:
    server = await OpenAIServer(models=["my-signal-ft", "free-ft"]).start()
    yield server
    await server.stop()


@pytest.fixture
async def sim_a() -> AsyncIterator[Simulator]:
    async with Simulator(options=SimulatorOptions(time_scale=0.0, generation_lag_s=0.0)) as simulator:
        yield simulator


@pytest.fixture
def env(sim: Simulator) -> dict[str, str]:
    return {**engine_env(sim), "LYRA_KEY_SIM_A": SIM_A_TOKEN}


@pytest.fixture
def write(tmp_path: Path, sim_a: Simulator, local: OpenAIServer) -> Callable[..., Path]:
    def make(fast: str | None = None, market: str | None = None, *, extra: str = "", **upstream: str) -> Path:
        edits = {}
        if fast is not None:
            edits[FAST_MODELS] = f"models = {fast}"
        if market is not None:
            edits[MARKET_MODELS] = f"models = {market}"
        path = tmp_path / "lyra.toml"
        path.write_text(fast_config_text(**edits) + upstreams_toml(sim_a, local, **upstream) + extra)
        return path

    return make


async def test_a_tier_model_on_a_plain_server_is_sent_bare_and_costed_exactly(
        write: Callable[..., Path], env: dict[str, str], sim: Simulator, local: OpenAIServer) -> None:
    async with Lyra.from_config(write('["local:my-signal-ft", "openai/gpt-4o-mini"]'), environ=env) as lyra:
        c = await lyra.complete(tier="fast", messages=MSG)
        assert lyra.ledger is not None
        rows = lyra.ledger.rows(kind="attempt")
    assert (c.model, c.requested_model, c.key_name) == ("local:my-signal-ft", "local:my-signal-ft",
                                                        "local:keyless")
    assert c.cost_nanos == c.prompt_tokens * LOCAL_PROMPT_NANOS + c.completion_tokens * LOCAL_COMPLETION_NANOS
    assert c.cost_nanos > 0 and not c.cost_estimated and c.generation_id is None
    assert sim.stats.calls == 0  # OpenRouter was not asked
    body, headers = local.bodies[0], {k.lower() for k in local.headers[0]}
    assert body["model"] == "my-signal-ft"
    assert not OPENROUTER_ONLY_FIELDS & set(body)
    assert not OPENROUTER_HEADERS & headers and "authorization" not in headers  # a keyless server
    assert [(r.served_model, r.key_name, r.cost_nanos, r.cost_estimated, r.generation_id) for r in rows] == [
        ("local:my-signal-ft", "local:keyless", c.cost_nanos, False, None)]


async def test_a_simulator_upstream_gets_its_own_key_and_its_usage_cost_is_ignored(
        write: Callable[..., Path], env: dict[str, str], sim: Simulator, sim_a: Simulator) -> None:
    async with Lyra.from_config(write('["a:openai/gpt-4o-mini"]'), environ=env) as lyra:
        c = await lyra.complete(tier="fast", messages=MSG, provider={"order": ["OpenAI"]})
    # 0.1 and 0.4 USD per million at upstream a, not the simulator's own catalogue price (its usage.cost).
    assert c.cost_nanos == c.prompt_tokens * 100 + c.completion_tokens * 400
    assert (c.model, c.key_name, c.cost_estimated) == ("a:openai/gpt-4o-mini", "sim_a", False)
    assert sim.stats.calls == 0 and sim_a.stats.calls == 1
    assert set(sim_a.stats.by_key) == {key_label(SIM_A_TOKEN)}  # never an OpenRouter key
    sent = sim_a.received[0]
    assert sent["model"] == "openai/gpt-4o-mini" and not OPENROUTER_ONLY_FIELDS & set(sent)


async def test_a_dead_upstream_fails_over_to_the_other_with_both_attempts_recorded(
        write: Callable[..., Path], env: dict[str, str], local: OpenAIServer, sim_a: Simulator) -> None:
    async with Lyra.from_config(write('["local:my-signal-ft", "a:openai/gpt-4o-mini"]'), environ=env) as lyra:
        await local.stop()  # connections refused from now on
        c = await lyra.complete(tier="fast", messages=MSG)
        assert lyra.ledger is not None
        rows = lyra.ledger.rows(kind="attempt")
    assert c.model == "a:openai/gpt-4o-mini"
    tried = [(a.model, a.outcome, a.error_kind) for a in c.attempts]
    assert tried[0] == ("local:my-signal-ft", "error", "network") and tried[-1] == ("a:openai/gpt-4o-mini",
                                                                                      "ok", None)
    assert {a.model for a in c.attempts} == {"local:my-signal-ft", "a:openai/gpt-4o-mini"}
    assert "upstream 'local'" in c.attempts[0].message
    assert [(r.requested_model, r.status) for r in rows] == [
        (a.model, a.outcome) for a in c.attempts if a.outcome != "skipped"]
    assert sim_a.stats.calls == 1


async def test_an_erroring_simulator_upstream_fails_over_to_the_plain_server(
        write: Callable[..., Path], env: dict[str, str], local: OpenAIServer, sim_a: Simulator) -> None:
    sim_a.add_fault(Fault(kind="server_error", model="openai/gpt-4o-mini", status=503))
    async with Lyra.from_config(write('["a:openai/gpt-4o-mini", "local:my-signal-ft"]'), environ=env) as lyra:
        c = await lyra.complete(tier="fast", messages=MSG)
    assert c.model == "local:my-signal-ft" and local.calls == 1
    errors = [a for a in c.attempts if a.outcome == "error"]
    assert errors and {(a.model, a.status, a.key_name) for a in errors} == {("a:openai/gpt-4o-mini", 503,
                                                                              "sim_a")}


async def test_a_stream_from_the_plain_server_is_costed_from_its_final_usage(
        write: Callable[..., Path], env: dict[str, str], local: OpenAIServer) -> None:
    async with Lyra.from_config(write('["local:my-signal-ft"]'), environ=env) as lyra:
        stream = lyra.stream(tier="fast", messages=MSG)
        text = "".join([piece async for piece in stream])
        c = stream.completion
    assert text == local.content and c.text == text
    assert local.bodies[0]["stream"] is True and local.bodies[0]["stream_options"] == {"include_usage": True}
    assert c.completion_tokens == len(local.content.split(" "))
    assert c.cost_nanos == c.prompt_tokens * LOCAL_PROMPT_NANOS + c.completion_tokens * LOCAL_COMPLETION_NANOS
    assert not c.cost_estimated and c.model == "local:my-signal-ft"


async def test_a_self_hosted_model_priced_at_zero_costs_nothing(
        write: Callable[..., Path], env: dict[str, str]) -> None:
    async with Lyra.from_config(write('["local:free-ft"]'), environ=env) as lyra:
        c = await lyra.complete(tier="fast", messages=MSG)
    assert (c.model, c.cost_nanos, c.cost_estimated) == ("local:free-ft", 0, False) and c.prompt_tokens > 0


async def test_a_task_answer_on_an_upstream_is_cached_under_its_full_id(
        write: Callable[..., Path], env: dict[str, str], local: OpenAIServer) -> None:
    async with Lyra.from_config(write(market='["local:my-signal-ft"]'), environ=env) as lyra:
        first = await lyra.complete(task="market_analysis", messages=MSG)
        again = await lyra.complete(task="market_analysis", messages=MSG)
    assert first.model == again.model == "local:my-signal-ft"
    assert local.calls == 1 and again.cached and again.cost_nanos == 0


async def test_a_panel_member_on_another_upstream_votes_like_any_member(
        write: Callable[..., Path], env: dict[str, str], local: OpenAIServer, sim: Simulator) -> None:
    panel = """
[panels.mixed]
rule = "weighted"
threshold = 0.5
task = "signal_generation"
members = [
  { model = "local:my-signal-ft", key = "xai", weight = 0.6 },
  { model = "openai/gpt-4o-mini", key = "xai", weight = 0.4 },
]
"""
    async with Lyra.from_config(write(extra=panel), environ=env) as lyra:
        result = await lyra.consensus(messages=MSG, panel="mixed", cascade=False)
    votes = {v.model: v for v in result.votes}
    assert set(votes) == {"local:my-signal-ft", "openai/gpt-4o-mini"}
    local_vote = votes["local:my-signal-ft"]
    assert (local_vote.action, local_vote.served_model, local_vote.key) == ("BUY", "local:my-signal-ft", "xai")
    assert local_vote.cost_nanos > 0
    assert local.calls == 1 and sim.stats.calls == 1
    assert "response_format" in local.bodies[0]  # the decision schema goes to any upstream


async def test_an_upstream_daily_cap_refuses_its_models_and_the_tier_fails_over(
        write: Callable[..., Path], env: dict[str, str], sim_a: Simulator, local: OpenAIServer) -> None:
    # The cap is below one call's worst case (max_tokens alone: 600 at 0.4 USD per million, 240 micro-dollars).
    path = write('["a:openai/gpt-4o-mini", "local:my-signal-ft"]', a_daily="daily_usd = 0.0001")
    async with Lyra.from_config(path, environ=env) as lyra:
        c = await lyra.complete(tier="fast", messages=MSG)
        assert lyra.budget is not None
        lines = {line.name: line for line in await lyra.budget.snapshot()}
        with pytest.raises(BudgetExceeded, match="upstream:a"):
            await lyra.complete(model="a:openai/gpt-4o-mini", messages=MSG)
    assert c.model == "local:my-signal-ft" and sim_a.stats.calls == 0
    refused = [a for a in c.attempts if a.outcome == "skipped"]
    assert refused and "budget cap upstream:a reached" in refused[0].message
    assert lines["upstream:a"].limit == 100_000 and lines["upstream:a"].committed == 0


async def test_an_upstream_without_its_listing_prices_models_from_its_models_endpoint(
        write: Callable[..., Path], env: dict[str, str], local: OpenAIServer) -> None:
    local.models.append("listed-ft")
    local.listing_pricing["listed-ft"] = {"prompt": "0.0000002", "completion": "0.0000003"}
    local.models.append("unpriced-ft")
    path = write('["local:listed-ft"]', local_extra="prices_from_models = true")
    async with Lyra.from_config(path, environ=env) as lyra:
        c = await lyra.complete(tier="fast", messages=MSG)
        with pytest.raises(NoModelAvailable, match="'local:unpriced-ft' has no known price on upstream 'local'"):
            await lyra.complete(model="local:unpriced-ft", messages=MSG)
    assert c.model == "local:listed-ft"
    assert c.cost_nanos == c.prompt_tokens * 200 + c.completion_tokens * 300 and not c.cost_estimated


async def test_a_keyed_plain_server_gets_its_own_secret_only(
        tmp_path: Path, sim: Simulator, sim_a: Simulator) -> None:
    server = await OpenAIServer(api_key="sk-desk-" + "9e" * 20).start()
    try:
        text = fast_config_text(**{FAST_MODELS: 'models = ["desk:my-signal-ft"]'}) + f"""
[keys.desk]
env = "LYRA_KEY_DESK"
daily_usd = 5
daily_tokens = 1_000_000

[upstreams.desk]
base_url = "{server.base_url}"
keys = ["desk"]
models = [{{ id = "my-signal-ft", prompt_per_m_usd = 0.2, completion_per_m_usd = 1.0 }}]
"""
        (tmp_path / "lyra.toml").write_text(text)
        env = {**engine_env(sim), "LYRA_KEY_DESK": server.api_key or ""}
        async with Lyra.from_config(tmp_path / "lyra.toml", environ=env) as lyra:
            c = await lyra.complete(tier="fast", messages=MSG)
    finally:
        await server.stop()
    assert (c.model, c.key_name) == ("desk:my-signal-ft", "desk")
    assert server.headers[0]["Authorization"] == f"Bearer {server.api_key}"
    assert not any(token in str(server.headers) for token in TOKENS.values())


# --- configuration: each refusal is one line naming the field --------------------------------------


def test_a_model_with_no_known_price_is_refused_naming_model_and_upstream(
        write: Callable[..., Path], env: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as caught:
        Lyra.from_config(write('["local:no-such-ft"]'), environ=env)
    line = str(caught.value)
    assert "\n" not in line
    assert "tiers.fast.models[0]" in line and "'local:no-such-ft'" in line and "upstream 'local'" in line


def test_a_missing_upstream_key_variable_is_one_line(write: Callable[..., Path], env: dict[str, str]) -> None:
    del env["LYRA_KEY_SIM_A"]
    with pytest.raises(ConfigError, match=r"upstreams\.a\.keys\[0\]: environment variable LYRA_KEY_SIM_A "):
        load_config(write(), environ=env)


def test_openrouter_api_key_never_fills_an_upstream_key(write: Callable[..., Path], env: dict[str, str]) -> None:
    del env["LYRA_KEY_SIM_A"]
    env["OPENROUTER_API_KEY"] = TOKENS["xai"]
    with pytest.raises(ConfigError, match="LYRA_KEY_SIM_A"):
        load_config(write(), environ=env)


def test_a_tier_may_not_name_an_upstream_key(write: Callable[..., Path], env: dict[str, str]) -> None:
    path = write()
    path.write_text(path.read_text().replace('keys = ["premium", "universal"]', 'keys = ["premium", "sim_a"]', 1))
    with pytest.raises(ConfigError, match=r"tiers\.premium\.keys\[1\]: key 'sim_a' belongs to upstream 'a'"):
        load_config(path, environ=env)


def test_a_password_in_an_upstream_url_is_masked(tmp_path: Path, env: dict[str, str], sim_a: Simulator,
                                                  local: OpenAIServer) -> None:
    secret_url = local.base_url.replace("http://", "http://desk:hunter2-secret@")
    text = fast_config_text() + upstreams_toml(sim_a, local).replace(local.base_url, secret_url)
    (tmp_path / "lyra.toml").write_text(text)
    loaded = load_config(tmp_path / "lyra.toml", environ=env)
    from lyra.upstreams import Upstreams

    assert "hunter2-secret" not in repr(loaded) and "hunter2-secret" not in repr(loaded.settings.upstreams)
    assert "hunter2-secret" not in repr(list(Upstreams.of(loaded.settings)))
    assert "local" in repr(loaded.settings.upstreams)


def test_bad_upstream_names_and_prices_are_one_line(write: Callable[..., Path], env: dict[str, str]) -> None:
    path = write()
    cases = {
        "[upstreams.local]": ("[upstreams.Local]", "upstreams.Local: not an upstream name"),
        'id = "my-signal-ft", prompt_per_m_usd = 0.2': ('id = "my-signal-ft", prompt_per_m_usd = -1',
                                                       "upstreams.local.models.0.prompt_per_m_usd: must be at least 0"),
    }
    original = path.read_text()
    for old, (new, expected) in cases.items():
        path.write_text(original.replace(old, new, 1))
        with pytest.raises(ConfigError) as caught:
            load_config(path, environ=env)
        assert expected in str(caught.value) and "\n" not in str(caught.value)


async def test_an_upstream_answer_recorded_on_a_cassette_replays_with_no_call(
        write: Callable[..., Path], env: dict[str, str], local: OpenAIServer, tmp_path: Path) -> None:
    path, tape = write('["local:my-signal-ft"]'), tmp_path / "tape.json"
    recorder = Cassette(tape, "record")
    async with Lyra.from_config(path, environ=env) as lyra:
        lyra.set_interceptor(recorder.intercept)
        recorded = await lyra.complete(tier="fast", messages=MSG, seed=7)
    recorder.save()
    player = Cassette(tape, "replay")
    lyra = Lyra.from_config(path, environ=env)
    lyra.set_interceptor(player.intercept)
    await lyra.start_offline()
    try:
        replayed = await lyra.complete(tier="fast", messages=MSG, seed=7)
    finally:
        await lyra.aclose()
    assert local.calls == 1 and player.replayed == 1
    assert (replayed.model, replayed.text, replayed.cost_nanos) == ("local:my-signal-ft", recorded.text,
                                                                     recorded.cost_nanos)


@pytest.fixture
async def served_on_local(write: Callable[..., Path], env: dict[str, str], tmp_path: Path,
                          monkeypatch: pytest.MonkeyPatch) -> tuple[Path, int]:
    """An engine on a SQLite state file served two calls on upstream local (a $2 cap): config, spend."""
    ledger, state = tmp_path / "ledger.db", tmp_path / "state.db"
    for name, value in (env | {"LYRA_LEDGER_URL": f"sqlite:///{ledger}"}).items():
        monkeypatch.setenv(name, value)
    path = write('["local:my-signal-ft"]', local_extra="daily_usd = 2")
    text = path.read_text()
    path.write_text(text.replace('[state]\nbackend = "sqlite"', f'[state]\nbackend = "sqlite"\npath = "{state}"'))
    async with Lyra.from_config(path) as lyra:
        done = [await lyra.complete(tier="fast", messages=MSG, cache="bypass") for _ in range(2)]
    return path, sum(c.cost_nanos for c in done)


def test_lyra_budget_shows_each_upstream_cap_and_rebuilds_it_from_the_ledger(
        served_on_local: tuple[Path, int], tmp_path: Path) -> None:
    path, spent = served_on_local
    app = typer.Typer()
    register(app)
    memory = tmp_path / "memory.toml"
    memory.write_text(path.read_text().replace('backend = "sqlite"', 'backend = "memory"'))
    for config in (path, memory):  # the shared state, then a new one rebuilt from the ledger
        result = CliRunner().invoke(app, ["budget", "-c", str(config), "--json"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        caps = {c["name"]: c for c in json.loads(result.stdout, parse_float=Decimal)["caps"]}
        assert caps["upstream:local"]["limit"] == 2
        assert usd_to_nanos(caps["upstream:local"]["spent"]) == spent > 0
        assert "upstream:a" not in caps  # no daily_usd: no cap of its own
    table = CliRunner().invoke(app, ["budget", "-c", str(path)], env={"COLUMNS": "200"})
    assert table.exit_code == 0 and "upstreams" in table.stdout and "local" in table.stdout


def test_lyra_plan_prices_an_upstream_model_and_names_one_it_cannot(
        write: Callable[..., Path], env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    app = typer.Typer()
    register_plan(app)
    path = write(market='["local:my-signal-ft"]')
    result = CliRunner().invoke(app, ["plan", "--config", str(path), "--json", "--no-history"])
    assert result.exit_code == 0, result.output
    assert "local:my-signal-ft" in result.stdout
    listed = write(market='["local:listed-ft"]', local_extra="prices_from_models = true")
    refused = CliRunner().invoke(app, ["plan", "--config", str(listed), "--json", "--no-history"])
    assert refused.exit_code != 0 and "'local:listed-ft' has no known price on upstream 'local'" in refused.output
    assert "Traceback" not in refused.output


async def test_the_gateway_serves_an_upstream_model_by_its_full_id(
        env: dict[str, str], sim_a: Simulator, local: OpenAIServer, tmp_path: Path) -> None:
    text = gateway_config_text().replace(FAST_MODELS, 'models = ["local:my-signal-ft", "openai/gpt-4o-mini"]')
    path = tmp_path / "lyra.toml"
    path.write_text(text + upstreams_toml(sim_a, local))
    lyra = Lyra.from_config(path, environ=env | {"LYRA_LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.db'}"})
    async with running(create_app(lyra)) as url, openai.AsyncOpenAI(api_key=DESK_TOKEN, base_url=url,
                                                                     max_retries=0) as desk:
        listed = {m.id async for m in desk.models.list()}
        answer = await desk.chat.completions.create(model="local:my-signal-ft", messages=MSG)
    assert "local:my-signal-ft" in listed
    assert answer.model == "local:my-signal-ft" and answer.choices[0].message.content == local.content
    assert local.calls == 1 and local.bodies[0]["model"] == "my-signal-ft"
    assert not OPENROUTER_ONLY_FIELDS & set(local.bodies[0])


@pytest.mark.parametrize("streamed", [False, True])
async def test_an_answer_without_usage_is_booked_at_its_worst_case(
        write: Callable[..., Path], env: dict[str, str], local: OpenAIServer, streamed: bool) -> None:
    local.report_usage = False
    async with Lyra.from_config(write('["local:my-signal-ft"]'), environ=env) as lyra:
        if streamed:
            stream = lyra.stream(tier="fast", messages=MSG, max_tokens=50)
            _ = [piece async for piece in stream]
            c = stream.completion
        else:
            c = await lyra.complete(tier="fast", messages=MSG, max_tokens=50)
    # Nothing will reconcile it, so the most it can have cost: the prompt bound and all 50 tokens.
    assert c.cost_estimated and c.completion_tokens == 50
    assert c.cost_nanos == c.prompt_tokens * LOCAL_PROMPT_NANOS + 50 * LOCAL_COMPLETION_NANOS


def test_only_a_configured_prefix_names_an_upstream() -> None:
    upstreams = {"openai": object(), "local": object()}
    assert split_model("local:my-signal-ft", upstreams) == ("local", "my-signal-ft")
    assert split_model("openai:ft:gpt-4o-mini:desk::abc123", upstreams) == ("openai", "ft:gpt-4o-mini:desk::abc123")
    # OpenRouter's own ids, variants included, stay OpenRouter's even beside an upstream named `openai`.
    for model_id in ("openai/gpt-oss-20b:free", "openai/gpt-4o", "other:model", "local:"):
        assert split_model(model_id, upstreams) is None


async def test_a_refused_upstream_key_is_retired_and_the_tier_goes_on_to_openrouter(
        tmp_path: Path, sim: Simulator) -> None:
    server = await OpenAIServer(api_key="sk-desk-right-" + "9e" * 20).start()
    try:
        text = fast_config_text(**{FAST_MODELS: 'models = ["desk:my-signal-ft", "openai/gpt-4o-mini"]'}) + f"""
[keys.desk]
env = "LYRA_KEY_DESK"
daily_usd = 5
daily_tokens = 1_000_000

[upstreams.desk]
base_url = "{server.base_url}"
keys = ["desk"]
models = [{{ id = "my-signal-ft", prompt_per_m_usd = 0.2, completion_per_m_usd = 1.0 }}]
"""
        (tmp_path / "lyra.toml").write_text(text)
        env = {**engine_env(sim), "LYRA_KEY_DESK": "sk-desk-wrong-" + "1f" * 20}
        async with Lyra.from_config(tmp_path / "lyra.toml", environ=env) as lyra:
            first = await lyra.complete(tier="fast", messages=MSG)
            second = await lyra.complete(tier="fast", messages=MSG, cache="bypass")
    finally:
        await server.stop()
    assert first.model == second.model == "openai/gpt-4o-mini" and first.key_name != "desk"
    assert (first.attempts[0].model, first.attempts[0].status, first.attempts[0].key_name) == (
        "desk:my-signal-ft", 401, "desk")
    skipped = second.attempts[0]
    assert (skipped.model, skipped.outcome) == ("desk:my-signal-ft", "skipped")
    assert skipped.message.startswith("no usable key: key desk (retired")
    assert server.calls == 1 and sim.stats.calls == 2


def test_a_panel_member_names_a_key_of_its_own_upstream(write: Callable[..., Path], env: dict[str, str]) -> None:
    member = '\n[panels.mixed]\nmembers = [{{ model = "{model}", key = "{key}", weight = 1 }}]\n'
    for model, key, expected in (
            ("a:openai/gpt-4o-mini", "xai", r"panels\.mixed\.members\[0\]\.key: 'a:openai/gpt-4o-mini' is served by "
                                            r"upstream 'a', whose keys are sim_a"),
            ("openai/gpt-4o", "sim_a", r"panels\.mixed\.members\[0\]\.key: key 'sim_a' belongs to an upstream")):
        with pytest.raises(ConfigError, match=expected):
            load_config(write(extra=member.format(model=model, key=key)), environ=env)
    load_config(write(extra=member.format(model="a:openai/gpt-4o-mini", key="sim_a")), environ=env)
