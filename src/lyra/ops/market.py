"""Markets the live runner reads: a recorded data set replayed on the session clock, or ccxt."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from lyra.errors import ConfigError
from lyra.trading.account import BarPrices, bar_prices
from lyra.trading.data import Bars, list_samples, load_bars, load_sample

WARMUP_BARS = 60  # history a replayed symbol starts with, so that every indicator is defined
WINDOW_BARS = 120  # bars handed to the features at each tick


class Market(Protocol):
    """Bars of each symbol as known at a session time, and the closed bars a paper account has not seen."""

    bar_s: float  # the session seconds between two bars
    fetches: bool  # reading it goes over the network (run it off the event loop)

    def window(self, symbol: str, at_s: float) -> tuple[Bars, Any]: ...

    def tape(self, symbol: str, at_s: float, after: pd.Timestamp | None) -> list[BarPrices]:
        """The bars known at `at_s` that come after `after` (None: from the current bar), in order."""
        ...


class ReplayMarket:
    """A recorded data set replayed: bar i of the file is the bar of session minute i (per `bar_s`).

    Each configured symbol replays the same file from its own offset, so that symbols differ. The
    decision windows wrap around to the file's start when a long session runs past its end; the
    account's tape does not (its time would run backwards): it stops at the file's last bar, and a
    decision on a wrapped window trades nothing.
    """

    fetches = False

    def __init__(
        self, bars: Bars, symbols: Sequence[str], *, bar_s: float = 60.0, offset_bars: int = 137
    ) -> None:
        if len(bars) < WARMUP_BARS + 2:
            raise ConfigError(
                f"{bars.symbol}: {len(bars)} bars are too few to replay; need {WARMUP_BARS + 2}"
            )
        if bar_s <= 0:
            raise ConfigError(f"replay bar spacing must be above 0 s, got {bar_s}")
        self.bars = bars
        self.bar_s = bar_s
        self.offsets = {s: WARMUP_BARS + i * offset_bars for i, s in enumerate(symbols)}

    def window(self, symbol: str, at_s: float) -> tuple[Bars, Any]:
        usable = len(self.bars) - WARMUP_BARS
        index = WARMUP_BARS + (self._unwrapped(symbol, at_s) - WARMUP_BARS) % usable
        frame = self.bars.frame.iloc[max(0, index - WINDOW_BARS) : index + 1]
        window = Bars(frame=frame, symbol=symbol, interval=self.bars.interval)
        return window, window.end

    def tape(self, symbol: str, at_s: float, after: pd.Timestamp | None) -> list[BarPrices]:
        frame = self.bars.frame
        now = self._unwrapped(symbol, at_s)
        first = now if after is None else int(frame.index.searchsorted(after, side="right"))
        first = max(first, self.offsets.get(symbol, WARMUP_BARS))
        last = min(now, len(frame) - 1)  # the tape ends with the file
        return [bar_prices(frame, i) for i in range(first, last + 1)]

    def _unwrapped(self, symbol: str, at_s: float) -> int:
        """The file index of session time `at_s`, before wrapping around."""
        return self.offsets.get(symbol, WARMUP_BARS) + int(max(0.0, at_s) // self.bar_s)


def load_replay(source: str, symbols: Sequence[str]) -> ReplayMarket:
    """A replay of a bundled sample (by name) or of a bars file."""
    if source.upper() in list_samples():
        return ReplayMarket(load_sample(source), symbols)
    if not Path(source).exists():
        raise ConfigError(
            f"--replay: {source!r} is neither a file nor a sample ({', '.join(list_samples())})"
        )
    return ReplayMarket(load_bars(source), symbols)


class CcxtMarket:
    """Live 1-minute bars from an exchange through ccxt (the `ccxt` extra).

    The exchange's last bar is still forming: decisions and the account both read closed bars only.
    """

    bar_s = 60.0
    fetches = True

    def __init__(self, exchange: str) -> None:
        try:
            import ccxt  # noqa: F401
        except ImportError:
            raise ConfigError("the ccxt market needs the ccxt extra: "
                              "pip install 'lyra-orchestrator[ccxt]'") from None
        self.exchange = exchange

    def _closed(self, symbol: str) -> Bars:
        bars = load_bars(f"ccxt:{self.exchange}:{symbol}:1m", limit=WINDOW_BARS + 1)
        return Bars(frame=bars.frame.iloc[:-1], symbol=bars.symbol, interval=bars.interval)

    def window(self, symbol: str, at_s: float) -> tuple[Bars, Any]:
        bars = self._closed(symbol)
        return bars, bars.end

    def tape(self, symbol: str, at_s: float, after: pd.Timestamp | None) -> list[BarPrices]:
        frame = self._closed(symbol).frame
        first = len(frame) - 1 if after is None else int(frame.index.searchsorted(after, side="right"))
        return [bar_prices(frame, i) for i in range(max(0, first), len(frame))]


__all__ = ["WARMUP_BARS", "WINDOW_BARS", "CcxtMarket", "Market", "ReplayMarket", "load_replay"]
