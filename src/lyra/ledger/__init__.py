"""Durable usage records: one row per attempt and per request, in SQLite (WAL) or Postgres."""

from __future__ import annotations

from lyra.ledger.accounts import AccountBook
from lyra.ledger.audit import AuditRecord, AuditTrail, ChainCheck
from lyra.ledger.queries import SUMMARY_DIMENSIONS, percentile
from lyra.ledger.reconciliation import DriftLine, PendingAttempt
from lyra.ledger.records import KINDS, STATUSES, TAG_SEPARATOR, LedgerRow, SpendTotals, SummaryLine, tags_text
from lyra.ledger.schema import USAGE_TABLE
from lyra.ledger.store import ENV_URL, Ledger, data_folder, default_url

__all__ = [
    "ENV_URL",
    "KINDS",
    "STATUSES",
    "SUMMARY_DIMENSIONS",
    "TAG_SEPARATOR",
    "USAGE_TABLE",
    "AccountBook",
    "AuditRecord",
    "AuditTrail",
    "ChainCheck",
    "DriftLine",
    "Ledger",
    "LedgerRow",
    "PendingAttempt",
    "SpendTotals",
    "SummaryLine",
    "data_folder",
    "default_url",
    "percentile",
    "tags_text",
]
