"""The router over loopback: every fault kind is survived or surfaced as the right LyraError."""

from __future__ import annotations

import logging
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

from lyra import Lyra, NoModelAvailable, StreamInterrupted, UpstreamError
from lyra.simulator import Fault, Simulator, SimulatorOptions
from support import TOKENS, engine_env

MSG = [{"role": "user", "content": "Summarise BTC in one line."}]


async def test_task_call_reports_served_model_key_tier_and_real_cost(lyra: Lyra, sim: Simulator) -> None:
    c = await lyra.complete(task="signal_generation", messages=MSG)
    assert c.model == "x-ai/grok-4.6"
    assert c.tier == "advanced" and c.task == "signal_generation"
    assert c.key_name == "grok4"
    assert c.provider == "xAI"
    assert not c.cost_estimated and c.cost_usd > 0
    info = lyra.catalog.get(c.model)
    expected = info.prompt_per_m * c.prompt_tokens + info.completion_per_m * c.completion_tokens
    assert abs(c.cost_usd * 1_000_000 - expected) <= Decimal("0.001")
    assert [a.outcome for a in c.attempts] == ["ok"]
    assert sim.stats.calls == 1


async def test_direct_model_call_with_max_tokens(lyra: Lyra) -> None:
    c = await lyra.complete(model="openai/gpt-4o-mini", messages=MSG, max_tokens=5)
    assert c.model == "openai/gpt-4o-mini" and c.tier == "fast"
    assert c.completion_tokens <= 5


async def test_rate_limit_is_retried_on_another_key(lyra: Lyra, sim: Simulator) -> None:
    sim.add_fault(Fault(kind="rate_limit", model="x-ai/grok-4.6", count=1, retry_after_s=0.01))
    c = await lyra.complete(task="signal_generation", messages=MSG)
    kinds = [(a.outcome, a.error_kind, a.key_name) for a in c.attempts]
    assert kinds[0] == ("error", "rate_limit", "grok4")
    assert kinds[1] == ("ok", None, "deepseek1")
    assert c.attempts[0].retry_after_s == pytest.approx(0.01)


@pytest.mark.parametrize("kind", ["server_error", "malformed", "error_in_200", "drop"])
async def test_transient_faults_are_retried_on_the_same_model(lyra: Lyra, sim: Simulator, kind: str) -> None:
    sim.add_fault(Fault(kind=kind, model="x-ai/grok-4.6", count=2))
    c = await lyra.complete(task="signal_generation", messages=MSG)
    assert c.model == "x-ai/grok-4.6"
    assert [a.outcome for a in c.attempts] == ["error", "error", "ok"]


async def test_persistent_failure_falls_back_in_configured_order(lyra: Lyra, sim: Simulator) -> None:
    sim.add_fault(Fault(kind="server_error", model="x-ai/grok-4.6", status=503))
    sim.add_fault(Fault(kind="server_error", model="deepseek/deepseek-chat", status=502))
    c = await lyra.complete(task="signal_generation", messages=MSG)
    tried = list(dict.fromkeys(a.model for a in c.attempts))
    # task primaries first, then the rest of the advanced tier in its order
    assert tried == ["x-ai/grok-4.6", "deepseek/deepseek-chat", "anthropic/claude-sonnet-4.6"]
    assert c.model == "anthropic/claude-sonnet-4.6"


async def test_timeout_is_an_attempt_error_then_fallback(lyra: Lyra, sim: Simulator) -> None:
    sim.add_fault(Fault(kind="timeout", model="x-ai/grok-4.6", hang_s=5))
    c = await lyra.complete(task="signal_generation", messages=MSG, deadline_s=5)
    assert {a.error_kind for a in c.attempts if a.model == "x-ai/grok-4.6"} == {"timeout"}
    assert c.model == "deepseek/deepseek-chat"


async def test_revoked_key_is_retired_and_never_used_again(lyra: Lyra, sim: Simulator) -> None:
    sim.revoke_key(TOKENS["grok4"])
    first = await lyra.complete(task="signal_generation", messages=MSG)
    assert (first.attempts[0].error_kind, first.attempts[0].status) == ("auth", 401)
    assert first.key_name == "deepseek1" and first.model == "x-ai/grok-4.6"
    for _ in range(5):
        c = await lyra.complete(task="signal_generation", messages=MSG, cache="bypass")
        assert all(a.key_name != "grok4" for a in c.attempts)
    assert "retired" in (lyra.router.keys.usable("grok4") or "")


async def test_key_limit_403_retires_key(lyra: Lyra, sim: Simulator) -> None:
    sim.add_fault(Fault(kind="key_limit", key=TOKENS["grok4"]))
    c = await lyra.complete(task="signal_generation", messages=MSG)
    assert c.attempts[0].error_kind == "key_limit" and c.key_name != "grok4"


async def test_402_cools_the_key_until_its_window_resets(lyra: Lyra, sim: Simulator) -> None:
    sim.set_key_limit(TOKENS["grok4"], 0.000001)
    c = await lyra.complete(task="signal_generation", messages=MSG)
    assert (c.attempts[0].error_kind, c.attempts[0].status) == ("payment", 402)
    assert c.key_name == "deepseek1"
    assert "cooling" in (lyra.router.keys.usable("grok4") or "")


async def test_free_model_daily_limit_closes_the_model(lyra: Lyra, sim: Simulator) -> None:
    sim.add_fault(Fault(kind="free_per_day", model="openai/gpt-oss-20b:free"))
    with pytest.raises(NoModelAvailable) as info:
        await lyra.complete(model="openai/gpt-oss-20b:free", messages=MSG)
    assert [a.error_kind for a in info.value.attempts] == ["rate_limit_daily"]  # type: ignore[attr-defined]
    calls = sim.stats.calls
    with pytest.raises(NoModelAvailable, match="circuit open"):
        await lyra.complete(model="openai/gpt-oss-20b:free", messages=MSG)
    assert sim.stats.calls == calls


async def test_circuit_opens_after_repeated_failures(lyra: Lyra, sim: Simulator) -> None:
    sim.add_fault(Fault(kind="server_error", model="x-ai/grok-4.6"))
    await lyra.complete(task="signal_generation", messages=MSG)  # 3 failures open the circuit
    before = sim.stats.by_model["x-ai/grok-4.6"]
    c = await lyra.complete(task="signal_generation", messages=MSG, cache="bypass")
    assert c.attempts[0].outcome == "skipped" and "circuit" in c.attempts[0].message
    assert sim.stats.by_model["x-ai/grok-4.6"] == before


async def test_unknown_and_retired_models(lyra: Lyra) -> None:
    with pytest.raises(NoModelAvailable, match="not in the catalogue"):
        await lyra.complete(model="acme/fake-1.0", messages=MSG)
    with pytest.raises(NoModelAvailable) as info:
        # (claude-3-opus, at 15/75, would not even be sent: it is over the premium tier's max_price)
        await lyra.complete(model="anthropic/claude-3.5-sonnet", messages=MSG)
    assert info.value.attempts[0].error_kind == "model_unavailable"  # type: ignore[attr-defined]


async def test_bad_request_is_raised_without_retry(lyra: Lyra, sim: Simulator) -> None:
    with pytest.raises(UpstreamError) as info:
        await lyra.complete(task="signal_generation", messages=[])
    assert info.value.kind == "bad_request" and info.value.status == 400
    assert sim.stats.calls == 1


async def test_all_keys_gone_is_no_model_available(lyra: Lyra, sim: Simulator) -> None:
    for token in TOKENS.values():
        sim.revoke_key(token)
    with pytest.raises(NoModelAvailable, match="no usable key"):
        await lyra.complete(task="risk_assessment", messages=MSG)


async def test_fast_tier_round_robins_across_all_keys(lyra: Lyra) -> None:
    used = [(await lyra.complete(tier="fast", messages=MSG)).key_name for _ in range(8)]
    assert sorted(used) == sorted(TOKENS)


async def test_stream_yields_text_and_final_usage(lyra: Lyra) -> None:
    stream = lyra.stream(task="market_analysis", messages=MSG)
    pieces = [piece async for piece in stream]
    c = stream.completion
    assert len(pieces) > 1 and "".join(pieces) == c.text
    assert c.prompt_tokens > 0 and c.completion_tokens > 0 and not c.cost_estimated


async def test_midstream_error_after_text_surfaces_as_stream_interrupted(lyra: Lyra, sim: Simulator) -> None:
    sim.add_fault(Fault(kind="midstream_error", model="anthropic/claude-sonnet-4.6"))
    stream = lyra.stream(task="market_analysis", messages=MSG)
    received: list[str] = []
    with pytest.raises(StreamInterrupted):
        async for piece in stream:
            received.append(piece)
    assert received  # some text arrived before the error event


async def test_stream_failure_before_text_falls_back(lyra: Lyra, sim: Simulator) -> None:
    sim.add_fault(Fault(kind="server_error", model="anthropic/claude-sonnet-4.6"))
    stream = lyra.stream(task="market_analysis", messages=MSG)
    text = "".join([piece async for piece in stream])
    assert text and stream.completion.model == "deepseek/deepseek-chat"


async def test_no_secret_in_logs_reprs_or_errors(
    sim: Simulator, config_path: Callable[..., Path], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sim.revoke_key(TOKENS["grok4"])
    sim.set_key_limit(TOKENS["deepseek1"], 0.000001)
    seen: list[str] = []
    async with Lyra.from_config(config_path(), environ=engine_env(sim)) as engine:
        c = await engine.complete(task="signal_generation", messages=MSG)
        seen += [repr(engine), repr(engine.router.keys), repr(engine.router.transport), repr(c),
                 repr(engine.config), str(engine.config.secrets)]
        for token in TOKENS.values():
            sim.revoke_key(token)
        try:
            await engine.complete(task="risk_assessment", messages=MSG)
        except NoModelAvailable as exc:
            seen += [str(exc), repr(exc), repr(exc.attempts)]
            seen += [str(a.message) for a in exc.attempts]  # type: ignore[attr-defined]
    seen.append(caplog.text)
    blob = "\n".join(seen)
    assert "retired" in caplog.text  # the log did talk about the keys
    for token in TOKENS.values():
        assert token not in blob
        assert token[10:] not in blob


def test_sync_wrapper_runs_one_call(tmp_path: Path) -> None:
    engine = Lyra.from_config(environ={}, simulator_options=SimulatorOptions(time_scale=0.0))
    c = engine.complete_sync(task="news_sentiment", messages=MSG)
    assert c.text and c.task == "news_sentiment" and c.cost_usd >= Decimal(0)


async def test_without_keys_the_simulator_starts_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    async with Lyra.from_config(environ={}, simulator_options=SimulatorOptions(time_scale=0.0)) as engine:
        assert engine.simulator is not None
        c = await engine.complete(tier="fast", messages=MSG)
        assert c.text
    notices = [r.getMessage() for r in caplog.records if "simulator" in r.getMessage()]
    assert len(notices) == 1 and "no OpenRouter key set" in notices[0]
