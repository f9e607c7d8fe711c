"""Run the simulator: inside a program (`Simulator`) or as a blocking server (`run_simulator`)."""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Any

from aiohttp import web

from lyra.catalog.models import Catalog, load_catalog
from lyra.simulator.app import API_PREFIX, create_app
from lyra.simulator.faults import Fault
from lyra.simulator.options import SimulatorOptions
from lyra.simulator.state import SimulatorState, SimulatorStats

log = logging.getLogger("lyra.simulator")
# In-flight requests get this long to finish on shutdown; simulated hangs end at once.
_SHUTDOWN_TIMEOUT_S = 1.0


class Simulator:
    """An OpenRouter-compatible server on loopback, for tests, benchmarks and keyless runs.

    Use it as an async context manager; `base_url` is what a client puts in place of
    https://openrouter.ai/api/v1. Port 0 picks a free port.
    """

    def __init__(
        self,
        *,
        catalog: Catalog | None = None,
        options: SimulatorOptions | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.options = options or SimulatorOptions()
        self.catalog = catalog if catalog is not None else load_catalog()
        self.host = host
        self.port = port
        self.base_url = ""
        self._state = SimulatorState(self.catalog, self.options)
        self._runner: web.AppRunner | None = None

    @property
    def stats(self) -> SimulatorStats:
        return self._state.stats

    @property
    def received(self) -> list[dict[str, Any]]:
        """The last chat request bodies the simulator received, oldest first (at most 256)."""
        return list(self._state.received)

    @property
    def root_url(self) -> str:
        """The server's address without the API prefix (the /_sim control routes live here)."""
        return self.base_url.removesuffix(API_PREFIX)

    async def start(self) -> None:
        if self._runner is not None:
            return
        self._state.stopping.clear()
        runner = web.AppRunner(
            create_app(self._state),
            access_log=None,
            handler_cancellation=True,
            shutdown_timeout=_SHUTDOWN_TIMEOUT_S,
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])
        self.base_url = f"http://{self.host}:{self.port}{API_PREFIX}"
        log.info("OpenRouter simulator listening on %s", self.base_url)

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self._state.stopping.set()
        await runner.cleanup()
        log.info("OpenRouter simulator on %s stopped", self.base_url)

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def add_fault(self, fault: Fault) -> None:
        self._state.faults.add(fault)

    def clear_faults(self) -> None:
        self._state.faults.clear()

    def set_key_limit(self, token: str, usd: float | None) -> None:
        """Give a bearer token a daily credit limit in USD (None: unlimited)."""
        self._state.set_key_limit(token, usd)

    def revoke_key(self, token: str) -> None:
        """Answer 401 "User not found." to this token from now on."""
        self._state.revoke_key(token)


def run_simulator(
    *,
    host: str = "127.0.0.1",
    port: int = 8099,
    options: SimulatorOptions | None = None,
    catalog: Catalog | None = None,
) -> None:
    """Serve the simulator until interrupted (the `lyra sim serve` command)."""
    state = SimulatorState(
        catalog if catalog is not None else load_catalog(), options or SimulatorOptions()
    )
    log.info("OpenRouter simulator serving on http://%s:%d%s", host, port, API_PREFIX)
    web.run_app(
        create_app(state),
        host=host,
        port=port,
        print=None,
        access_log=None,
        handler_cancellation=True,
        shutdown_timeout=_SHUTDOWN_TIMEOUT_S,
    )
