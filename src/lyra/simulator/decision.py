"""Trading decisions computed from the indicator features found in a prompt."""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from lyra.simulator.profiles import ModelProfile
from lyra.simulator.tokens import message_text

FEATURE_NAMES = frozenset(
    {
        "rsi", "macd_hist", "ret_1", "ret_5", "ret_20", "sma_ratio", "ema_ratio", "bb_pos",
        "volatility", "atr_pct", "volume_change",
    }
)
_PRICE_NAMES = ("price", "close", "last", "last_price", "mid")
_FENCE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\r?\n(.*?)```", re.S)
_HOLD_BAND = 0.15  # |score| below this is no trade
RATIONALE_MAX = 280
HORIZON = "4h"


@dataclass(frozen=True, slots=True)
class MarketView:
    """The numeric features of one prompt and the price they refer to, if given."""

    features: dict[str, float]
    price: float | None


@dataclass(frozen=True, slots=True)
class Decision:
    """What a simulated model decides."""

    action: str
    confidence: float
    rationale: str
    horizon: str
    stop_loss: float | None
    take_profit: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "confidence": self.confidence,
            "rationale": self.rationale,
            "horizon": self.horizon,
            "stop_loss": self.stop_loss,
            "take_profit": self.take_profit,
        }


def find_market_view(messages: list[Any]) -> MarketView | None:
    """Features from a ```json fence: in the last user message, else in any (latest first)."""
    texts = [message_text(m.get("content")) for m in messages if isinstance(m, dict)]
    roles = [m.get("role") for m in messages if isinstance(m, dict)]
    last_user = next((i for i in range(len(texts) - 1, -1, -1) if roles[i] == "user"), None)
    order = [last_user] if last_user is not None else []
    order += [i for i in range(len(texts) - 1, -1, -1) if i != last_user]
    for index in order:
        text = texts[index]
        if "```" not in text:
            continue
        for block in _FENCE.findall(text):
            view = _view_from_block(block)
            if view is not None:
                return view
    return None


def _view_from_block(block: str) -> MarketView | None:
    try:
        data = orjson.loads(block)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    nested = data.get("features")
    source = nested if isinstance(nested, dict) else data
    features = {
        key.lower(): float(value)
        for key, value in source.items()
        if key.lower() in FEATURE_NAMES and _is_number(value)
    }
    features = _with_timeframes(features, data.get("timeframes"))
    if not features:
        return None
    price = next(
        (float(d[k]) for d in (source, data) for k in _PRICE_NAMES if _is_number(d.get(k))), None
    )
    return MarketView(features, price if price and price > 0 else None)


def _with_timeframes(features: dict[str, float], timeframes: Any) -> dict[str, float]:
    """Each feature averaged over the base bars and every higher timeframe that has it.

    A multi-timeframe prompt (lyra.trading.timeframes) then moves the decision only as far as the
    higher timeframes agree with the base one: a deterministic stand-in for reading them together.
    """
    if not isinstance(timeframes, dict):
        return features
    values: dict[str, list[float]] = {k: [v] for k, v in features.items()}
    for block in timeframes.values():
        if not isinstance(block, dict):
            continue
        for key, value in block.items():
            if key.lower() in FEATURE_NAMES and _is_number(value):
                values.setdefault(key.lower(), []).append(float(value))
    return {k: sum(v) / len(v) for k, v in values.items()}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _clip(value: float, low: float = -1.0, high: float = 1.0) -> float:
    return low if value < low else high if value > high else value


# Each directional signal: (weight, score in [-1, 1] from the features, or None when absent).
_Signal = Callable[[dict[str, float], float | None], float | None]


def _momentum(f: dict[str, float], price: float | None) -> float | None:
    parts = [(0.2, "ret_1", 100.0), (0.5, "ret_5", 50.0), (0.3, "ret_20", 20.0)]
    present = [(w, math.tanh(f[k] * scale)) for w, k, scale in parts if k in f]
    if not present:
        return None
    score = sum(w * s for w, s in present) / sum(w for w, _ in present)
    return _clip(score * _volume_boost(f))


def _macd(f: dict[str, float], price: float | None) -> float | None:
    if "macd_hist" not in f:
        return None
    # Without a price the histogram's scale is unknown; its sign is what matters most.
    scaled = f["macd_hist"] / price * 2000.0 if price else f["macd_hist"] * 20.0
    return _clip(math.tanh(scaled) * _volume_boost(f))


def _trend(f: dict[str, float], price: float | None) -> float | None:
    parts = [(0.6, "sma_ratio"), (0.4, "ema_ratio")]
    present = [(w, math.tanh(f[k] * 50.0)) for w, k in parts if k in f]
    if not present:
        return None
    return sum(w * s for w, s in present) / sum(w for w, _ in present)


def _rsi_reversion(f: dict[str, float], price: float | None) -> float | None:
    if "rsi" not in f:
        return None
    rsi = f["rsi"]
    # Only the extremes carry a mean-reversion signal; the middle band is noise.
    return 0.0 if 40.0 <= rsi <= 60.0 else _clip((50.0 - rsi) / 20.0)


def _band_reversion(f: dict[str, float], price: float | None) -> float | None:
    return None if "bb_pos" not in f else _clip((0.5 - f["bb_pos"]) * 2.0)


def _volume_boost(f: dict[str, float]) -> float:
    return 1.0 + 0.3 * _clip(f.get("volume_change", 0.0))


_SIGNALS: tuple[tuple[str, float, _Signal], ...] = (
    ("momentum", 0.25, _momentum),
    ("macd", 0.20, _macd),
    ("trend", 0.25, _trend),
    ("rsi", 0.15, _rsi_reversion),
    ("bands", 0.10, _band_reversion),
)


def _risk_level(f: dict[str, float]) -> float | None:
    level = f.get("atr_pct", f.get("volatility"))
    if level is None:
        return None
    level = abs(level)
    return level / 100.0 if level > 1.0 else level  # given in percent


def score_features(features: dict[str, float], price: float | None) -> tuple[float, list[str]]:
    """The direction score in [-1, 1] and the names of the signals, strongest first."""
    weighted: list[tuple[float, str]] = []
    total_weight = 0.0
    for name, weight, signal in _SIGNALS:
        value = signal(features, price)
        if value is not None:
            weighted.append((weight * value, name))
            total_weight += weight
    if not weighted:
        return 0.0, []
    score = sum(c for c, _ in weighted) / total_weight
    ranked = [name for c, name in sorted(weighted, key=lambda p: -abs(p[0])) if c != 0.0]
    return score, ranked


def decide(view: MarketView, profile: ModelProfile, rng: random.Random) -> Decision:
    """The decision of one model: the feature score, its bias and noise, and levels from ATR."""
    score, ranked = score_features(view.features, view.price)
    risk = _risk_level(view.features)
    noisy = score + profile.bias + rng.gauss(0.0, profile.noise)
    if noisy > _HOLD_BAND:
        action = "BUY"
    elif noisy < -_HOLD_BAND:
        action = "SELL"
    else:
        action = "HOLD"
    confidence = _confidence(action, noisy, risk)
    stop_loss, take_profit = _levels(action, view.price, risk)
    rationale = _rationale(action, score, ranked, view.features)
    return Decision(
        action=action,
        confidence=confidence,
        rationale=rationale,
        horizon=HORIZON,
        stop_loss=stop_loss,
        take_profit=take_profit,
    )


def _confidence(action: str, noisy: float, risk: float | None) -> float:
    strength = abs(noisy)
    if action == "HOLD":
        value = 0.4 + 0.3 * (1.0 - strength / _HOLD_BAND)
    else:
        value = 0.55 + 0.4 * min(1.0, (strength - _HOLD_BAND) / 0.6)
        # High volatility makes a directional call less certain.
        value -= min(0.25, (risk or 0.0) * 5.0)
    return round(_clip(value, 0.05, 0.97), 2)


def _levels(
    action: str, price: float | None, risk: float | None
) -> tuple[float | None, float | None]:
    if price is None or action == "HOLD":
        return None, None
    step = _clip(risk if risk else 0.02, 0.002, 0.2)
    sign = 1.0 if action == "BUY" else -1.0
    stop = price * (1.0 - sign * 1.5 * step)
    target = price * (1.0 + sign * 2.5 * step)
    return float(f"{stop:.6g}"), float(f"{target:.6g}")


def _rationale(action: str, score: float, ranked: list[str], f: dict[str, float]) -> str:
    cited = [_cite(name, f) for name in ranked[:4]]
    risk = _risk_level(f)
    if risk is not None:
        cited.append(f"ATR {risk:.2%} of price")
    lean = "bullish" if score > 0 else "bearish" if score < 0 else "flat"
    verdict = f"{lean} lean too weak to act" if action == "HOLD" else f"{lean} bias overall"
    evidence = "; ".join(c for c in cited if c) or "no directional features"
    return f"{action}: {evidence}; {verdict}."[:RATIONALE_MAX]


def _cite(name: str, f: dict[str, float]) -> str:
    if name == "momentum":
        ret = next(k for k in ("ret_5", "ret_20", "ret_1") if k in f)
        return f"{ret.split('_')[1]}-bar return {f[ret]:+.2%}"
    if name == "macd":
        return f"MACD histogram {f['macd_hist']:+.4g}"
    if name == "trend":
        key = "sma_ratio" if "sma_ratio" in f else "ema_ratio"
        which = "SMA" if key == "sma_ratio" else "EMA"
        side = "above" if f[key] >= 0 else "below"
        return f"fast {which} {abs(f[key]):.2%} {side} slow {which}"
    if name == "rsi":
        rsi = f["rsi"]
        zone = (
            "oversold" if rsi < 30
            else "near oversold" if rsi < 40
            else "overbought" if rsi > 70
            else "near overbought"
        )
        return f"RSI {rsi:.1f} ({zone})"
    if name == "bands":
        return f"Bollinger position {f['bb_pos']:.2f}"
    return ""


ACTION_ALIASES: dict[str, tuple[str, ...]] = {
    "BUY": ("LONG", "BULLISH", "ENTER_LONG", "BUY_SIGNAL", "STRONG_BUY"),
    "SELL": ("SHORT", "BEARISH", "ENTER_SHORT", "SELL_SIGNAL", "STRONG_SELL", "EXIT"),
    "HOLD": ("FLAT", "NEUTRAL", "WAIT", "NONE", "ABSTAIN", "NO_TRADE"),
}
