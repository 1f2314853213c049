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
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from domain.errors import StorageError
from domain.types import UTC, from_us, iso, sidecar_key
from indexer.audit import AuditLog
from indexer.holds import HoldIndex
from pipeline.ops.health_alerts import AlertBook
from pipeline.settings import RetentionConfig
from pipeline.storage import LocalStorage, Storage
from pipeline.storage.worm import EvidenceStorage, ObjectLocked, RetentionPolicy, WormS3Storage

log = logging.getLogger(__name__)

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
        self._index = HoldIndex(engine)
        self._storage = storage
        self._audit = audit

    def footage_keys(self, case_id: int, now: datetime | None = None) -> list[str]:
        """Storage keys of the case's footage: room segments over its subjects' stays, and clips."""
        return self._index.case_footage_keys(case_id, now)

    def place(self, case_id: int, placed_by: str, reason: str = "") -> HoldResult:
        keys = self.footage_keys(case_id)
        hold_id = self._index.add_hold(case_id, keys, placed_by, reason)
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
        released = self._index.release_hold(hold_id, released_by)
        freed = 0
        for key in released.keys:
            if key not in released.still_held and self._storage.exists(key):
                self._storage.set_legal_hold(key, False)
                freed += 1
        self._audit.append(
            released_by,
            "legal_hold.release",
            f"case:{released.case_id}",
            detail={"hold_id": hold_id, "objects": len(released.keys), "released": freed},
        )
        return HoldResult(hold_id, released.case_id, released.keys, freed)


@dataclass
class RetentionReport:
    dry_run: bool
    deleted: list[str] = field(default_factory=list)  # media keys (with their sidecars)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (key, why) kept by storage
    held: int = 0  # expired but under legal hold
    bytes_freed: int = 0


class RetentionJob:
    """Delete expired, unheld footage from storage and the index; audit every deletion."""

    def __init__(self, engine: Engine, storage: Storage, policy: RetentionPolicy, audit: AuditLog) -> None:
        self._index = HoldIndex(engine)
        self._storage = storage
        self._policy = policy
        self._audit = audit

    def expired(self, now: datetime) -> tuple[list[dict[str, Any]], int]:
        """Expired segments not under hold (oldest first), and how many expired ones are held."""
        return self._index.expired(now, self._policy.cfg.days_for)

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
            self._index.delete_segment(seg["id"])
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
            self._index.repair_runs()
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
