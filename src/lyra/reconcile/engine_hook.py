"""The engine's reconciler: built from `[reconcile]`, fed by the router, observed by the metrics."""

from __future__ import annotations

from lyra.config.schema import Settings
from lyra.ledger import Ledger
from lyra.observe.metrics import Metrics, cost_drift_metrics
from lyra.reconcile.worker import Observer, Reconciled, ReconcileOptions, Reconciler
from lyra.routing.router import Router


def options_from(settings: Settings) -> ReconcileOptions:
    s = settings.reconcile
    return ReconcileOptions(first_delay_s=s.first_delay_s, max_delay_s=s.max_delay_s, lookups=s.lookups,
                            queue_size=s.queue_size, workers=s.workers, warn_drift_share=s.warn_drift_share)


class SecretOfRouter:
    """A key's secret from the router's key pool, by name; None for a name it does not hold."""

    def __init__(self, router: Router) -> None:
        self._router = router

    def __repr__(self) -> str:
        return "SecretOfRouter()"

    def __call__(self, name: str) -> str | None:
        try:
            return self._router.keys.secret(name)
        except KeyError:
            return None


def reconciler_for(settings: Settings, ledger: Ledger | None, router: Router) -> Reconciler | None:
    """A started reconciler fed by `router`'s attempts, or None (disabled, no ledger, no keys)."""
    if not settings.reconcile.enabled or ledger is None or not settings.keys:
        return None
    observers: list[Observer] = [_metric_observer(r) for r in router.recorders if isinstance(r, Metrics)]
    reconciler = Reconciler(ledger, router.transport, SecretOfRouter(router), options=options_from(settings),
                            observers=observers)
    router.recorders.append(reconciler)  # after the ledger's recorder: its row is queued first
    reconciler.start()
    return reconciler


def _metric_observer(metrics: Metrics) -> Observer:
    observe = cost_drift_metrics(metrics)

    def on_reconciled(done: Reconciled) -> None:
        if done.billed_nanos is not None:
            observe(done.model, done.key_name, done.booked_nanos, done.billed_nanos)

    return on_reconciled


__all__ = ["SecretOfRouter", "options_from", "reconciler_for"]
