"""A rebalanced portfolio walked forward, beside equal weight, buy-and-hold of each and inverse volatility.

Every strategy trades the same `PaperPortfolio` rules: a rebalance decided at the close of t fills
at each symbol's next bar's open, with slippage and that symbol's fee. The baselines are what a
person would compute by hand, without the model limits: equal weight (1/n of equity each),
buy-and-hold of each symbol (all of the equity in it at the first decision, then held) and
inverse volatility (weights proportional to 1 / the 20-bar volatility of returns, summing to 1),
the rebalancing ones at the same cadence as the model.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd

from lyra.engine import Lyra
from lyra.trading.backtest import WARMUP_BARS, Window, step_every
from lyra.trading.cassette import Cassette, CassetteMiss
from lyra.trading.data import DataError, as_utc
from lyra.trading.evaluate import ReplayMismatch, failure_summary
from lyra.trading.features import compute_features
from lyra.trading.metrics import annualisation, curve_stats
from lyra.trading.portfolio import Aligned, PaperPortfolio, PortfolioCosts, PortfolioFill, exact, money
from lyra.trading.rebalance import Limits, PortfolioView, Rebalancer


@dataclass(slots=True, kw_only=True)
class Target:
    """A strategy's answer at one rebalance: the target weights (None: keep the book), cost and record."""

    weights: dict[str, float] | None
    cost_nanos: int = 0
    record: dict[str, Any] = field(default_factory=dict)
    canonical: dict[str, Any] = field(default_factory=dict)  # what a replay reproduces byte for byte


Strategy = Callable[[PortfolioView], Awaitable[Target]]


@dataclass(slots=True, kw_only=True)
class PortfolioRun:
    """One strategy's walk: its rebalances, fills and per-time equity and exposure."""

    name: str
    targets: list[Target]
    fills: list[PortfolioFill]
    equity: pd.Series  # float, for the curve measures; the exact figures are in `final_equity`
    gross: pd.Series
    net: pd.Series
    final_equity: Decimal


@dataclass(frozen=True, slots=True, kw_only=True)
class PortfolioOptions:
    """What to walk, how often to rebalance and how to trade it."""

    window: Window = field(default_factory=Window)
    costs: PortfolioCosts = field(default_factory=PortfolioCosts)
    anonymise: bool = True
    timeframes: tuple[str, ...] = ()
    max_failed_share: float | None = None


def rebalance_times(aligned: Aligned, window: Window) -> list[pd.Timestamp]:
    """Every `every`-th time once each symbol has its warm-up, the last time excluded (nothing to fill at)."""
    times = aligned.times
    lo = as_utc(window.start) if window.start else times[0]
    hi = as_utc(window.end) if window.end else times[-1]
    counts = pd.DataFrame(
        {s: b.frame["close"].reindex(times).notna().cumsum() for s, b in aligned.bars.items()}, index=times
    )
    ready = (counts >= WARMUP_BARS + 1).all(axis=1).to_numpy()
    positions = np.flatnonzero(ready & (times >= lo) & (times <= hi))
    positions = positions[positions < len(times) - 1]
    if not len(positions):
        raise DataError(
            f"--portfolio: no time in {lo.isoformat()} .. {hi.isoformat()} where every symbol has "
            f"{WARMUP_BARS} bars of history and a next bar (symbols: {', '.join(aligned.symbols)})"
        )
    every = step_every(len(positions), window.every)
    return [times[i] for i in positions[::every]]


async def walk_portfolio(
    name: str,
    strategy: Strategy,
    aligned: Aligned,
    times: list[pd.Timestamp],
    *,
    equity: Decimal,
    costs: PortfolioCosts,
    every: int,
    on_step: Callable[[Target], None] | None = None,
) -> PortfolioRun:
    """Fill queued orders at each symbol's open, mark at the closes, rebalance at the decision times."""
    book = PaperPortfolio(aligned.symbols, cash=equity, costs=costs)
    decide_at = set(times)
    first = aligned.times.get_loc(times[0])
    targets: list[Target] = []
    marks: list[tuple[float, float, float]] = []
    for t in aligned.times[first:]:
        book.fill_open(t, aligned.opens.loc[t].to_dict())
        book.mark(aligned.closes.loc[t].to_dict())
        gross, net = book.exposure()
        marks.append((float(book.equity), gross, net))
        if t not in decide_at:
            continue
        view = PortfolioView(
            time=t, known=aligned.known(t), current=book.weights(), equity=book.equity, every=every
        )
        target = await strategy(view)
        if target.weights is not None:
            book.target(target.weights)
        targets.append(target)
        if on_step is not None:
            on_step(target)
    index = aligned.times[first:]
    return PortfolioRun(
        name=name,
        targets=targets,
        fills=book.fills,
        final_equity=book.equity,
        equity=pd.Series([m[0] for m in marks], index=index, dtype=float),
        gross=pd.Series([m[1] for m in marks], index=index, dtype=float),
        net=pd.Series([m[2] for m in marks], index=index, dtype=float),
    )


# ------------------------------------------------------------------------------------------------
# Strategies


def model_strategy(rebalancer: Rebalancer) -> Strategy:
    """The premium tier's proposal, enforced and routed (see lyra.trading.rebalance)."""

    async def decide(view: PortfolioView) -> Target:
        decision = await rebalancer.decide(view)
        record = _without(decision.to_dict(), "latency_s")
        record.pop("audit_seq", None)
        return Target(
            weights=decision.weights,
            cost_nanos=decision.cost_nanos,
            record=record,
            canonical=decision.canonical(),
        )

    return decide


def equal_weight() -> Strategy:
    """1/n of equity in each symbol, at every rebalance."""

    async def decide(view: PortfolioView) -> Target:
        n = len(view.current)
        return Target(weights=dict.fromkeys(view.current, 1.0 / n))

    return decide


def buy_and_hold(symbol: str) -> Strategy:
    """All of the equity in one symbol at the first rebalance, then held."""
    started = False

    async def decide(view: PortfolioView) -> Target:
        nonlocal started
        if started:
            return Target(weights=None)
        started = True
        return Target(weights={s: 1.0 if s == symbol else 0.0 for s in view.current})

    return decide


def inverse_volatility() -> Strategy:
    """Weights proportional to 1 / each symbol's 20-bar volatility at t, summing to 1 (equal until known)."""

    async def decide(view: PortfolioView) -> Target:
        return Target(weights=inverse_volatility_weights(view))

    return decide


def inverse_volatility_weights(view: PortfolioView) -> dict[str, float]:
    vols = {s: float(compute_features(b)["volatility"].iloc[-1]) for s, b in view.known.items()}
    inverse = {s: 1.0 / v for s, v in vols.items() if np.isfinite(v) and v > 0}
    if len(inverse) != len(vols):
        return dict.fromkeys(view.current, 1.0 / len(view.current))
    total = sum(inverse.values())
    return {s: inverse[s] / total for s in view.current}


# ------------------------------------------------------------------------------------------------
# The report


def summarise(run: PortfolioRun, interval: str, start_equity: Decimal) -> dict[str, Any]:
    """A portfolio run's measures: returns, risk, exposure, trades, exact fees and P&L, and AI spend."""
    spend = sum(t.cost_nanos for t in run.targets)
    pnl = money(run.final_equity - start_equity)
    fees = money(sum((f.fee for f in run.fills), Decimal(0)))
    stats = curve_stats(run.equity, run.gross, interval)
    return {
        "name": run.name,
        **stats,
        "average_gross_exposure": float(run.gross.mean()) if len(run.gross) else 0.0,
        "average_net_exposure": float(run.net.mean()) if len(run.net) else 0.0,
        "final_equity_usd": str(run.final_equity),
        "pnl_usd": str(pnl),
        "fees_usd": str(fees),
        "traded_usd": str(money(sum((f.notional for f in run.fills), Decimal(0)))),
        "trades": len(run.fills),
        "rebalances": sum(t.weights is not None for t in run.targets),
        "ai_spend_nanos": spend,
        "return_on_ai_spend": float(pnl) / (spend / 1_000_000_000) if spend else None,
    }


async def run_portfolio_backtest(
    lyra: Lyra,
    aligned: Aligned,
    options: PortfolioOptions,
    *,
    cassette: Cassette | None = None,
    on_step: Callable[[Target], None] | None = None,
) -> dict[str, Any]:
    """Walk the model's rebalancing and the baselines over the aligned bars and report them side by side."""
    if options.window.end is not None:
        aligned = _cut(aligned, options.window.end)
    times = rebalance_times(aligned, options.window)
    every = _spacing(aligned, times)
    equity = exact(lyra.settings.risk.account_equity_usd)
    limits = Limits.from_settings(lyra.settings.portfolio)
    rebalancer = Rebalancer(
        lyra, limits=limits, anonymise=options.anonymise, timeframes=options.timeframes, source="backtest"
    )
    if cassette is not None:
        cassette.note_time_range(times[0].isoformat(), aligned.times[-1].isoformat())
        lyra.set_interceptor(cassette.intercept)
    started = time.monotonic()
    try:
        model = await walk_portfolio(
            "model",
            model_strategy(rebalancer),
            aligned,
            times,
            equity=equity,
            costs=options.costs,
            every=every,
            on_step=on_step,
        )
    except CassetteMiss as exc:
        raise ReplayMismatch(str(exc)) from exc
    finally:
        if cassette is not None:
            lyra.set_interceptor(None)
    elapsed = time.monotonic() - started
    baselines: list[tuple[str, Strategy]] = [
        ("equal_weight", equal_weight()),
        ("inverse_volatility", inverse_volatility()),
    ]
    baselines += [(f"buy_and_hold_{s}", buy_and_hold(s)) for s in aligned.symbols]
    runs = [model] + [
        await walk_portfolio(n, s, aligned, times, equity=equity, costs=options.costs, every=every)
        for n, s in baselines
    ]
    decisions = [t.record for t in model.targets]
    allowed = options.max_failed_share
    allowed = lyra.settings.risk.max_failed_share if allowed is None else allowed
    return {
        "symbols": aligned.symbols,
        "interval": aligned.interval,
        "simulated": lyra.config.simulated,
        "resampled": aligned.resampled,
        "timeframes": [aligned.interval, *options.timeframes],
        "window": {
            "start": times[0].isoformat(),
            "end": aligned.times[-1].isoformat(),
            "rebalances": len(times),
            "every": every,
        },
        "costs": {
            "fee_bps": str(options.costs.fee_bps),
            "slippage_bps": str(options.costs.slippage_bps),
            "symbol_fee_bps": {k: str(v) for k, v in options.costs.symbol_fee_bps.items()},
        },
        "limits": limits.to_dict(),
        "premium_notional_usd": lyra.settings.risk.premium_notional_usd,
        "equity_usd": str(equity),
        "anonymised": options.anonymise,
        "elapsed_s": round(elapsed, 3),
        "annualisation": annualisation(pd.DatetimeIndex(aligned.times), aligned.interval).to_dict(),
        "routes": {
            "premium": sum(d.get("route") == "premium" for d in decisions),
            "panel": sum(d.get("route") == "panel" for d in decisions),
            "panel_approved": sum(d.get("approved") is True for d in decisions),
        },
        "failures": failure_summary(decisions, allowed_share=allowed),
        "strategies": [summarise(r, aligned.interval, equity) for r in runs],
        "decisions": decisions,
        "rebalances": [t.canonical for t in model.targets],
        "fills": [f.to_dict() for f in model.fills],
        "curves": {r.name: [[t.isoformat(), round(v, 2)] for t, v in r.equity.items()] for r in runs},
    }


def _cut(aligned: Aligned, end: str) -> Aligned:
    """The aligned bars with nothing after `end`: a window ending at B measures what data cut at B would."""
    at = as_utc(end)
    keep = aligned.times[aligned.times <= at]
    if not len(keep):
        raise DataError(f"--to {end}: no bar at or before {at.isoformat()}")
    return Aligned(
        bars={s: b.until(at) for s, b in aligned.bars.items()},
        times=keep,
        interval=aligned.interval,
        opens=aligned.opens.loc[keep],
        closes=aligned.closes.loc[keep],
        resampled=aligned.resampled,
    )


def _spacing(aligned: Aligned, times: list[pd.Timestamp]) -> int:
    if len(times) < 2:
        return 1
    return int(aligned.times.get_loc(times[1]) - aligned.times.get_loc(times[0]))


def _without(value: Any, key: str) -> Any:
    if isinstance(value, dict):
        return {k: _without(v, key) for k, v in value.items() if k != key}
    if isinstance(value, list):
        return [_without(v, key) for v in value]
    return value


def parse_symbol_fees(text: str | None) -> Mapping[str, Decimal]:
    """ "GOOGL=1,EURUSD=0.2" -> per-symbol fees in basis points (a one-line error naming the bad part)."""
    out: dict[str, Decimal] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        try:
            fee = Decimal(value.strip())
        except ArithmeticError:
            fee = Decimal(-1)
        if not sep or not name.strip() or not fee.is_finite() or fee < 0:
            raise DataError(
                f"--symbol-fees: {part.strip()!r} is not SYMBOL=BPS (a number of basis points >= 0)"
            )
        out[name.strip()] = fee
    return out


__all__ = [
    "PortfolioOptions",
    "PortfolioRun",
    "Strategy",
    "Target",
    "buy_and_hold",
    "equal_weight",
    "inverse_volatility",
    "inverse_volatility_weights",
    "model_strategy",
    "parse_symbol_fees",
    "rebalance_times",
    "run_portfolio_backtest",
    "summarise",
    "walk_portfolio",
]
