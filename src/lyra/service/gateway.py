"""The gateway's shared parts: the engine, metrics, client auth and limits, reached from each route."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar, cast

from starlette.requests import Request

from lyra.engine import Lyra
from lyra.ledger import Ledger
from lyra.observe.metrics import Metrics
from lyra.service.auth import Client, ClientAuth
from lyra.service.errors import ApiError
from lyra.service.options import ServiceOptions
from lyra.service.ratelimit import QUOTA_STATE, ClientRateLimit, over_limit
from lyra.service.target import Targets
from lyra.service.tenancy import ClientView

T = TypeVar("T")


@dataclass(slots=True)
class Gateway:
    """One engine behind the HTTP routes; `ready` once the engine has started."""

    lyra: Lyra
    metrics: Metrics
    options: ServiceOptions
    auth: ClientAuth = field(init=False)
    targets: Targets = field(init=False)
    view: ClientView = field(init=False)
    limiter: ClientRateLimit | None = None
    ready: bool = False
    # Ledger reads (/v1/usage, /v1/report) run one at a time on their own thread: each one scans the
    # window, and several at once would each hold a thread, a database connection and its cache.
    _reads: ThreadPoolExecutor = field(init=False)

    def __post_init__(self) -> None:
        self.auth = ClientAuth(self.lyra.settings.clients)
        self.targets = Targets(self.lyra.settings, self.lyra.catalog)
        self.view = ClientView(self.lyra.settings.keys)
        self._reads = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lyra-ledger-read")

    async def start(self) -> None:
        await self.lyra.start()
        if self.lyra.state is None:
            raise RuntimeError("the engine started without a state backend")
        self.limiter = ClientRateLimit(self.lyra.state)
        self.metrics.attach(self.lyra.router)  # attempts in flight; circuits and keys at each scrape
        self.ready = True

    async def stop(self) -> None:
        """Close the engine: its ledger commits every queued row before the process exits."""
        self.ready = False
        self._reads.shutdown(wait=True)
        await self.lyra.aclose()

    def ledger_for(self, what: str) -> Ledger:
        """The ledger, or a 503 saying that `what` needs it and it is disabled."""
        ledger = self.lyra.ledger
        if ledger is None:
            raise ApiError(503, f"{what} needs the ledger, which is disabled ([ledger] enabled = false)",
                           type="service_unavailable", code="ledger_disabled")
        return ledger

    async def read_ledger(self, read: Callable[[], T]) -> T:
        """Run a blocking ledger read on the gateway's one reading thread."""
        return await asyncio.get_running_loop().run_in_executor(self._reads, read)

    async def admit(self, request: Request) -> Client:
        """The authenticated client of a request, within its rate limit; else 503, 401 or 429."""
        if not self.ready or self.limiter is None:
            raise ApiError(503, "the gateway is starting or stopping", type="service_unavailable",
                           code="not_ready", retry_after=1.0)
        client = self.auth.authenticate(request.headers.get("authorization"))
        request.state.client = client.name  # for the access log
        request.state.caller = client  # for errors, which a client sees only as its own
        quota = await self.limiter.take(client)
        setattr(request.state, QUOTA_STATE, quota)  # every answer from here on carries its headers
        if not quota.admitted:
            raise over_limit(client, quota)
        return client


def gateway_of(request: Request) -> Gateway:
    return cast(Gateway, request.app.state.gateway)


def caller_of(request: Request) -> Client | None:
    """The authenticated client of a request, once `admit` has run."""
    return cast(Client | None, getattr(request.state, "caller", None))
