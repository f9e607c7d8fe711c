"""Paper accounts kept in the ledger database: saved whole on every change, read back on a restart."""

from __future__ import annotations

import time
from typing import Any

import orjson
from sqlalchemy import Engine, delete, insert, select, update

from lyra.ledger.schema import paper_accounts, retry_if_locked


class AccountBook:
    """Named paper-account states (JSON objects) in the same database as the usage rows and decisions."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def load(self, name: str) -> dict[str, Any] | None:
        """The stored state of an account, or None when it was never saved."""
        with self._engine.connect() as conn:
            text = conn.execute(select(paper_accounts.c.state)
                                .where(paper_accounts.c.name == name)).scalar_one_or_none()
        if text is None:
            return None
        state: dict[str, Any] = orjson.loads(text)
        return state

    def save(self, name: str, state: dict[str, Any]) -> None:
        """Replace an account's state durably (committed before this returns)."""
        text = orjson.dumps(state, option=orjson.OPT_SERIALIZE_NUMPY).decode()
        retry_if_locked(lambda: self._save(name, text))

    def _save(self, name: str, text: str) -> None:
        now = time.time()
        with self._engine.begin() as conn:
            changed = conn.execute(update(paper_accounts).where(paper_accounts.c.name == name)
                                   .values(state=text, updated_ts=now)).rowcount
            if not changed:
                conn.execute(insert(paper_accounts).values(name=name, state=text, updated_ts=now))

    def names(self, prefix: str = "") -> list[str]:
        """The stored accounts whose name starts with `prefix`, sorted."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(paper_accounts.c.name).order_by(paper_accounts.c.name)).scalars()
            return [n for n in rows if n.startswith(prefix)]

    def remove(self, name: str) -> None:
        with self._engine.begin() as conn:
            conn.execute(delete(paper_accounts).where(paper_accounts.c.name == name))


__all__ = ["AccountBook"]
