"""Footage for a subject between two instants, body-camera clips, and a case's timeline.

For every stay of the subject's trajectory (see :mod:`indexer.trajectory`) the footage of
that stay is: the segments of the room's cameras overlapping it, the gaps (with their
causes) overlapping it, the body-camera clips linked to the subject overlapping it, and the
"unexplained" intervals covered by none of them — the seconds nobody can account for.

Overlap queries read the ``segments``/``gaps`` tables directly: a row overlaps ``[lo, hi)``
only if it starts in ``[lo - longest, hi)`` where ``longest`` is the camera's
``max_segment_us``/``max_gap_us`` bound (maintained by the segment store), so each query
is a short range scan of the ``(camera_id, start_us)`` index however big the table grows.
All queries of one request share one session (one snapshot, one connection).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from domain.errors import ValidationFailed
from domain.types import (
    CameraCoverage,
    ClockSource,
    ImportedClip,
    RoomStay,
    SegmentRecord,
    StayFootage,
    StreamInfo,
    TimeRange,
    utc,
)
from indexer.case_records import CaseInfo, Problems, StoredEvent, SubjectInfo
from indexer.case_store import CaseStore
from indexer.models import Base, from_us, to_us
from indexer.segment_store import gap_from_row
from indexer.trajectory import clip_stay, trajectory

log = logging.getLogger(__name__)

T = Base.metadata.tables
SEGMENTS, GAPS, CAMERAS = T["segments"], T["gaps"], T["cameras"]
SUBJECTS, OFFICERS = T["subjects"], T["officers"]
IMPORTS, IMPORT_SUBJECTS = T["imported_files"], T["imported_file_subjects"]

MAX_ROWS_PER_CAMERA = 50_000  # 5.8 days of 10 s segments: a bound, not a page size


@dataclass(frozen=True, slots=True)
class NewImport:
    """A body-camera clip already stored, to be recorded in the index."""

    device_id: str
    officer_id: int | None
    storage_key: str
    original_name: str
    size: int
    sha256: str
    sm3: str | None
    start: datetime
    end: datetime
    container: str
    stream: StreamInfo | None
    subject_ids: tuple[int, ...] = ()
    evidence: bool = False


@dataclass(frozen=True, slots=True)
class SubjectTimeline:
    subject: SubjectInfo
    footage: list[StayFootage]
    clips: list[ImportedClip]  # every clip of the subject, also those outside any stay


@dataclass(frozen=True, slots=True)
class CaseTimeline:
    case: CaseInfo
    events: list[StoredEvent]
    subjects: list[SubjectTimeline]


def clip_from_row(r: Mapping[Any, Any]) -> ImportedClip:
    stream = None
    if r["video_codec"] is not None:
        stream = StreamInfo(
            video_codec=r["video_codec"],
            width=int(r["width"] or 0),
            height=int(r["height"] or 0),
            audio_codec=r["audio_codec"],
            audio_sample_rate=r["audio_sample_rate"],
            audio_channels=r["audio_channels"],
        )
    return ImportedClip(
        clip_id=int(r["id"]),
        device_id=r["device_id"],
        officer_id=None if r["officer_id"] is None else int(r["officer_id"]),
        storage_key=r["storage_key"],
        start=from_us(r["start_us"]),
        end=from_us(r["end_us"]),
        size=int(r["size"]),
        sha256=r["sha256"],
        sm3=r["sm3"],
        container=r["container"],
        stream=stream,
    )


_SEG_NAMES = (
    "camera_id", "run_id", "seq", "start_us", "end_us", "storage_key", "size", "sha256", "prev_sha256",
    "clock_source", "container", "sm3", "packets", "recovered",
    "video_codec", "width", "height", "audio_codec", "audio_sample_rate", "audio_channels",
)  # fmt: skip
_SEG_COLS = [SEGMENTS.c[name] for name in _SEG_NAMES]


def _segments(rows: Sequence[Any]) -> tuple[SegmentRecord, ...]:
    """Rows of ``_SEG_COLS`` → records. A long stay has thousands of segments, so this is the hot
    loop of the footage query: positional tuples from one fetchall, one StreamInfo per distinct
    codec set (a camera's run rarely changes it) instead of a mapping and a StreamInfo per row."""
    streams: dict[tuple[Any, ...], StreamInfo] = {}
    clocks = {c.value: c for c in ClockSource}
    out = []
    for r in rows:
        key = r[14:20]
        stream = streams.get(key)
        if stream is None:
            stream = streams[key] = StreamInfo(*key)
        out.append(
            SegmentRecord(
                r[0],
                r[1],
                r[2],
                from_us(r[3]),
                from_us(r[4]),
                r[5],
                r[6],
                r[7],
                r[8],
                clocks[r[9]],
                stream,
                r[10],
                r[11],
                r[12],
                bool(r[13]),
            )
        )
    return tuple(out)


def _holes(lo: int, hi: int, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """``domain.types.subtract_ranges`` on microsecond integers: the same maths without building a
    TimeRange per segment, which dominated the footage query for long stays."""
    holes: list[tuple[int, int]] = []
    cursor = lo
    for start, end in sorted(spans):
        if end <= cursor:
            continue
        if start >= hi:
            break
        if start > cursor:
            holes.append((cursor, min(start, hi)))
        cursor = max(cursor, end)
        if cursor >= hi:
            break
    if cursor < hi:
        holes.append((cursor, hi))
    return holes


class FootageIndex:
    """Footage queries and body-camera clip records, on top of a :class:`CaseStore`."""

    def __init__(self, store: CaseStore) -> None:
        self._store = store

    @property
    def store(self) -> CaseStore:
        return self._store

    # --- body-camera clips ---------------------------------------------------------------------

    def check_import_refs(
        self, officer_id: int | None, subject_ids: Sequence[int], loc: str = "form"
    ) -> None:
        """Refuse an unknown officer or subject before an upload is stored (ValidationFailed)."""
        problems = Problems()
        with self._store.session("import references") as s:
            if officer_id is not None and not self._store.existing(s, OFFICERS, [officer_id]):
                problems.add(f"{loc}.officer_id", f"unknown officer {officer_id}")
            known = self._store.existing(s, SUBJECTS, subject_ids)
            for sid in subject_ids:
                if sid not in known:
                    problems.add(f"{loc}.subject_ids", f"unknown subject {sid}")
        problems.raise_if_any("import")

    def add_imported_file(self, new: NewImport) -> tuple[ImportedClip, bool]:
        """(clip, created); idempotent by storage key (the key embeds the content hash)."""
        st = new.stream
        start_us, end_us = to_us(new.start), to_us(new.end)
        row = {
            "device_id": new.device_id,
            "officer_id": new.officer_id,
            "storage_key": new.storage_key,
            "original_name": new.original_name,
            "size": new.size,
            "sha256": new.sha256,
            "sm3": new.sm3,
            "start_us": start_us,
            "end_us": end_us,
            "duration_us": end_us - start_us,
            "container": new.container,
            "video_codec": st.video_codec if st else None,
            "width": st.width if st else None,
            "height": st.height if st else None,
            "audio_codec": st.audio_codec if st else None,
            "audio_sample_rate": st.audio_sample_rate if st else None,
            "audio_channels": st.audio_channels if st else None,
            "evidence": new.evidence,
        }
        self.check_import_refs(new.officer_id, new.subject_ids)
        store = self._store
        with store.session(f"import {new.storage_key}") as s:
            stamped = {**row, "imported_us": to_us(store.now())}
            new_id = store.insert_new(s, IMPORTS, stamped, "storage_key")
            have = s.execute(select(IMPORTS).where(IMPORTS.c.storage_key == new.storage_key)).mappings().one()
            if new_id is None:
                # The same bytes uploaded twice under another file name are still the same clip.
                same = {k: v for k, v in row.items() if k != "original_name"}
                store.same_or_conflict(f"imported file {new.storage_key}", same, have)
            links = [{"file_id": int(have["id"]), "subject_id": sid} for sid in sorted(set(new.subject_ids))]
            if links:
                stmt = (
                    store.insert_for(IMPORT_SUBJECTS)
                    .values(links)
                    .on_conflict_do_nothing(index_elements=["file_id", "subject_id"])
                )
                s.execute(stmt)
        log.info("imported clip %s (%s)", new.storage_key, "new" if new_id is not None else "already indexed")
        return clip_from_row(have), new_id is not None

    def clip_by_key(self, storage_key: str) -> ImportedClip | None:
        with self._store.session(f"imported file {storage_key}") as s:
            row = s.execute(select(IMPORTS).where(IMPORTS.c.storage_key == storage_key)).mappings().first()
        return None if row is None else clip_from_row(row)

    @staticmethod
    def _clips(
        s: Session, subject_id: int, lo: int | None = None, hi: int | None = None
    ) -> list[ImportedClip]:
        stmt = (
            select(IMPORTS)
            .join(IMPORT_SUBJECTS, IMPORT_SUBJECTS.c.file_id == IMPORTS.c.id)
            .where(IMPORT_SUBJECTS.c.subject_id == subject_id)
            .order_by(IMPORTS.c.start_us, IMPORTS.c.id)
        )
        if lo is not None and hi is not None:
            stmt = stmt.where(IMPORTS.c.start_us < hi, IMPORTS.c.end_us > lo)
        return [clip_from_row(r) for r in s.execute(stmt).mappings()]

    def subject_clips(self, subject_id: int, start: datetime, end: datetime) -> list[ImportedClip]:
        """Clips linked to the subject overlapping [start, end), by start."""
        with self._store.session(f"clips of subject {subject_id}") as s:
            return self._clips(s, subject_id, to_us(start), to_us(end))

    # --- trajectory and footage ----------------------------------------------------------------

    def trajectory(self, subject_id: int) -> list[RoomStay]:
        """The subject's stays (NotFoundError for an unknown subject)."""
        self._store.get_subject(subject_id)
        observations = self._store.subject_observations(subject_id)
        events = [e.event for e in self._store.events(subject_id=subject_id)]
        return trajectory(subject_id, observations, events, self._store.room_kinds())

    def subject_footage(
        self, subject_id: int, start: datetime, end: datetime, now: datetime | None = None
    ) -> tuple[list[StayFootage], list[ImportedClip]]:
        """(footage of every stay clipped to [start, end), every clip of the subject in it).

        A stay still open is taken to last until ``now``: footage after now does not exist
        yet and must not count as unexplained.
        """
        start, end = _checked(start, end)
        now = utc(now) if now is not None else self._store.now()
        stays = self.trajectory(subject_id)
        with self._store.session(f"footage of subject {subject_id}") as s:
            clips = self._clips(s, subject_id, to_us(start), to_us(end))
            return self._footage(s, stays, clips, start, end, now), clips

    def _footage(
        self,
        s: Session,
        stays: list[RoomStay],
        clips: list[ImportedClip],
        start: datetime,
        end: datetime,
        now: datetime,
    ) -> list[StayFootage]:
        cams_of_room: dict[str, list[tuple[str, int, int]]] = {}
        out: list[StayFootage] = []
        for stay in stays:
            bounds = clip_stay(stay, start, end, now)
            if bounds is None:
                continue
            interval = TimeRange(*bounds)
            if stay.room_id not in cams_of_room:
                rows = s.execute(
                    select(CAMERAS.c.id, CAMERAS.c.max_segment_us, CAMERAS.c.max_gap_us)
                    .where(CAMERAS.c.room_id == stay.room_id)
                    .order_by(CAMERAS.c.id)
                ).all()
                cams_of_room[stay.room_id] = [(r[0], int(r[1]), int(r[2])) for r in rows]
            cameras = tuple(
                self._coverage(s, cam, seg_max, gap_max, interval)
                for cam, seg_max, gap_max in cams_of_room[stay.room_id]
            )
            mine = tuple(c for c in clips if c.range.overlaps(interval))
            out.append(StayFootage(stay=stay, interval=interval, cameras=cameras, clips=mine))
        return out

    @staticmethod
    def _coverage(
        s: Session, camera_id: str, seg_max: int, gap_max: int, interval: TimeRange
    ) -> CameraCoverage:
        lo, hi = to_us(interval.start), to_us(interval.end)
        seg_rows = s.execute(
            select(*_SEG_COLS)
            .where(
                SEGMENTS.c.camera_id == camera_id,
                SEGMENTS.c.start_us >= lo - seg_max,
                SEGMENTS.c.start_us < hi,
                SEGMENTS.c.end_us > lo,
            )
            .order_by(SEGMENTS.c.start_us, SEGMENTS.c.seq)
            .limit(MAX_ROWS_PER_CAMERA)
        ).all()
        segments = _segments(seg_rows)
        spans = [(r[3], r[4]) for r in seg_rows]
        gap_rows = s.execute(
            select(GAPS)
            .where(
                GAPS.c.camera_id == camera_id,
                GAPS.c.start_us >= lo - gap_max,
                GAPS.c.start_us < hi,
                GAPS.c.end_us > lo,
            )
            .order_by(GAPS.c.start_us, GAPS.c.gap_id)
            .limit(MAX_ROWS_PER_CAMERA)
        ).mappings()
        gaps = tuple(gap_from_row(r) for r in gap_rows)
        spans += [(to_us(g.start), to_us(g.end)) for g in gaps]
        return CameraCoverage(
            camera_id=camera_id,
            interval=interval,
            segments=segments,
            gaps=gaps,
            unexplained=tuple(TimeRange(from_us(a), from_us(b)) for a, b in _holes(lo, hi, spans)),
        )

    # --- case timeline -------------------------------------------------------------------------

    def case_timeline(self, case_id: int, now: datetime | None = None) -> CaseTimeline:
        """Events, and for every subject the trajectory with its coverage and clips."""
        case = self._store.get_case(case_id)
        now = utc(now) if now is not None else self._store.now()
        events = self._store.events(case_id=case_id)
        timelines: list[SubjectTimeline] = []
        for subject in self._store.subjects_of_case(case_id):
            stays = self.trajectory(subject.id)
            with self._store.session(f"timeline of subject {subject.id}") as s:
                clips = self._clips(s, subject.id)
                if stays:
                    first = stays[0].start
                    last = max((st.end or now) for st in stays)
                    footage = self._footage(s, stays, clips, first, max(last, first), now)
                else:
                    footage = []
            timelines.append(SubjectTimeline(subject, footage, clips))
        return CaseTimeline(case, events, timelines)


def _checked(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    problems = Problems()
    if start.tzinfo is None:
        problems.add("query.start", "needs a time zone (e.g. Z or +08:00)")
    if end.tzinfo is None:
        problems.add("query.end", "needs a time zone (e.g. Z or +08:00)")
    problems.raise_if_any("footage range")
    if utc(end) <= utc(start):
        raise ValidationFailed(
            "end must be after start", fields=[{"field": "query.end", "message": "not after start"}]
        )
    return utc(start), utc(end)
