"""What the router does about a failed attempt is one table: every kind has a row, config can change one."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from lyra import Lyra, UpstreamError
from lyra.config import load_config
from lyra.errors import ConfigError, FailureKind
from lyra.failures import DEFAULT_ACTIONS, FailureAction, FailurePolicy
from lyra.simulator import Fault, Simulator
from support import engine_env

MSG = [{"role": "user", "content": "Summarise BTC in one line."}]
RETRY_ROW = "breaker_cooldown_s = 60\n"


def test_every_failure_kind_has_an_action() -> None:
    assert set(DEFAULT_ACTIONS) == set(FailureKind)


@pytest.mark.parametrize("kind", list(FailureKind))
def test_a_hopeless_error_is_never_retried(kind: FailureKind) -> None:
    action = FailurePolicy().action(UpstreamError("x", kind=kind, retryable=False))
    assert action not in (FailureAction.RETRY, FailureAction.RETRY_OTHER_KEY)


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError):
        UpstreamError("x", kind="gremlins")


async def test_config_can_make_a_server_error_final(sim: Simulator, config_path: Callable[..., Path]) -> None:
    sim.add_fault(Fault(kind="server_error", model="x-ai/grok-4.6", count=1))
    path = config_path(**{RETRY_ROW: RETRY_ROW + 'on_failure = { server = "raise" }\n'})
    async with Lyra.from_config(path, environ=engine_env(sim)) as lyra:
        with pytest.raises(UpstreamError) as caught:
            await lyra.complete(task="signal_generation", messages=MSG)
    assert caught.value.kind is FailureKind.SERVER
    assert sim.stats.calls == 1  # no retry, no other model


def test_a_misspelt_action_names_the_field(config_path: Callable[..., Path]) -> None:
    path = config_path(**{RETRY_ROW: RETRY_ROW + 'on_failure = { server = "shrug" }\n'})
    with pytest.raises(ConfigError, match=r"retry\.on_failure"):
        load_config(path, environ={})
