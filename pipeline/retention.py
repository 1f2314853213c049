"""Legal hold, the retention job and storage capacity alerts (WORM evidence, docs/design/retention.md).

* :class:`LegalHolds` places a hold on a case: every segment (media and sidecar) of the cameras
  of each room its subjects stayed in, over those stays, and every body-camera clip linked to its
  subjects, gets an S3 legal hold (or the local marker) and a ``legal_hold_objects`` row. Release
  lifts the storage hold of the objects no other active hold covers.
* :class:`RetentionJob` deletes footage whose retention (by the kind of the camera's room) has
  ended and that no active hold covers: storage objects first (the WORM storage refuses anything
  still locked, and that segment is then kept), then the index row, and one audit row per deleted
  segment plus one for the run.
* :func:`check_capacity` raises a ``storage_capacity`` alert when the disk or the bucket is fuller
  than ``retention.alert_used_fraction``.

Audit rows are appended with ``indexer.audit.AuditLog`` (the project's hash-chained writer).
"""

from __future__ import annotations

import logging
import shutil
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, delete, insert, select, update
from sqlalchemy.orm import Session

from domain.errors import NotFoundError, StorageError
from domain.types import UTC, RoomKind, iso, sidecar_key
from indexer import segment_runs
from indexer.audit import AuditLog
from indexer.case_store import CaseStore
from indexer.fleet_models import active_hold_keys
from indexer.footage import FootageIndex
from indexer.models import Base, from_us, to_us
from pipeline.ops.health_alerts import AlertBook
from pipeline.settings import RetentionConfig
from pipeline.storage import LocalStorage, Storage
from pipeline.storage.worm import EvidenceStorage, ObjectLocked, RetentionPolicy, WormS3Storage

log = logging.getLogger(__name__)

SEGMENTS = Base.metadata.tables["segments"]
CAMERAS = Base.metadata.tables["cameras"]
ROOMS = Base.metadata.tables["rooms"]
IMPORTS = Base.metadata.tables["imported_files"]
IMPORT_SUBJECTS = Base.metadata.tables["imported_file_subjects"]
SUBJECTS = Base.metadata.tables["subjects"]
HOLDS = Base.metadata.tables["legal_holds"]
HOLD_OBJECTS = Base.metadata.tables["legal_hold_objects"]
ALERT_CAPACITY = "storage_capacity"


@dataclass(frozen=True, slots=True)
class HoldResult:
    hold_id: int
    case_id: int
    keys: tuple[str, ...]
    applied: int  # storage objects whose hold changed state


class LegalHolds:
    """Place and release legal holds on a case's footage."""

    def __init__(self, engine: Engine, storage: EvidenceStorage, audit: AuditLog) -> None:
        self._engine = engine
        self._storage = storage
        self._audit = audit
        self._footage = FootageIndex(CaseStore(engine))

    def footage_keys(self, case_id: int, now: datetime | None = None) -> list[str]:
        """Storage keys of the case's footage: room segments over its subjects' stays, and clips."""
        end_of_open = to_us(now or datetime.now(UTC))
        keys: set[str] = set()
        with self._engine.connect() as conn:
            if (
                conn.execute(
                    select(Base.metadata.tables["cases"].c.id).where(
                        Base.metadata.tables["cases"].c.id == case_id
                    )
                ).first()
                is None
            ):
                raise NotFoundError(f"case {case_id} does not exist", case_id=case_id)
            subjects = list(
                conn.execute(select(SUBJECTS.c.id).where(SUBJECTS.c.case_id == case_id)).scalars()
            )
            for subject in subjects:
                for stay in self._footage.trajectory(subject):
                    lo = to_us(stay.start)
                    hi = to_us(stay.end) if stay.end is not None else end_of_open
                    rows = conn.execute(
                        select(SEGMENTS.c.storage_key)
                        .join(CAMERAS, CAMERAS.c.id == SEGMENTS.c.camera_id)
                        .where(
                            CAMERAS.c.room_id == stay.room_id,
                            SEGMENTS.c.start_us < hi,
                            SEGMENTS.c.end_us > lo,
                        )
                    ).scalars()
                    for key in rows:
                        keys.update((key, sidecar_key(key)))
                clips = conn.execute(
                    select(IMPORTS.c.storage_key)
                    .join(IMPORT_SUBJECTS, IMPORT_SUBJECTS.c.file_id == IMPORTS.c.id)
                    .where(IMPORT_SUBJECTS.c.subject_id == subject)
                ).scalars()
                keys.update(clips)
        return sorted(keys)

    def place(self, case_id: int, placed_by: str, reason: str = "") -> HoldResult:
        keys = self.footage_keys(case_id)
        now_us = to_us(datetime.now(UTC))
        with self._engine.begin() as conn:
            hold_id = int(
                conn.execute(
                    insert(HOLDS)
                    .values(case_id=case_id, reason=reason, placed_by=placed_by, placed_us=now_us)
                    .returning(HOLDS.c.id)
                ).scalar_one()
            )
            if keys:
                conn.execute(insert(HOLD_OBJECTS), [{"hold_id": hold_id, "storage_key": k} for k in keys])
        applied = 0
        for key in keys:  # after the rows: a crash in between leaves the index stricter, not looser
            if self._storage.exists(key):
                self._storage.set_legal_hold(key, True)
                applied += 1
        self._audit.append(
            placed_by,
            "legal_hold.place",
            f"case:{case_id}",
            detail={"hold_id": hold_id, "objects": len(keys), "applied": applied, "reason": reason},
        )
        log.info("legal hold %d placed on case %d: %d objects", hold_id, case_id, len(keys))
        return HoldResult(hold_id, case_id, tuple(keys), applied)

    def release(self, hold_id: int, released_by: str) -> HoldResult:
        now_us = to_us(datetime.now(UTC))
        with self._engine.begin() as conn:
            row = conn.execute(select(HOLDS).where(HOLDS.c.id == hold_id)).mappings().first()
            if row is None:
                raise NotFoundError(f"legal hold {hold_id} does not exist", hold_id=hold_id)
            conn.execute(
                update(HOLDS)
                .where(HOLDS.c.id == hold_id, HOLDS.c.released_us.is_(None))
                .values(released_us=now_us, released_by=released_by)
            )
            keys = list(
                conn.execute(
                    select(HOLD_OBJECTS.c.storage_key).where(HOLD_OBJECTS.c.hold_id == hold_id)
                ).scalars()
            )
            still = set(
                conn.execute(active_hold_keys().where(HOLD_OBJECTS.c.storage_key.in_(keys))).scalars()
            )
        freed = 0
        for key in keys:
            if key not in still and self._storage.exists(key):
                self._storage.set_legal_hold(key, False)
                freed += 1
        self._audit.append(
            released_by,
            "legal_hold.release",
            f"case:{row['case_id']}",
            detail={"hold_id": hold_id, "objects": len(keys), "released": freed},
        )
        return HoldResult(hold_id, int(row["case_id"]), tuple(sorted(keys)), freed)


@dataclass
class RetentionReport:
    dry_run: bool
    deleted: list[str] = field(default_factory=list)  # media keys (with their sidecars)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (key, why) kept by storage
    held: int = 0  # expired but under legal hold
    bytes_freed: int = 0


class RetentionJob:
    """Delete expired, unheld footage from storage and the index; audit every deletion."""

    def __init__(
        self, engine: Engine, storage: Storage, policy: RetentionPolicy, audit: AuditLog
    ) -> None:
        self._engine = engine
        self._storage = storage
        self._policy = policy
        self._audit = audit

    def expired(self, now: datetime) -> tuple[list[dict[str, Any]], int]:
        """Expired segments not under hold (oldest first), and how many expired ones are held."""
        kinds: list[str | None] = [k.value for k in RoomKind] + [None]
        found: list[dict[str, Any]] = []
        held = 0
        with self._engine.connect() as conn:
            for kind in kinds:
                cutoff = to_us(now - timedelta(days=self._policy.cfg.days_for(kind)))
                room_term = ROOMS.c.kind == kind if kind is not None else CAMERAS.c.room_id.is_(None)
                base = (
                    select(
                        SEGMENTS.c.id,
                        SEGMENTS.c.storage_key,
                        SEGMENTS.c.camera_id,
                        SEGMENTS.c.start_us,
                        SEGMENTS.c.end_us,
                        SEGMENTS.c.size,
                        SEGMENTS.c.sha256,
                    )
                    .join(CAMERAS, CAMERAS.c.id == SEGMENTS.c.camera_id)
                    .outerjoin(ROOMS, ROOMS.c.id == CAMERAS.c.room_id)
                    .where(and_(room_term, SEGMENTS.c.end_us < cutoff))
                )
                rows = conn.execute(base).mappings().all()
                holds = set(conn.execute(active_hold_keys()).scalars()) if rows else set()
                for r in rows:
                    if r["storage_key"] in holds:
                        held += 1
                    else:
                        found.append({**r, "room_kind": kind})
        found.sort(key=lambda r: (r["end_us"], r["storage_key"]))
        return found, held

    def run(
        self, dry_run: bool = False, now: datetime | None = None, user: str = "retention"
    ) -> RetentionReport:
        when = now or datetime.now(UTC)
        candidates, held = self.expired(when)
        report = RetentionReport(dry_run=dry_run, held=held)
        for seg in candidates:
            key = seg["storage_key"]
            if dry_run:
                report.deleted.append(key)
                continue
            try:
                self._storage.delete(key)
                self._storage.delete(sidecar_key(key))
            except ObjectLocked as exc:
                report.refused.append((key, exc.message))
                log.warning("retention: %s kept: %s", key, exc.message)
                continue
            except StorageError as exc:
                report.refused.append((key, exc.message))
                log.error("retention: %s not deleted: %s", key, exc.message)
                continue
            with self._engine.begin() as conn:
                conn.execute(delete(SEGMENTS).where(SEGMENTS.c.id == seg["id"]))
            self._audit.append(
                user,
                "retention.delete",
                f"segment:{key}",
                detail={
                    "camera_id": seg["camera_id"],
                    "start": iso(from_us(seg["start_us"])),
                    "end": iso(from_us(seg["end_us"])),
                    "size": seg["size"],
                    "sha256": seg["sha256"],
                    "room_kind": seg["room_kind"],
                    "days": self._policy.cfg.days_for(seg["room_kind"]),
                },
            )
            report.deleted.append(key)
            report.bytes_freed += int(seg["size"])
        if report.deleted and not dry_run:
            # The deletes left the coverage runs around them dirty: recompute them now, so footage
            # answers stay on the fast path (they are exact either way).
            with Session(self._engine) as s, s.begin():
                segment_runs.repair(s)
        if not dry_run:
            self._audit.append(
                user,
                "retention.run",
                "storage",
                detail={
                    "at": iso(when),
                    "deleted": len(report.deleted),
                    "bytes": report.bytes_freed,
                    "refused": len(report.refused),
                    "held": held,
                },
            )
        log.info(
            "retention %s: %d deleted, %d refused, %d held",
            "dry run" if dry_run else "run",
            len(report.deleted),
            len(report.refused),
            held,
        )
        return report


def storage_usage(storage: Storage, cfg: RetentionConfig) -> tuple[int, int] | None:
    """(used, capacity) bytes of the disk or bucket; None if unknown (S3 without a capacity)."""
    if isinstance(storage, LocalStorage):
        usage = shutil.disk_usage(storage.root)
        return usage.used, usage.total
    if isinstance(storage, WormS3Storage) and cfg.bucket_capacity_bytes:
        return storage.used_bytes(), cfg.bucket_capacity_bytes
    return None


def check_capacity(storage: Storage, cfg: RetentionConfig, alerts: AlertBook) -> float | None:
    """The used fraction; a ``storage_capacity`` alert when it reaches the threshold."""
    usage = storage_usage(storage, cfg)
    if usage is None or usage[1] <= 0:
        return None
    fraction = usage[0] / usage[1]
    if fraction >= cfg.alert_used_fraction:
        alerts.raise_(
            ALERT_CAPACITY,
            "storage",
            f"{storage.describe()} is {fraction:.0%} full (alert at {cfg.alert_used_fraction:.0%}): "
            f"{usage[0]} of {usage[1]} bytes",
        )
    return fraction


class CapacityWatch:
    """Checks the disk or bucket every ``retention.capacity_check_seconds`` on a daemon thread."""

    def __init__(self, storage: Storage, cfg: RetentionConfig, alerts: AlertBook) -> None:
        self._storage = storage
        self._cfg = cfg
        self._alerts = alerts
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_fraction: float | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="capacity", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                self.last_fraction = check_capacity(self._storage, self._cfg, self._alerts)
            except (StorageError, OSError) as exc:
                log.warning("storage capacity check failed: %s", exc)
            if self._stop.wait(self._cfg.capacity_check_seconds):
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
