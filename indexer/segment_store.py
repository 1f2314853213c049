"""Writing and querying footage in the index: rooms, cameras, segments and gaps.

Every public method opens its own session and transaction, so one :class:`SegmentStore`
may be shared by many threads. Writes are idempotent by their natural keys (``storage_key``
of a segment, ``gap_id`` of a gap): writing the same record again is a no-op, writing a
*different* record under an existing key raises :class:`ConflictError`.

Overlap queries use half-open intervals ``[start, end)``. To keep them a short range scan of
the ``(camera_id, start_us)`` index even on tables with many millions of rows, each camera
row remembers the longest segment and the longest gap ever stored for it
(``max_segment_us``/``max_gap_us``, maintained in the same transaction as the insert): a row
can only overlap ``[start, end)`` if it starts at or after ``start - longest``. Segments and
gaps must therefore be written through this class (or have those columns maintained).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Table, func, select, update
from sqlalchemy.orm import Session

from domain.credentials import redact_url
from domain.errors import ConflictError, IndexStoreError, NotFoundError, ValidationFailed
from domain.types import (
    ClockSource,
    GapCause,
    GapRecord,
    RoomKind,
    SegmentRecord,
    StreamInfo,
)
from indexer import segment_runs
from indexer.database import dialect_insert, mapped_transaction, session_factory
from indexer.models import SEGMENT_SOURCES, Base, Camera, Room, from_us, to_us

log = logging.getLogger(__name__)

SEGMENTS: Table = Base.metadata.tables["segments"]
GAPS: Table = Base.metadata.tables["gaps"]
CAMERAS: Table = Base.metadata.tables["cameras"]
ROOMS: Table = Base.metadata.tables["rooms"]
IMPORTS: Table = Base.metadata.tables["imported_files"]

DEFAULT_LIMIT = 10_000
_BATCH = 500
CameraSpec = tuple[str, str, str]  # camera_id, name, url
RoomSpec = tuple[str, str, str | RoomKind, Sequence[CameraSpec]]  # room_id, name, kind, cameras


@dataclass(frozen=True, slots=True)
class CameraInfo:
    camera_id: str
    name: str
    url: str
    active: bool
    room_id: str | None
    room_name: str | None
    room_kind: str | None
    last_segment_end: datetime | None


@dataclass(frozen=True, slots=True)
class SyncReport:
    added: int = 0
    updated: int = 0
    deactivated: int = 0


def _micros(dt: datetime, what: str) -> int:
    try:
        return to_us(dt)
    except (ValueError, TypeError, AttributeError) as exc:
        raise ValidationFailed(f"{what}: {exc}", field=what) from exc


def _range_us(start: datetime, end: datetime) -> tuple[int, int]:
    lo, hi = _micros(start, "start"), _micros(end, "end")
    if hi < lo:
        raise ValidationFailed("query range ends before it starts", start=str(start), end=str(end))
    return lo, hi


def segment_row(rec: SegmentRecord, source: str, indexed_us: int) -> dict[str, Any]:
    """The ``segments`` row of a record (plain data; no database needed)."""
    if source not in SEGMENT_SOURCES:
        raise ValidationFailed(f"segment source {source!r} is not one of {SEGMENT_SOURCES}", field="source")
    start_us, end_us = _micros(rec.start, "start"), _micros(rec.end, "end")
    if end_us < start_us:
        raise ValidationFailed(f"segment {rec.storage_key} ends before it starts", key=rec.storage_key)
    s = rec.stream
    return {
        "camera_id": rec.camera_id,
        "run_id": rec.run_id,
        "seq": rec.seq,
        "start_us": start_us,
        "end_us": end_us,
        "storage_key": rec.storage_key,
        "size": rec.size,
        "sha256": rec.sha256,
        "sm3": rec.sm3,
        "prev_sha256": rec.prev_sha256,
        "clock_source": ClockSource(rec.clock_source).value,
        "container": rec.container,
        "video_codec": s.video_codec,
        "width": s.width,
        "height": s.height,
        "audio_codec": s.audio_codec,
        "audio_sample_rate": s.audio_sample_rate,
        "audio_channels": s.audio_channels,
        "packets": rec.packets,
        "recovered": rec.recovered,
        "source": source,
        "indexed_us": indexed_us,
    }


def segment_from_row(row: Mapping[Any, Any]) -> SegmentRecord:
    return SegmentRecord(
        camera_id=row["camera_id"],
        run_id=row["run_id"],
        seq=row["seq"],
        start=from_us(row["start_us"]),
        end=from_us(row["end_us"]),
        storage_key=row["storage_key"],
        size=row["size"],
        sha256=row["sha256"],
        prev_sha256=row["prev_sha256"],
        clock_source=ClockSource(row["clock_source"]),
        stream=StreamInfo(
            video_codec=row["video_codec"],
            width=row["width"],
            height=row["height"],
            audio_codec=row["audio_codec"],
            audio_sample_rate=row["audio_sample_rate"],
            audio_channels=row["audio_channels"],
        ),
        container=row["container"],
        sm3=row["sm3"],
        packets=row["packets"],
        recovered=bool(row["recovered"]),
    )


def gap_row(gap: GapRecord, indexed_us: int) -> dict[str, Any]:
    start_us, end_us = _micros(gap.start, "start"), _micros(gap.end, "end")
    return {
        "gap_id": gap.gap_id,
        "camera_id": gap.camera_id,
        "start_us": start_us,
        "end_us": end_us,
        "cause": GapCause(gap.cause).value,
        "detail": gap.detail,
        "indexed_us": indexed_us,
    }


def gap_from_row(row: Mapping[Any, Any]) -> GapRecord:
    return GapRecord(
        camera_id=row["camera_id"],
        start=from_us(row["start_us"]),
        end=from_us(row["end_us"]),
        cause=GapCause(row["cause"]),
        detail=row["detail"],
        gap_id=row["gap_id"],
    )


def _differences(a: Mapping[str, Any], b: Mapping[Any, Any]) -> list[str]:
    return sorted(k for k in a if k not in ("id", "indexed_us") and a[k] != b.get(k))


def _now_us() -> int:
    return to_us(datetime.now(UTC))


class SegmentStore:
    """Footage in the index. Thread-safe: one session per call."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._sessions = session_factory(engine)
        self._lock = threading.Lock()
        # camera id -> (max_segment_us, max_gap_us) as last seen; a lower bound of the truth.
        self._known: dict[str, tuple[int, int]] = {}

    @property
    def engine(self) -> Engine:
        return self._engine

    # --- plumbing ----------------------------------------------------------------------------

    def _session(self, what: str) -> AbstractContextManager[Session]:
        return mapped_transaction(self._sessions, what)

    def _insert(self, table: Table) -> Any:
        return dialect_insert(self._engine, table)

    def _camera_spans(self, session: Session, camera_id: str) -> tuple[int, int]:
        """(max_segment_us, max_gap_us) of a camera, read from the database; NotFoundError if unknown."""
        row = session.execute(
            select(CAMERAS.c.max_segment_us, CAMERAS.c.max_gap_us).where(CAMERAS.c.id == camera_id)
        ).first()
        if row is None:
            raise NotFoundError(f"camera {camera_id!r} is not in the index", camera_id=camera_id)
        spans = (int(row[0]), int(row[1]))
        with self._lock:
            self._known[camera_id] = spans
        return spans

    def _cached_spans(self, session: Session, camera_id: str) -> tuple[int, int]:
        with self._lock:
            spans = self._known.get(camera_id)
        return spans if spans is not None else self._camera_spans(session, camera_id)

    def _grow(self, session: Session, camera_id: str, segment_us: int = 0, gap_us: int = 0) -> None:
        """Raise the camera's longest-segment/gap bounds if these are longer (monotone)."""
        known_seg, known_gap = self._cached_spans(session, camera_id)
        if segment_us > known_seg:
            session.execute(
                update(CAMERAS)
                .where(CAMERAS.c.id == camera_id, CAMERAS.c.max_segment_us < segment_us)
                .values(max_segment_us=segment_us)
            )
        if gap_us > known_gap:
            session.execute(
                update(CAMERAS)
                .where(CAMERAS.c.id == camera_id, CAMERAS.c.max_gap_us < gap_us)
                .values(max_gap_us=gap_us)
            )
        if segment_us > known_seg or gap_us > known_gap:
            # Cache only after commit would be stricter; a rolled-back grow merely costs an
            # extra UPDATE later, and a too-low cache is always safe.
            with self._lock:
                self._known.pop(camera_id, None)

    # --- rooms and cameras --------------------------------------------------------------------

    def sync_rooms(self, rooms: Sequence[RoomSpec]) -> SyncReport:
        """Make rooms and cameras match the centre configuration.

        Inserts new ones, updates names/kinds/urls/room of existing ones, and marks rooms and
        cameras absent from ``rooms`` inactive. Nothing is deleted (footage references it).
        Camera URLs are stored without credentials.
        """
        now = _now_us()
        wanted_rooms: dict[str, tuple[str, str]] = {}
        wanted_cams: dict[str, tuple[str, str, str]] = {}
        for room_id, name, kind, cams in rooms:
            if room_id in wanted_rooms:
                raise ValidationFailed(f"duplicate room id {room_id!r}", room_id=room_id)
            try:
                kind_value = RoomKind(kind).value
            except ValueError as exc:
                raise ValidationFailed(f"room {room_id!r}: unknown kind {kind!r}", room_id=room_id) from exc
            wanted_rooms[room_id] = (name, kind_value)
            for cam_id, cam_name, url in cams:
                if cam_id in wanted_cams:
                    raise ValidationFailed(f"duplicate camera id {cam_id!r}", camera_id=cam_id)
                wanted_cams[cam_id] = (room_id, cam_name, redact_url(url))

        added = updated = deactivated = 0
        with self._session("sync rooms") as s:
            have_rooms = {r.id: r for r in s.scalars(select(Room))}
            have_cams = {c.id: c for c in s.scalars(select(Camera))}
            for room_id, (name, kind_value) in wanted_rooms.items():
                room = have_rooms.get(room_id)
                if room is None:
                    s.add(Room(id=room_id, name=name, kind=kind_value, active=True, updated_us=now))
                    added += 1
                elif (room.name, room.kind, room.active) != (name, kind_value, True):
                    room.name, room.kind, room.active, room.updated_us = name, kind_value, True, now
                    updated += 1
            s.flush()  # rooms before the cameras that reference them
            for cam_id, (room_id, cam_name, url) in wanted_cams.items():
                cam = have_cams.get(cam_id)
                if cam is None:
                    s.add(
                        Camera(
                            id=cam_id,
                            room_id=room_id,
                            name=cam_name,
                            url=url,
                            active=True,
                            max_segment_us=0,
                            max_gap_us=0,
                            updated_us=now,
                        )
                    )
                    added += 1
                elif (cam.room_id, cam.name, cam.url, cam.active) != (room_id, cam_name, url, True):
                    cam.room_id, cam.name, cam.url = room_id, cam_name, url
                    cam.active, cam.updated_us = True, now
                    updated += 1
            for gone in [r for rid, r in have_rooms.items() if rid not in wanted_rooms and r.active]:
                gone.active, gone.updated_us = False, now
                deactivated += 1
            for gone_cam in [c for cid, c in have_cams.items() if cid not in wanted_cams and c.active]:
                gone_cam.active, gone_cam.updated_us = False, now
                deactivated += 1
        report = SyncReport(added=added, updated=updated, deactivated=deactivated)
        log.info("rooms synced: %s", report)
        return report

    def ensure_camera(self, camera_id: str) -> bool:
        """Create an inactive camera without a room if ``camera_id`` is unknown (footage found
        for a camera no longer configured). True if it was created."""
        values = {
            "id": camera_id,
            "room_id": None,
            "name": camera_id,
            "url": "",
            "active": False,
            "max_segment_us": 0,
            "max_gap_us": 0,
            "updated_us": _now_us(),
        }
        stmt = self._insert(CAMERAS).values(values).on_conflict_do_nothing(index_elements=["id"])
        with self._session(f"ensure camera {camera_id}") as s:
            created = s.execute(stmt.returning(CAMERAS.c.id)).first() is not None
        if created:
            log.warning("camera %s known only from footage: added as inactive, without a room", camera_id)
        return created

    def cameras(self) -> list[CameraInfo]:
        """Every camera (active or not) with its room and the end of its last segment."""
        last_end = (
            select(func.max(SEGMENTS.c.end_us)).where(SEGMENTS.c.camera_id == CAMERAS.c.id).scalar_subquery()
        )
        stmt = (
            select(
                CAMERAS.c.id,
                CAMERAS.c.name,
                CAMERAS.c.url,
                CAMERAS.c.active,
                CAMERAS.c.room_id,
                ROOMS.c.name.label("room_name"),
                ROOMS.c.kind.label("room_kind"),
                last_end.label("last_end_us"),
            )
            .select_from(CAMERAS.outerjoin(ROOMS, CAMERAS.c.room_id == ROOMS.c.id))
            .order_by(CAMERAS.c.id)
        )
        with self._session("list cameras") as s:
            rows = s.execute(stmt).mappings().all()
        return [
            CameraInfo(
                camera_id=r["id"],
                name=r["name"],
                url=r["url"],
                active=bool(r["active"]),
                room_id=r["room_id"],
                room_name=r["room_name"],
                room_kind=r["room_kind"],
                last_segment_end=None if r["last_end_us"] is None else from_us(int(r["last_end_us"])),
            )
            for r in rows
        ]

    # --- segments ----------------------------------------------------------------------------

    def add_segment(self, rec: SegmentRecord, source: str = "camera") -> bool:
        """Index one segment. True if inserted, False if the identical row was already there.

        Raises NotFoundError for an unknown camera and ConflictError if a different record
        is stored under the same storage key.
        """
        return self.add_segments([rec], source) == 1

    def add_segments(self, recs: Iterable[SegmentRecord], source: str = "camera") -> int:
        """Index many segments in one transaction per 500 (bulk loads, reindex). Returns how
        many rows were inserted; identical rows already present are skipped. A conflicting
        record aborts its batch with ConflictError (earlier batches stay committed)."""
        inserted = 0
        batch: dict[str, dict[str, Any]] = {}
        now = _now_us()
        for rec in recs:
            row = segment_row(rec, source, now)
            prior = batch.get(rec.storage_key)
            if prior is not None and _differences(row, prior):
                raise ConflictError(
                    f"two different segments under storage key {rec.storage_key}", key=rec.storage_key
                )
            batch[rec.storage_key] = row
            if len(batch) >= _BATCH:
                inserted += self._insert_segments(list(batch.values()))
                batch = {}
        if batch:
            inserted += self._insert_segments(list(batch.values()))
        return inserted

    def _insert_segments(self, rows: list[dict[str, Any]]) -> int:
        with self._session("add segments") as s:
            longest: dict[str, int] = {}
            for row in rows:
                self._cached_spans(s, row["camera_id"])  # NotFoundError for an unknown camera
                dur = row["end_us"] - row["start_us"]
                longest[row["camera_id"]] = max(dur, longest.get(row["camera_id"], 0))
            # A plain executemany (statement compiled once; psycopg pipelines it): far faster
            # than one multi-row VALUES statement. Rows skipped by ON CONFLICT are not counted.
            # preserve_rowcount: SQLAlchemy reports -1 for an INSERT executemany without it.
            stmt = (
                self._insert(SEGMENTS)
                .on_conflict_do_nothing(index_elements=["storage_key"])
                .execution_options(preserve_rowcount=True)
            )
            result = s.connection().execute(stmt, rows)
            inserted = int(result.rowcount)
            if inserted < 0:  # refuse rather than report a wrong count
                raise IndexStoreError("the database driver did not report how many rows it inserted")
            if inserted < len(rows):  # some keys were there already: they must hold the same record
                self._check_same(s, rows)
            # Coverage runs in the same transaction (duplicates change nothing: a union is idempotent).
            spans: dict[str, list[tuple[int, int]]] = {}
            for row in rows:
                spans.setdefault(row["camera_id"], []).append((row["start_us"], row["end_us"]))
            segment_runs.merge(s, spans)
            for camera_id, dur in longest.items():
                self._grow(s, camera_id, segment_us=dur)
        log.debug("segments: %d inserted, %d already present", inserted, len(rows) - inserted)
        return inserted

    def _check_same(self, s: Session, rows: list[dict[str, Any]]) -> None:
        by_key = {row["storage_key"]: row for row in rows}
        stored = s.execute(select(SEGMENTS).where(SEGMENTS.c.storage_key.in_(list(by_key)))).mappings()
        for have in stored:
            want = by_key[have["storage_key"]]
            diff = _differences(want, have)
            if diff:
                log.warning("conflicting segment %s: differs in %s", have["storage_key"], diff)
                raise ConflictError(
                    f"segment {have['storage_key']} is already indexed with different {', '.join(diff)}",
                    key=have["storage_key"],
                    fields=diff,
                )

    def repair_runs(self, camera_id: str | None = None) -> int:
        """Recompute the coverage runs that deletes of segments left dirty (see
        :mod:`indexer.segment_runs`); returns how many were. Readers stay exact without it (they
        fall back to the segments of a dirty run's camera), only slower."""
        with self._session("repair segment runs") as s:
            return segment_runs.repair(s, camera_id)

    def segments(
        self, camera_id: str, start: datetime, end: datetime, limit: int = DEFAULT_LIMIT
    ) -> list[SegmentRecord]:
        """Segments of ``camera_id`` overlapping ``[start, end)``, ordered by start (then seq).

        At most ``limit`` rows; page on by querying again from the last one's start.
        """
        lo, hi = _range_us(start, end)
        with self._session(f"segments of {camera_id}") as s:
            longest, _ = self._camera_spans(s, camera_id)
            stmt = (
                select(SEGMENTS)
                .where(
                    SEGMENTS.c.camera_id == camera_id,
                    SEGMENTS.c.start_us >= lo - longest,
                    SEGMENTS.c.start_us < hi,
                    SEGMENTS.c.end_us > lo,
                )
                .order_by(SEGMENTS.c.start_us, SEGMENTS.c.seq)
                .limit(limit)
            )
            rows = s.execute(stmt).mappings().all()
        return [segment_from_row(r) for r in rows]

    def room_kinds(self) -> list[tuple[str, str, str]]:
        """Every room as (id, name, kind value), as the configuration last synced them."""
        with self._engine.connect() as conn:
            return [
                (str(r), str(n), str(k))
                for r, n, k in conn.execute(select(ROOMS.c.id, ROOMS.c.name, ROOMS.c.kind))
            ]

    def capture_hash(self, storage_key: str) -> str | None:
        """The SHA-256 the index recorded at capture for a segment or an imported clip."""
        with self._engine.connect() as conn:
            row = conn.execute(select(SEGMENTS.c.sha256).where(SEGMENTS.c.storage_key == storage_key)).first()
            if row is None:
                row = conn.execute(
                    select(IMPORTS.c.sha256).where(IMPORTS.c.storage_key == storage_key)
                ).first()
        return None if row is None else str(row[0])

    def segments_by_seq(self, camera_id: str, seqs: Sequence[int]) -> dict[int, SegmentRecord]:
        """``camera_id``'s segments with these sequence numbers (those the index has), by seq."""
        out: dict[int, SegmentRecord] = {}
        wanted = sorted(set(seqs))
        with self._session(f"segments of {camera_id} by sequence number") as s:
            for i in range(0, len(wanted), 500):
                stmt = select(SEGMENTS).where(
                    SEGMENTS.c.camera_id == camera_id, SEGMENTS.c.seq.in_(wanted[i : i + 500])
                )
                for row in s.execute(stmt).mappings():
                    rec = segment_from_row(row)
                    out[rec.seq] = rec
        return out

    def last_segment(self, camera_id: str) -> SegmentRecord | None:
        """The segment of ``camera_id`` that ends last, or None if it has none."""
        with self._session(f"last segment of {camera_id}") as s:
            self._camera_spans(s, camera_id)
            stmt = (
                select(SEGMENTS)
                .where(SEGMENTS.c.camera_id == camera_id)
                .order_by(SEGMENTS.c.end_us.desc(), SEGMENTS.c.seq.desc())
                .limit(1)
            )
            row = s.execute(stmt).mappings().first()
        return None if row is None else segment_from_row(row)

    # --- gaps --------------------------------------------------------------------------------

    def add_gap(self, gap: GapRecord) -> bool:
        """Index one gap. True if inserted, False if the identical gap was already there;
        ConflictError if a different gap has the same gap_id; NotFoundError for an unknown camera."""
        row = gap_row(gap, _now_us())
        with self._session(f"add gap {gap.gap_id}") as s:
            self._cached_spans(s, gap.camera_id)
            stmt = (
                self._insert(GAPS)
                .values(row)
                .on_conflict_do_nothing(index_elements=["gap_id"])
                .returning(GAPS.c.id)
            )
            if s.execute(stmt).first() is not None:
                self._grow(s, gap.camera_id, gap_us=row["end_us"] - row["start_us"])
                return True
            have = s.execute(select(GAPS).where(GAPS.c.gap_id == gap.gap_id)).mappings().one()
            diff = _differences(row, have)
            if diff:
                raise ConflictError(
                    f"gap {gap.gap_id} is already indexed with different {', '.join(diff)}",
                    key=gap.gap_id,
                    fields=diff,
                )
            return False

    def gaps(
        self, camera_id: str, start: datetime, end: datetime, limit: int = DEFAULT_LIMIT
    ) -> list[GapRecord]:
        """Gaps of ``camera_id`` overlapping ``[start, end)``, ordered by start."""
        lo, hi = _range_us(start, end)
        with self._session(f"gaps of {camera_id}") as s:
            _, longest = self._camera_spans(s, camera_id)
            stmt = (
                select(GAPS)
                .where(
                    GAPS.c.camera_id == camera_id,
                    GAPS.c.start_us >= lo - longest,
                    GAPS.c.start_us < hi,
                    GAPS.c.end_us > lo,
                )
                .order_by(GAPS.c.start_us, GAPS.c.gap_id)
                .limit(limit)
            )
            rows = s.execute(stmt).mappings().all()
        return [gap_from_row(r) for r in rows]
