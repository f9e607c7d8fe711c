"""The decision audit trail: an append-only hash chain in the ledger database."""

from __future__ import annotations

import contextlib
import hashlib
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from lyra.ids import new_id
from lyra.ledger.schema import audit_head, decisions, retry_if_locked

GENESIS = "0" * 64


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One recorded decision: its place in the chain and everything that went into it."""

    seq: int
    decision_id: str
    ts: float
    symbol: str | None
    action: str | None
    cost_nanos: int
    prev_hash: str
    hash: str
    payload: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ChainCheck:
    """The result of verifying the chain: how far it holds and where it first breaks."""

    ok: bool
    checked: int
    first_broken_seq: int | None = None
    reason: str = ""


def chain_hash(prev_hash: str, seq: int, decision_id: str, ts: float, payload_text: str) -> str:
    """The hash of one record, binding it to its predecessor."""
    material = f"{prev_hash}\n{seq}\n{decision_id}\n{ts!r}\n{payload_text}".encode()
    return hashlib.sha256(material).hexdigest()


class AuditTrail:
    """Appends decisions to the chain, reads them back and verifies the chain end to end."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._ensure_head()

    def _ensure_head(self) -> None:
        retry_if_locked(self._create_head)

    def _create_head(self) -> None:
        # Another process may create the head row at the same moment: its insert wins, ours fails.
        with contextlib.suppress(IntegrityError), self._engine.begin() as conn:
            if conn.execute(select(audit_head.c.id).where(audit_head.c.id == 1)).first() is None:
                conn.execute(insert(audit_head).values(id=1, seq=0, hash=GENESIS))

    def append(self, payload: Mapping[str, Any], *, symbol: str | None = None, action: str | None = None,
               cost_nanos: int = 0) -> AuditRecord:
        """Append one decision durably (committed before this returns) and return its record."""
        text = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS, default=str).decode()
        decision_id, ts = new_id(), time.time()
        with self._engine.begin() as conn:
            # Taking the head row's write lock first serialises appenders across processes.
            conn.execute(update(audit_head).where(audit_head.c.id == 1).values(seq=audit_head.c.seq + 1))
            seq, prev = conn.execute(select(audit_head.c.seq, audit_head.c.hash)
                                     .where(audit_head.c.id == 1)).one()
            digest = chain_hash(prev, seq, decision_id, ts, text)
            conn.execute(insert(decisions).values(
                seq=seq, decision_id=decision_id, ts=ts, symbol=symbol, action=action,
                cost_nanos=cost_nanos, prev_hash=prev, hash=digest, payload=text))
            conn.execute(update(audit_head).where(audit_head.c.id == 1).values(hash=digest))
        return AuditRecord(seq, decision_id, ts, symbol, action, cost_nanos, prev, digest, dict(payload))

    def get(self, ref: str) -> AuditRecord | None:
        """A record by decision id or sequence number."""
        query = select(decisions)
        query = query.where(decisions.c.seq == int(ref)) if ref.isdigit() else query.where(
            decisions.c.decision_id == ref)
        with self._engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return _record(row) if row else None

    def recent(self, limit: int = 20) -> list[AuditRecord]:
        with self._engine.connect() as conn:
            rows = conn.execute(select(decisions).order_by(decisions.c.seq.desc()).limit(limit)).mappings()
            return [_record(r) for r in rows]

    def records(self, *, batch: int = 500) -> Iterator[AuditRecord]:
        """Every record in chain order, read a batch at a time (an export walks the whole trail)."""
        after = 0
        while True:
            with self._engine.connect() as conn:
                rows = list(conn.execute(select(decisions).where(decisions.c.seq > after)
                                         .order_by(decisions.c.seq).limit(batch)).mappings())
            yield from (_record(r) for r in rows)
            if len(rows) < batch:
                return
            after = int(rows[-1]["seq"])

    def verify(self) -> ChainCheck:
        """Walk the chain from the start; report the first record that was edited, removed or reordered."""
        prev, expected_seq, checked = GENESIS, 1, 0
        with self._engine.connect() as conn:
            head_seq, head_hash = conn.execute(select(audit_head.c.seq, audit_head.c.hash)).one()
            for row in conn.execute(select(decisions).order_by(decisions.c.seq)).mappings():
                seq = int(row["seq"])
                if seq != expected_seq:
                    return ChainCheck(False, checked, expected_seq, f"record {expected_seq} is missing")
                if row["prev_hash"] != prev:
                    return ChainCheck(False, checked, seq, "its link to the previous record is broken")
                digest = chain_hash(prev, seq, row["decision_id"], float(row["ts"]), row["payload"])
                if digest != row["hash"]:
                    return ChainCheck(False, checked, seq, "its contents do not match its hash (edited)")
                prev, expected_seq, checked = row["hash"], seq + 1, checked + 1
        if head_seq != checked or head_hash != prev:
            return ChainCheck(False, checked, checked + 1 if head_seq > checked else checked,
                              f"the chain should hold {head_seq} records ending in {head_hash[:12]}")
        return ChainCheck(True, checked)


def _record(row: Any) -> AuditRecord:
    return AuditRecord(int(row["seq"]), row["decision_id"], float(row["ts"]), row["symbol"], row["action"],
                       int(row["cost_nanos"]), row["prev_hash"], row["hash"], orjson.loads(row["payload"]))
