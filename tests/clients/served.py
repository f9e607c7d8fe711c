"""One real gateway per test module: uvicorn on loopback in front of the simulator, in a thread.

The gateway runs on its own event loop in a background thread, so that synchronous clients (the
`openai` SDK's `OpenAI`, `litellm.completion`, LangChain's `invoke`) call it directly from a test,
and asynchronous ones from the test's own loop, exactly as an application would.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
from gateway_support import TIGHT_TOKEN, running
from quant_support import QUANT_TOKEN, quant_config_text

from lyra import Lyra
from lyra.service import create_app
from lyra.simulator import Simulator, SimulatorOptions
from support import engine_env

# Pydantic's note on the client libraries' own ReadOnly TypedDicts: theirs, not ours to fix.
LIBRARY_NOTES = pytest.mark.filterwarnings("ignore:.*using the `ReadOnly` qualifier:UserWarning")
# The libraries keep one HTTP client per process, bound to the loop that first used it: a module's
# async tests share one loop, as an application's calls share its loop.
ONE_LOOP = pytest.mark.asyncio(loop_scope="module")
START_S = 60
STOP_S = 30


@dataclass(frozen=True, slots=True)
class Served:
    """What a test needs: the /v1 URL, a token allowed every tier, and one over its budget."""

    url: str
    token: str = QUANT_TOKEN
    over_budget_token: str = TIGHT_TOKEN


class GatewayThread:
    """Starts the simulator and the gateway on a private loop; `stop` shuts both down."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._ready = threading.Event()
        self._url: str | None = None
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="lyra-gateway", daemon=True)

    def start(self) -> Served:
        self._thread.start()
        if not self._ready.wait(START_S):
            raise RuntimeError("the gateway did not start")
        if self._error is not None:
            raise RuntimeError("the gateway failed to start") from self._error
        assert self._url is not None
        return Served(url=self._url)

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(STOP_S)
        if self._thread.is_alive():
            raise RuntimeError("the gateway did not stop")
        if self._error is not None:
            raise RuntimeError("the gateway failed") from self._error

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported to the test thread by start() or stop()
            self._error = exc
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        config = self._folder / "lyra.toml"
        config.write_text(quant_config_text())
        options = SimulatorOptions(time_scale=0.0, generation_lag_s=0.0)
        async with Simulator(options=options) as sim:
            environ = engine_env(sim) | {"LYRA_LEDGER_URL": f"sqlite:///{self._folder / 'ledger.db'}"}
            async with running(create_app(Lyra.from_config(config, environ=environ))) as url:
                self._url = url
                self._ready.set()
                await self._stop.wait()
