"""Trading on top of the engine: market data, features and (later) prompts, pipeline and risk.

`load_bars` reads and validates OHLCV bars (CSV, Parquet, DataFrame, `ccxt:EXCHANGE:SYMBOL:TF`);
`load_sample` gives the bundled real prices (GOOGL daily, EURUSD hourly); `compute_features` and
`features_at` turn bars into causal technical features for prompts.
"""

from lyra.trading.data import (
    DEFAULT_SAMPLE,
    Bars,
    DataError,
    as_utc,
    list_samples,
    load_bars,
    load_sample,
    sample_path,
)
from lyra.trading.features import FEATURE_NAMES, compute_features, features_at

__all__ = [
    "DEFAULT_SAMPLE",
    "FEATURE_NAMES",
    "Bars",
    "DataError",
    "as_utc",
    "compute_features",
    "features_at",
    "list_samples",
    "load_bars",
    "load_sample",
    "sample_path",
]
