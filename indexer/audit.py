"""The audit trail: append-only rows, each chained to the one before by SHA-256.

``hash = SHA-256(prev_hash | canonical JSON of (seq, time_us, user, action, object,
client_addr, detail))``; the first row's ``prev_hash`` is NULL. Changing, inserting or
deleting a row anywhere but at the very end breaks the chain at that row or the next one;
:meth:`AuditLog.verify` walks the chain and names the first row that does not fit. (Cutting
rows off the end is only visible against a copy of the last hash kept elsewhere, e.g. an
export's chain of custody.)

Appends are serialised so two writers never chain onto the same row: one commit at a time in the
process (callers arriving meanwhile are committed together by the next one), plus ``BEGIN IMMEDIATE``
on SQLite and a table lock on PostgreSQL for other processes.
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


@dataclass(slots=True)
class _Pending:
    """One caller's row waiting for a group commit, and what became of it."""

    user: str
    action: str
    obj: str
    client_addr: str | None
    detail: dict[str, Any] | None
    row: AuditRow | None = None
    error: IndexStoreError | None = None
    done: bool = False


class AuditLog:
    """Appends with group commit: callers that arrive while a commit is in progress are written
    together by the next one, in one transaction and one fsync, each chained to the one before.
    Every caller still returns only once its own row is committed (no access without a row), but
    twenty concurrent viewers no longer queue for twenty serial fsyncs (docs/WEB.md)."""

    def __init__(self, engine: Engine, now_us: Callable[[], int] = _now_us) -> None:
        self._engine = engine
        self._now_us = now_us
        self._cv = threading.Condition()
        self._queue: list[_Pending] = []
        self._writing = False

    def append(
        self,
        user: str,
        action: str,
        obj: str,
        client_addr: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> AuditRow:
        """Append one row chained to the current last row; returns it once it is committed."""
        mine = _Pending(user[:128], action, obj[:500], client_addr, detail)
        with self._cv:
            self._queue.append(mine)
            while self._writing and not mine.done:
                self._cv.wait()
            if not mine.done:  # no commit in progress: this caller writes everything queued
                self._writing = True
                batch, self._queue = self._queue, []
        if not mine.done:
            try:
                rows = self._write(batch)
                for pending, row in zip(batch, rows, strict=True):
                    pending.row = row
            except IndexStoreError as exc:
                for pending in batch:
                    pending.error = exc
            finally:
                with self._cv:
                    for pending in batch:
                        pending.done = True
                    self._writing = False
                    self._cv.notify_all()
        if mine.error is not None:
            raise mine.error
        assert mine.row is not None
        return mine.row

    def _write(self, batch: list[_Pending]) -> list[AuditRow]:
        """One transaction: chain every row of ``batch`` onto the current last row."""
        out: list[AuditRow] = []
        try:
            with self._engine.connect() as conn:
                if conn.dialect.name == "sqlite":
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                else:
                    conn.execute(text("LOCK TABLE audit_log IN SHARE ROW EXCLUSIVE MODE"))
                last = conn.execute(
                    select(_TABLE.c.seq, _TABLE.c.hash).order_by(_TABLE.c.seq.desc()).limit(1)
                ).first()
                seq = last.seq if last is not None else 0
                prev = last.hash if last is not None else None
                for p in batch:
                    seq += 1
                    now = self._now_us()
                    digest = entry_hash(prev, seq, now, p.user, p.action, p.obj, p.client_addr, p.detail)
                    out.append(AuditRow(seq, now, p.user, p.action, p.obj, p.client_addr, p.detail, prev, digest))
                    prev = digest
                conn.execute(
                    _TABLE.insert(),
                    [
                        {
                            "seq": r.seq,
                            "time_us": r.time_us,
                            "user_name": r.user,
                            "action": r.action,
                            "object": r.object,
                            "client_addr": r.client_addr,
                            "detail": r.detail,
                            "prev_hash": r.prev_hash,
                            "hash": r.hash,
                        }
                        for r in out
                    ],
                )
                conn.commit()
        except SQLAlchemyError as exc:
            raise IndexStoreError(f"cannot append to the audit trail: {exc}") from exc
        if len(batch) > 1:
            log.debug("audit rows committed together", extra={"rows": len(batch)})
        return out

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
