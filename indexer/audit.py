"""The audit trail: append-only rows, each chained to the one before by SHA-256.

``hash = SHA-256(prev_hash | canonical JSON of (seq, time_us, user, action, object,
client_addr, detail))``; the first row's ``prev_hash`` is NULL. Changing, inserting or
deleting a row anywhere but at the very end breaks the chain at that row or the next one;
:meth:`AuditLog.verify` walks the chain and names the first row that does not fit. (Cutting
rows off the end is only visible against a copy of the last hash kept elsewhere, e.g. an
export's chain of custody.)

Appends are serialised so two writers never chain onto the same row: a process lock, plus
``BEGIN IMMEDIATE`` on SQLite and a table lock on PostgreSQL for other processes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, Table, func, select, text
from sqlalchemy.exc import SQLAlchemyError

from domain.errors import IndexStoreError
from indexer.models import AuditEntry

log = logging.getLogger(__name__)

_TABLE: Table = AuditEntry.__table__  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class AuditRow:
    seq: int
    time_us: int
    user: str
    action: str
    object: str
    client_addr: str | None
    detail: dict[str, Any] | None
    prev_hash: str | None
    hash: str

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time_us": self.time_us,
            "user": self.user,
            "action": self.action,
            "object": self.object,
            "client_addr": self.client_addr,
            "detail": self.detail,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


@dataclass(frozen=True, slots=True)
class ChainReport:
    rows: int
    first_broken: int | None  # seq of the first row that does not fit the chain
    reason: str
    last_hash: str | None

    @property
    def ok(self) -> bool:
        return self.first_broken is None


def entry_hash(
    prev_hash: str | None,
    seq: int,
    time_us: int,
    user: str,
    action: str,
    obj: str,
    client_addr: str | None,
    detail: dict[str, Any] | None,
) -> str:
    body = json.dumps(
        [seq, time_us, user, action, obj, client_addr, detail],
        ensure_ascii=False,
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(f"{prev_hash or ''}|{body}".encode()).hexdigest()


def _now_us() -> int:
    return time.time_ns() // 1000


class AuditLog:
    def __init__(self, engine: Engine, now_us: Callable[[], int] = _now_us) -> None:
        self._engine = engine
        self._now_us = now_us
        self._lock = threading.Lock()

    def append(
        self,
        user: str,
        action: str,
        obj: str,
        client_addr: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> AuditRow:
        """Append one row chained to the current last row; returns it."""
        obj = obj[:500]
        user = user[:128]
        try:
            with self._lock, self._engine.connect() as conn:
                if conn.dialect.name == "sqlite":
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                else:
                    conn.execute(text("LOCK TABLE audit_log IN SHARE ROW EXCLUSIVE MODE"))
                last = conn.execute(
                    select(_TABLE.c.seq, _TABLE.c.hash).order_by(_TABLE.c.seq.desc()).limit(1)
                ).first()
                seq = (last.seq + 1) if last is not None else 1
                prev = last.hash if last is not None else None
                now = self._now_us()
                digest = entry_hash(prev, seq, now, user, action, obj, client_addr, detail)
                conn.execute(
                    _TABLE.insert().values(
                        seq=seq,
                        time_us=now,
                        user_name=user,
                        action=action,
                        object=obj,
                        client_addr=client_addr,
                        detail=detail,
                        prev_hash=prev,
                        hash=digest,
                    )
                )
                conn.commit()
        except SQLAlchemyError as exc:
            raise IndexStoreError(f"cannot append to the audit trail: {exc}") from exc
        return AuditRow(seq, now, user, action, obj, client_addr, detail, prev, digest)

    def rows(
        self,
        *,
        user: str | None = None,
        action: str | None = None,
        object_prefix: str | None = None,
        before_seq: int | None = None,
        limit: int = 100,
    ) -> list[AuditRow]:
        """Newest first, filtered; page with ``before_seq``."""
        q = select(_TABLE).order_by(_TABLE.c.seq.desc()).limit(max(1, min(limit, 1000)))
        if user:
            q = q.where(_TABLE.c.user_name == user)
        if action:
            q = q.where(_TABLE.c.action == action)
        if object_prefix:
            q = q.where(_TABLE.c.object.startswith(object_prefix, autoescape=True))
        if before_seq is not None:
            q = q.where(_TABLE.c.seq < before_seq)
        with self._engine.connect() as conn:
            return [_row(r) for r in conn.execute(q)]

    def count(self) -> int:
        with self._engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(_TABLE)).scalar_one())

    def _all(self, batch: int = 5000) -> Iterator[AuditRow]:
        after = 0
        while True:
            with self._engine.connect() as conn:
                chunk = [
                    _row(r)
                    for r in conn.execute(
                        select(_TABLE).where(_TABLE.c.seq > after).order_by(_TABLE.c.seq).limit(batch)
                    )
                ]
            yield from chunk
            if len(chunk) < batch:
                return
            after = chunk[-1].seq

    def verify(self) -> ChainReport:
        """Walk the whole chain in order; the first row whose link or hash is wrong is named."""
        prev: str | None = None
        prev_seq = 0
        n = 0
        for row in self._all():
            n += 1
            if row.prev_hash != prev:
                why = "row missing before it" if row.seq != prev_seq + 1 else "prev_hash does not match"
                return ChainReport(n, row.seq, f"row {row.seq}: {why}", prev)
            want = entry_hash(
                row.prev_hash,
                row.seq,
                row.time_us,
                row.user,
                row.action,
                row.object,
                row.client_addr,
                row.detail,
            )
            if want != row.hash:
                return ChainReport(n, row.seq, f"row {row.seq}: content does not match its hash", prev)
            prev, prev_seq = row.hash, row.seq
        return ChainReport(n, None, "", prev)


def _row(r: Any) -> AuditRow:
    return AuditRow(
        r.seq, r.time_us, r.user_name, r.action, r.object, r.client_addr, r.detail, r.prev_hash, r.hash
    )
