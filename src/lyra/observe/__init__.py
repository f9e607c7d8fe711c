"""Observability: Prometheus metrics and the recorder that turns attempts into ledger rows."""
