"""Cost truth from the source: each attempt's billed cost from /generation, each key's day from /key."""

from __future__ import annotations

from lyra.reconcile.billed import generation_cost_nanos, key_daily_nanos, usd_nanos
from lyra.reconcile.drift import DriftWatch
from lyra.reconcile.engine_hook import reconciler_for
from lyra.reconcile.keys import KeyDay, compare_keys
from lyra.reconcile.worker import Reconciled, ReconcileOptions, Reconciler

__all__ = [
    "DriftWatch",
    "KeyDay",
    "ReconcileOptions",
    "Reconciled",
    "Reconciler",
    "compare_keys",
    "generation_cost_nanos",
    "key_daily_nanos",
    "reconciler_for",
    "usd_nanos",
]
