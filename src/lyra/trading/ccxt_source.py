"""ccxt: live OHLCV from an exchange (optional extra), as a raw table of closed candles."""

from __future__ import annotations

import time
from typing import Any

import pandas as pd

from lyra.trading.datatable import BAR_COLUMNS, DataError, _one_line, _Table
from lyra.trading.intervals import _INTERVAL, _check_interval, _interval_delta
from lyra.trading.marketfiles import _table_from_frame


def _parse_ccxt_spec(spec: str, interval: str | None) -> tuple[str, str, str]:
    """`ccxt:EXCHANGE:SYMBOL[:TIMEFRAME]` -> (exchange, symbol, timeframe); symbols may hold ':'."""
    parts = spec.split(":")
    if len(parts) >= 4 and _INTERVAL.match(parts[-1]):
        exchange, market, timeframe = parts[1], ":".join(parts[2:-1]), parts[-1]
    elif len(parts) >= 3:
        exchange, market, timeframe = parts[1], ":".join(parts[2:]), interval or "1h"
    else:
        exchange = market = timeframe = ""
    if not exchange or not market:
        raise DataError(
            f"{spec}: expected ccxt:EXCHANGE:SYMBOL:TIMEFRAME, e.g. ccxt:binance:BTC/USDT:1h", source=spec
        )
    return exchange, market, _check_interval(interval or timeframe, spec)


def _ccxt_table(spec: str, *, interval: str | None, limit: int) -> tuple[_Table, str, str]:
    """The closed candles of `limit + 1` fetched, as a raw table; also the market and the timeframe."""
    exchange_id, market, timeframe = _parse_ccxt_spec(spec, interval)
    rows = _fetch_ccxt(spec, exchange_id, market, timeframe, limit + 1)
    step_ms = _interval_delta(timeframe).value // 1_000_000
    now_ms = time.time() * 1000
    closed = [row for row in rows if row[0] + step_ms <= now_ms]  # the last candle is still forming
    frame = pd.DataFrame([row[:6] for row in closed], columns=["time", *BAR_COLUMNS])
    if frame.empty:
        raise DataError(f"{spec}: the exchange returned no closed bars", source=spec)
    frame["time"] = pd.to_datetime(frame["time"], unit="ms", utc=True)
    return _table_from_frame(frame.set_index("time"), spec), market, timeframe


def _fetch_ccxt(spec: str, exchange_id: str, market: str, timeframe: str, limit: int) -> list[list[float]]:
    try:
        import ccxt
    except ImportError as exc:
        raise DataError(
            f"{spec}: the ccxt extra is not installed; install it with pip install 'lyra-orchestrator[ccxt]'",
            source=spec,
        ) from exc
    exchange_class = getattr(ccxt, exchange_id, None)
    if not isinstance(exchange_class, type):
        raise DataError(f"{spec}: ccxt knows no exchange {exchange_id!r}", source=spec)
    exchange = exchange_class({"enableRateLimit": True})
    try:
        rows: Any = exchange.fetch_ohlcv(market, timeframe=timeframe, limit=limit)
    except ccxt.NetworkError as exc:
        raise DataError(f"{spec}: cannot reach {exchange_id} ({_one_line(exc)})", source=spec) from exc
    except ccxt.BaseError as exc:
        raise DataError(f"{spec}: {exchange_id} refused the request ({_one_line(exc)})", source=spec) from exc
    return list(rows)
