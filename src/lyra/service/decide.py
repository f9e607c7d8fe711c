"""POST /v1/decide: the six-stage trading pipeline on the caller's bars or a bundled sample.

Every stage's calls are charged to the calling client's own daily cap as well as to the global,
tier and key caps; the client must be allowed every tier the pipeline uses. The risk rules see
an account: the caller's own (`account` in the body, validated, used for this decision only), or
else the client's paper account for the symbol kept by the server (see decide_account).
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Annotated, Any

import orjson
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.requests import Request
from starlette.responses import Response

from lyra.analytics.accounts import gateway_account_name
from lyra.money import json_default, usd_fields_exact, usd_json
from lyra.service.access import panel_tiers, require_tiers
from lyra.service.answer_headers import spend_headers
from lyra.service.auth import Client
from lyra.service.body import read_body
from lyra.service.decide_account import (
    CallerAccount,
    PaperDesk,
    desk_of,
    order_of,
    server_summary,
    with_halt_reason,
)
from lyra.service.errors import ApiError, bad_request
from lyra.service.gateway import Gateway, gateway_of
from lyra.service.tenancy import own_cap_name
from lyra.service.validate import parse_body
from lyra.trading.data import Bars, DataError, load_bars, load_sample
from lyra.trading.pipeline import TradeDecision, TradingAIOrchestrator
from lyra.trading.risk import AccountState
from lyra.trading.stages import STAGES, stage_tiers

MAX_BARS = 20_000
MAX_NEWS = 50
MAX_NEWS_CHARS = 4_000
BAR_FIELDS = ("time", "open", "high", "low", "close", "volume")


class DecideBody(BaseModel):
    """Bars inline (`bars`) or by bundled sample name (`sample`), with the trade to consider."""

    model_config = ConfigDict(strict=True, extra="forbid")

    symbol: str | None = Field(None, min_length=1, max_length=64)
    bars: list[dict[str, Any]] | None = Field(None, min_length=2, max_length=MAX_BARS)
    sample: str | None = Field(None, min_length=1, max_length=64)
    proposed_notional: float = Field(5_000.0, gt=0)
    news: list[Annotated[str, Field(max_length=MAX_NEWS_CHARS)]] = Field(default_factory=list,
                                                                        max_length=MAX_NEWS)
    account: CallerAccount | None = None  # the caller's own account; else the server's paper account

    @model_validator(mode="after")
    def _one_source(self) -> DecideBody:
        if (self.bars is None) == (self.sample is None):
            raise ValueError("give exactly one of `bars` (a list of OHLCV objects) or `sample`")
        if self.bars is not None and self.symbol is None:
            raise ValueError("`symbol` is required with `bars`")
        return self


async def decide(request: Request) -> Response:
    gateway = gateway_of(request)
    client = await gateway.admit(request)
    body = parse_body(DecideBody, await read_body(request, gateway.options))
    require_tiers(client, pipeline_tiers(gateway), "the trading pipeline")
    await _require_budget(gateway, client)
    bars = await asyncio.to_thread(_bars, body)
    orchestrator = TradingAIOrchestrator(gateway.lyra, client=client.name)
    symbol = body.symbol or bars.symbol
    if body.account is not None:
        ruled_on = body.account.state()
        decision = await _run(orchestrator, symbol, bars, body, ruled_on)
        account = body.account.summary()
    else:
        decision, account, ruled_on = await _on_server_account(request, gateway, orchestrator, client, symbol,
                                                               bars, body)
    answer = with_halt_reason(decision.to_dict() | {"account": account}, ruled_on, gateway.lyra.settings)
    answer = usd_fields_exact(answer) | {"cost_usd": usd_json(decision.cost_nanos)}  # money as exact USD
    answer = gateway.view.for_client(answer, client)  # a client never sees the key names
    return Response(orjson.dumps(answer, default=_json_value, option=orjson.OPT_SERIALIZE_NUMPY),
                    media_type="application/json", headers=await spend_headers(gateway.lyra, client,
                                                                                decision.cost_nanos))


def _json_value(value: Any) -> Any:
    """A Decimal (money) as an exact JSON number; anything else orjson cannot write as its text."""
    return json_default(value) if isinstance(value, Decimal) else str(value)


async def _run(orchestrator: TradingAIOrchestrator, symbol: str, bars: Bars, body: DecideBody,
               account: AccountState) -> TradeDecision:
    try:
        return await orchestrator.decide(symbol, bars, proposed_notional=body.proposed_notional,
                                         news=body.news, account=account)
    except DataError as exc:
        raise _data_error(exc, "bars") from None


async def _on_server_account(request: Request, gateway: Gateway, orchestrator: TradingAIOrchestrator,
                             client: Client, symbol: str, bars: Bars, body: DecideBody
                             ) -> tuple[TradeDecision, dict[str, Any], AccountState]:
    """Decide on the client's paper account for the symbol: bars first, then the decision, then save."""
    desk = await _desk(request, gateway)
    name = gateway_account_name(client.name, symbol)
    source = "sample" if body.sample is not None else "bars"
    async with desk.hold(name):  # one request at a time per account in this process
        opened = await asyncio.to_thread(desk.open, name, bars.frame, source)
        ruled_on = opened.account.state()
        decision = await _run(orchestrator, symbol, bars, body, ruled_on)
        queued = await asyncio.to_thread(desk.save, name, opened, order_of(decision), bars.frame)
    return decision, server_summary(name, opened, decision, queued), ruled_on


async def _desk(request: Request, gateway: Gateway) -> PaperDesk:
    desk: PaperDesk | None = getattr(request.app.state, "paper_desk", None)
    if desk is not None:
        return desk
    ledger = gateway.lyra.ledger
    # The first look at the accounts table may connect to the database: off the event loop.
    store = await asyncio.to_thread(lambda: ledger.accounts) if ledger is not None else None
    return desk_of(request.app.state, gateway.lyra.settings, store)


def pipeline_tiers(gateway: Gateway) -> set[str]:
    """The tiers the pipeline's stages and panels are charged to."""
    lyra, settings = gateway.lyra, gateway.lyra.settings
    tiers = stage_tiers(settings)
    for panel in (s.panel for s in STAGES if s.panel is not None):
        if panel in settings.panels:
            tiers |= panel_tiers(lyra, panel)
    return tiers


async def _require_budget(gateway: Gateway, client: Client) -> None:
    governor = gateway.lyra.budget
    if governor is None:
        return
    caps = await governor.snapshot()
    mine = next((cap for cap in caps if cap.name == own_cap_name(client)), None)
    if mine is not None and mine.remaining <= 0:
        raise ApiError(402, f"client {client.name!r} has no budget left today", type="insufficient_quota",
                       code="budget_exceeded")


def _bars(body: DecideBody) -> Bars:
    """The body's bars, validated; a bad row or column is a 400 naming it."""
    try:
        if body.sample is not None:
            return load_sample(body.sample)
        assert body.bars is not None and body.symbol is not None
        return load_bars(_frame(body.bars), symbol=body.symbol)
    except DataError as exc:
        raise _data_error(exc, "sample" if body.sample is not None else "bars") from None
    except (pd.errors.OutOfBoundsDatetime, pd.errors.OutOfBoundsTimedelta, OverflowError):
        # The bar reader does not name the row of a time pandas cannot hold (before 1677, after 2262).
        raise bad_request("bars", "bars: a time is outside the dates this gateway can read (1677 to 2262)",
                          code="invalid_market_data") from None


def _data_error(exc: DataError, field: str) -> ApiError:
    """400 naming the bar and column at fault: `bars[3].high: high 0.1 is below low 0.5`."""
    if field == "bars" and exc.row is not None and exc.column is not None:
        field = f"bars[{exc.row - 1}].{exc.column}"  # DataError counts rows from 1
        problem = str(exc).split(": ", 1)[-1] if str(exc).startswith("DataFrame row") else str(exc)
        return bad_request(field, f"{field}: {problem}", code="invalid_market_data")
    return bad_request(field, f"{field}: {exc}", code="invalid_market_data")


def _frame(bars: list[dict[str, Any]]) -> pd.DataFrame:
    for i, bar in enumerate(bars):
        missing = [name for name in BAR_FIELDS[:5] if name not in bar]
        if missing:
            raise DataError(f"missing {', '.join(missing)}", row=i + 1, column=missing[0])
        extra = sorted(set(bar) - set(BAR_FIELDS))
        if extra:
            raise DataError(f"unknown field {extra[0]!r} (expected {', '.join(BAR_FIELDS)})",
                            row=i + 1, column=extra[0])
    return pd.DataFrame.from_records(bars, columns=list(BAR_FIELDS))
