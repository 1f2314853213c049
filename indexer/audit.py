"""The audit trail: append-only rows, each chained to the one before by a keyed hash.

``hash = HMAC-SHA-256(key, prev_hash | canonical JSON of (seq, time_us, user, action, object,
client_addr, detail))``; the first row's ``prev_hash`` is NULL; ``key_id`` names the key. The
key lives outside the database (a file, :func:`load_audit_key`), so someone who can write to the
database can drop the triggers and edit rows, but cannot compute the hashes that would make the
edit fit: :meth:`AuditLog.verify` names the first row that does not. Rows written before the key
existed (revision 0010_audit_key; ``key_id`` NULL) keep their plain SHA-256 and still verify;
once a keyed row follows them they are covered by its hash too, and a plain row after a keyed
one is itself the sign of a rewrite.

Cutting rows off the end leaves a chain that fits. What finds it is a copy of the chain's head
kept outside the database: signed anchors (pipeline/storage/anchors.py, in the evidence storage)
and each export's chain of custody; :meth:`AuditLog.verify` compares the rows with them.

Appends are serialised so two writers never chain onto the same row: one commit at a time in the
process (callers arriving meanwhile are committed together by the next one), plus ``BEGIN IMMEDIATE``
on SQLite and a table lock on PostgreSQL for other processes.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Table, func, select, text
from sqlalchemy.exc import SQLAlchemyError

from domain.errors import ConfigError, IndexStoreError
from indexer.models import AuditEntry

log = logging.getLogger(__name__)

_TABLE: Table = AuditEntry.__table__  # type: ignore[assignment]


KEY_BYTES = 32
_KEY_ID_LABEL = b"video-audit audit key id"


@dataclass(frozen=True, slots=True)
class AuditKey:
    """The secret that keys the chain. ``key_id`` (16 hex) names it in every row it keyed."""

    secret: bytes = field(repr=False)
    key_id: str = ""

    @classmethod
    def of(cls, secret: bytes) -> AuditKey:
        return cls(secret, hmac.new(secret, _KEY_ID_LABEL, hashlib.sha256).hexdigest()[:16])


def load_audit_key(path: Path, create: bool = False) -> AuditKey | None:
    """The key in ``path`` (64 hex digits); with ``create`` a new random one is written there
    first if there is none (mode 0600, never overwriting one another process made meanwhile).
    None if there is none and ``create`` is false. :class:`ConfigError` if the file is unreadable,
    malformed, or readable by other accounts (who could then forge the chain)."""
    if create and not path.exists():
        _create_key(path)
    try:
        st = path.stat()
        raw = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the audit key {path}: {exc}", path=str(path)) from exc
    if st.st_mode & 0o077:
        raise ConfigError(
            f"the audit key {path} is readable by other accounts (mode {st.st_mode & 0o777:o}); chmod 600 it",
            path=str(path),
        )
    try:
        secret = bytes.fromhex(raw)
    except ValueError:
        secret = b""
    if len(secret) != KEY_BYTES:
        raise ConfigError(f"the audit key {path} is not {KEY_BYTES * 2} hex digits", path=str(path))
    return AuditKey.of(secret)


def _create_key(path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(os.urandom(KEY_BYTES).hex() + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # fails if another process made the key meanwhile: theirs is kept
            log.warning(
                "created the audit key %s: keep a copy with the signing key; without it the "
                "trail cannot be verified",
                path,
            )
        except FileExistsError:
            pass
    except OSError as exc:
        raise ConfigError(f"cannot create the audit key {path}: {exc}", path=str(path)) from exc
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


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
    key_id: str | None = None  # None: written before the trail was keyed (plain SHA-256)

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
            "key_id": self.key_id,
        }


@dataclass(frozen=True, slots=True)
class AuditHead:
    """The chain's last row, and where keying began: what an anchor keeps."""

    seq: int  # 0: no row yet
    hash: str | None
    key_id: str | None
    keyed_from: int | None  # seq of the first keyed row


@dataclass(frozen=True, slots=True)
class AnchorPoint:
    """A copy of the head kept outside the database (a signed anchor, an export's custody)."""

    seq: int
    hash: str | None
    keyed_from: int | None
    written: str  # when (ISO UTC), for messages
    source: str  # where it was found, for messages


@dataclass(frozen=True, slots=True)
class ChainReport:
    rows: int
    first_broken: int | None  # seq of the first row that does not fit (0: the end, see reason)
    reason: str
    last_hash: str | None
    last_seq: int = 0
    key_id: str | None = None  # the key of the keyed rows
    keyed_from: int | None = None
    anchors: int = 0  # anchors compared
    newest_anchor: AnchorPoint | None = None

    @property
    def ok(self) -> bool:
        return self.first_broken is None

    @property
    def unanchored(self) -> int:
        """Rows after the newest anchor: a cut there is not found until the next anchor."""
        return self.last_seq - (self.newest_anchor.seq if self.newest_anchor is not None else 0)


def entry_hash(
    prev_hash: str | None,
    seq: int,
    time_us: int,
    user: str,
    action: str,
    obj: str,
    client_addr: str | None,
    detail: dict[str, Any] | None,
    key: AuditKey | None = None,
) -> str:
    """HMAC-SHA-256 with ``key``; plain SHA-256 (rows from before the key) without."""
    body = json.dumps(
        [seq, time_us, user, action, obj, client_addr, detail],
        ensure_ascii=False,
        sort_keys=True,
        separators=(",", ":"),
    )
    data = f"{prev_hash or ''}|{body}".encode()
    if key is None:
        return hashlib.sha256(data).hexdigest()
    return hmac.new(key.secret, data, hashlib.sha256).hexdigest()


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
    twenty concurrent viewers no longer queue for twenty serial fsyncs (docs/bench/playback.md)."""

    def __init__(
        self, engine: Engine, key: AuditKey | None = None, now_us: Callable[[], int] = _now_us
    ) -> None:
        """``key`` None: read and verify only (rows written before the key existed verify; keyed
        ones are reported unverifiable); appending needs the key."""
        self._engine = engine
        self._key = key
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
        if self._key is None:
            # an unkeyed row after keyed ones would read as a rewrite: refuse instead
            raise ConfigError("the audit trail cannot be written without the audit key ([audit] key_file)")
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
                key = self._key
                assert key is not None
                for p in batch:
                    seq += 1
                    now = self._now_us()
                    digest = entry_hash(prev, seq, now, p.user, p.action, p.obj, p.client_addr, p.detail, key)
                    out.append(
                        AuditRow(
                            seq,
                            now,
                            p.user,
                            p.action,
                            p.obj,
                            p.client_addr,
                            p.detail,
                            prev,
                            digest,
                            key.key_id,
                        )
                    )
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
                            "key_id": r.key_id,
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

    def head(self) -> AuditHead:
        """The last row and the first keyed one (what an anchor records)."""
        with self._engine.connect() as conn:
            last = conn.execute(
                select(_TABLE.c.seq, _TABLE.c.hash, _TABLE.c.key_id).order_by(_TABLE.c.seq.desc()).limit(1)
            ).first()
            keyed = conn.execute(select(func.min(_TABLE.c.seq)).where(_TABLE.c.key_id.is_not(None))).scalar()
        if last is None:
            return AuditHead(0, None, None, None)
        return AuditHead(int(last.seq), str(last.hash), last.key_id, None if keyed is None else int(keyed))

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

    def verify(self, anchors: Sequence[AnchorPoint] = ()) -> ChainReport:
        """Walk the whole chain in order and compare it with ``anchors`` (copies of earlier heads
        kept outside the database); the first row that does not fit is named, and a trail that
        ends before an anchor's row was cut."""
        key = self._key
        at: dict[int, list[AnchorPoint]] = {}
        for a in anchors:
            at.setdefault(a.seq, []).append(a)
        newest = max(anchors, key=lambda a: a.seq, default=None)
        marked = [a for a in anchors if a.keyed_from is not None]
        # the earliest keying any anchor saw: rows from there on must be keyed
        keyed_from = min((a.keyed_from for a in marked if a.keyed_from is not None), default=None)
        prev: str | None = None
        prev_seq = 0
        n = 0
        first_keyed: int | None = None
        key_id: str | None = None

        def broken(seq: int, why: str) -> ChainReport:
            return ChainReport(
                n, seq, f"row {seq}: {why}", prev, prev_seq, key_id, first_keyed, len(anchors), newest
            )

        for row in self._all():
            n += 1
            if row.prev_hash != prev:
                return broken(
                    row.seq,
                    "row missing before it" if row.seq != prev_seq + 1 else "prev_hash does not match",
                )
            if row.key_id is None:
                if first_keyed is not None:
                    return broken(
                        row.seq,
                        f"written without the audit key after keyed rows (keyed from row "
                        f"{first_keyed}): the trail was rewritten",
                    )
                if keyed_from is not None and row.seq >= keyed_from:
                    return broken(
                        row.seq,
                        f"written without the audit key, but the anchors say rows from "
                        f"{keyed_from} on were keyed: the trail was rewritten",
                    )
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
                what = "its hash"
            else:
                if key is None:
                    return broken(
                        row.seq,
                        f"keyed with audit key {row.key_id}, but no audit key is available "
                        "here (the key file is missing?)",
                    )
                if row.key_id != key.key_id:
                    return broken(
                        row.seq, f"keyed with audit key {row.key_id}, not with this centre's key {key.key_id}"
                    )
                if first_keyed is None:
                    first_keyed, key_id = row.seq, row.key_id
                want = entry_hash(
                    row.prev_hash,
                    row.seq,
                    row.time_us,
                    row.user,
                    row.action,
                    row.object,
                    row.client_addr,
                    row.detail,
                    key,
                )
                what = "its keyed hash (HMAC)"
            if not hmac.compare_digest(want, row.hash):
                return broken(row.seq, f"content does not match {what}")
            for anchor in at.get(row.seq, ()):
                if anchor.hash != row.hash:
                    return broken(
                        row.seq,
                        f"differs from the head kept in {anchor.source} (written "
                        f"{anchor.written}): the trail was rewritten",
                    )
            prev, prev_seq = row.hash, row.seq
        if newest is not None and newest.seq > prev_seq:
            return ChainReport(
                n,
                prev_seq + 1,
                f"the audit trail ends at row {prev_seq}, but {newest.source} (written "
                f"{newest.written}) names row {newest.seq}: {newest.seq - prev_seq} row(s) were "
                "cut off the end",
                prev,
                prev_seq,
                key_id,
                first_keyed,
                len(anchors),
                newest,
            )
        return ChainReport(n, None, "", prev, prev_seq, key_id, first_keyed, len(anchors), newest)


def _row(r: Any) -> AuditRow:
    return AuditRow(
        r.seq,
        r.time_us,
        r.user_name,
        r.action,
        r.object,
        r.client_addr,
        r.detail,
        r.prev_hash,
        r.hash,
        r.key_id,
    )
