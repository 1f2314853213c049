"""Footage for a subject between two instants, body-camera clips, and a case's timeline.

For every stay of the subject's trajectory (see :mod:`indexer.trajectory`) the footage of
that stay is: the segments of the room's cameras overlapping it, the gaps (with their
causes) overlapping it, the body-camera clips linked to the subject overlapping it, and the
"unexplained" intervals covered by none of them — the seconds nobody can account for.

Overlap queries read the ``segments``/``gaps`` tables directly: a row overlaps ``[lo, hi)``
only if it starts in ``[lo - longest, hi)`` where ``longest`` is the camera's
``max_segment_us``/``max_gap_us`` bound (maintained by the segment store), so each query
is a short range scan of the ``(camera_id, start_us)`` index however big the table grows.
All queries of one request share one session (one snapshot, one connection), and there are
few: the segments of every camera of every stay come in one statement (a ``UNION ALL`` branch
per camera and stay), their gaps in another, the trajectory's inputs in a third.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from operator import itemgetter
from typing import Any, cast

from sqlalchemy import (
    CursorResult,
    Integer,
    Select,
    Table,
    bindparam,
    func,
    literal_column,
    select,
    union_all,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from domain.errors import NotFoundError, ValidationFailed
from domain.types import (
    CameraCoverage,
    CaseEvent,
    ClockSource,
    EventType,
    GapCause,
    GapRecord,
    ImportedClip,
    ObservationSource,
    RoomKind,
    RoomStay,
    SegmentRecord,
    StayFootage,
    StreamInfo,
    TimeRange,
    utc,
)
from indexer import coverage
from indexer.case_records import CaseInfo, Problems, StoredEvent, SubjectInfo
from indexer.case_store import CaseStore
from indexer.coverage import CameraRuns, RunRead, StayCoverage
from indexer.models import EPOCH, Base, from_us, to_us
from indexer.segment_runs import union_runs
from indexer.trajectory import Observation, clip_stay, trajectory

log = logging.getLogger(__name__)

T = Base.metadata.tables
SEGMENTS, GAPS, CAMERAS = T["segments"], T["gaps"], T["cameras"]
SUBJECTS, OFFICERS = T["subjects"], T["officers"]
IMPORTS, IMPORT_SUBJECTS = T["imported_files"], T["imported_file_subjects"]
ROOMS, EVENTS, OBSERVATIONS = T["rooms"], T["procedure_events"], T["location_observations"]

MAX_ROWS_PER_CAMERA = 50_000  # 5.8 days of 10 s segments: a bound, not a page size
MAX_READINGS = 100_000  # events / observations of one subject read for a trajectory (as CaseStore)


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
    footage: list[StayCoverage]  # run level: counts, runs, gaps, unexplained (no segment list)
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


# Per-camera reads select no camera id (each UNION ALL branch is one camera, tagged with its number).
# The run-level columns first: on SQLite they come as one JSON text per row (``json_array``), which
# the reader turns into values once per distinct text; on PostgreSQL as 9 columns (its
# ``json_build_array`` cost more than it saved).
_RUN_NAMES = (
    "run_id", "clock_source", "container",
    "video_codec", "width", "height", "audio_codec", "audio_sample_rate", "audio_channels",
)  # fmt: skip
_ROW_NAMES = (
    "seq",
    "start_us",
    "end_us",
    "storage_key",
    "size",
    "sha256",
    "prev_sha256",
    "sm3",
    "packets",
    "recovered",
)
_SEG_COLS: list[ColumnElement[Any]] = [SEGMENTS.c[name] for name in _RUN_NAMES + _ROW_NAMES]
_SEG_COLS_SQLITE: list[ColumnElement[Any]] = [
    func.json_array(*(SEGMENTS.c[name] for name in _RUN_NAMES)).label("run_"),
    *(SEGMENTS.c[name] for name in _ROW_NAMES),
]
_GAP_COLS = [GAPS.c[name] for name in ("start_us", "end_us", "cause", "detail", "gap_id")]
_CLOCKS = {c.value: c for c in ClockSource}
_CAUSES = {c.value: c for c in GapCause}


def _raw_rows(
    s: Session, stmt: Select[Any], params: Mapping[str, Any] | None = None
) -> list[tuple[Any, ...]]:
    """The DB-API tuples of a Core select: the compiled statement is still cached and the
    parameters bound by SQLAlchemy, but the rows skip the Row objects and result processors
    (the selects below only read strings, integers and one boolean, which need no processing
    other than ``bool()`` on SQLite)."""
    result = cast(CursorResult[Any], s.execute(stmt, params))
    try:
        return list(result.cursor.fetchall())
    finally:
        result.close()


# The fields of SegmentRecord in the order ``_segments`` sets them (checked at import: a field added
# to the domain type must be added here too, or records would be built without it).
_SEG_FIELDS = (
    "camera_id", "run_id", "seq", "start", "end", "storage_key", "size", "sha256", "prev_sha256",
    "clock_source", "stream", "container", "sm3", "packets", "recovered",
)  # fmt: skip
if tuple(f.name for f in fields(SegmentRecord)) != _SEG_FIELDS:  # pragma: no cover - a domain change
    raise ImportError("indexer.footage: SegmentRecord's fields changed; update _SEG_FIELDS and _segments")
# The slot descriptors' setters: SegmentRecord is a frozen slots dataclass whose __init__ sets each
# field through object.__setattr__ (≈ 1.5 µs a record); object.__new__ plus the 15 slot setters
# builds the same object (same class, same field values, equal and hashable alike) in ≈ 0.8 µs.
# SegmentRecord has no __post_init__, so nothing is skipped.
_SEG_SETTERS: tuple[Any, ...] = tuple(SegmentRecord.__dict__[name].__set__ for name in _SEG_FIELDS)
_BY_START_SEQ = itemgetter(10, 9)  # rows of _SEG_COLS: (start_us, seq)
_BY_START_SEQ_SQLITE = itemgetter(2, 1)  # rows of _SEG_COLS_SQLITE
_BY_START_ID = itemgetter(0, 4)  # rows of _GAP_COLS: (start_us, gap_id)


def _seg_layout(dialect: str) -> tuple[list[ColumnElement[Any]], Any, int]:
    """(columns, sort key (start, seq), width of the run-level part) of segment rows on ``dialect``."""
    if dialect == "sqlite":
        return _SEG_COLS_SQLITE, _BY_START_SEQ_SQLITE, 1
    return _SEG_COLS, _BY_START_SEQ, len(_RUN_NAMES)


def _segments(camera_id: str, rows: Sequence[tuple[Any, ...]], width: int) -> tuple[SegmentRecord, ...]:
    """Rows of one camera, by start (run-level part of ``width`` columns — 1: a JSON array text,
    9: the columns — then ``_ROW_NAMES``; extra trailing columns are ignored) → records: the hot
    loop of the footage query (a 3 h stay under two cameras is ≈ 2,400 rows). Run id, clock,
    container and one StreamInfo are made once per distinct run-level part; back-to-back segments
    share the datetime of the boundary (one microsecond → datetime conversion per row instead of
    two); records built with object.__new__ and the slot setters (see ``_SEG_SETTERS``)."""
    runs: dict[Any, tuple[Any, ClockSource, Any, StreamInfo]] = {}
    epoch, td = EPOCH, timedelta
    new, cls = object.__new__, SegmentRecord
    (
        set_camera, set_run, set_seq, set_start, set_end, set_key, set_size, set_sha, set_prev,
        set_clock, set_stream, set_container, set_sm3, set_packets, set_recovered,
    ) = _SEG_SETTERS  # fmt: skip
    i_seq, i_start, i_end, i_key, i_size, i_sha, i_prev, i_sm3, i_packets, i_recovered = range(
        width, width + len(_ROW_NAMES)
    )
    out: list[SegmentRecord] = []
    append = out.append
    last_us: int | None = None
    last_dt = epoch
    for r in rows:
        run_key: Any = r[0] if width == 1 else r[:width]
        run = runs.get(run_key)
        if run is None:
            v = json.loads(run_key) if width == 1 else run_key
            run = runs[run_key] = (v[0], _CLOCKS[v[1]], v[2], StreamInfo(*v[3:9]))
        start_us = r[i_start]
        start = last_dt if start_us == last_us else epoch + td(0, 0, start_us)
        last_us = r[i_end]
        last_dt = epoch + td(0, 0, last_us)
        rec = new(cls)
        set_camera(rec, camera_id)
        set_run(rec, run[0])
        set_seq(rec, r[i_seq])
        set_start(rec, start)
        set_end(rec, last_dt)
        set_key(rec, r[i_key])
        set_size(rec, r[i_size])
        set_sha(rec, r[i_sha])
        set_prev(rec, r[i_prev])
        set_clock(rec, run[1])
        set_stream(rec, run[3])
        set_container(rec, run[2])
        set_sm3(rec, r[i_sm3])
        set_packets(rec, r[i_packets])
        set_recovered(rec, bool(r[i_recovered]))
        append(rec)
    return tuple(out)


def _gaps(camera_id: str, rows: Sequence[tuple[Any, ...]]) -> tuple[GapRecord, ...]:
    """Rows of ``_GAP_COLS`` of one camera → records (few per stay; GapRecord's checks are kept)."""
    return tuple(GapRecord(camera_id, from_us(r[0]), from_us(r[1]), _CAUSES[r[2]], r[3], r[4]) for r in rows)


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
        with self._store.session(f"trajectory of subject {subject_id}") as s:
            return _trajectory(s, subject_id, _rooms(s))

    def subject_footage(
        self, subject_id: int, start: datetime, end: datetime, now: datetime | None = None
    ) -> tuple[list[StayFootage], list[ImportedClip]]:
        """(footage of every stay clipped to [start, end), every clip of the subject in it).

        A stay still open is taken to last until ``now``: footage after now does not exist
        yet and must not count as unexplained. One session: trajectory and footage are read
        from the same snapshot.
        """
        start, end = _checked(start, end)
        now = utc(now) if now is not None else self._store.now()
        with self._store.session(f"footage of subject {subject_id}") as s:
            rooms = _rooms(s)
            stays = _trajectory(s, subject_id, rooms)
            clips = self._clips(s, subject_id, to_us(start), to_us(end))
            return self._footage(s, rooms, stays, clips, start, end, now), clips

    def subject_coverage(
        self, subject_id: int, start: datetime, end: datetime, now: datetime | None = None
    ) -> tuple[list[StayCoverage], list[ImportedClip]]:
        """:meth:`subject_footage` at run level: per stay and camera the coverage runs, the count
        and covered seconds of the segments, gaps and unexplained seconds (all equal to what the
        segment list implies), without the segment list itself — a few rows per camera instead of
        thousands (see :mod:`indexer.coverage`). Callers that need every segment (export,
        playback) use :meth:`subject_footage`."""
        start, end = _checked(start, end)
        now = utc(now) if now is not None else self._store.now()
        with self._store.session(f"coverage of subject {subject_id}") as s:
            rooms = _rooms(s)
            stays = _trajectory(s, subject_id, rooms)
            clips = self._clips(s, subject_id, to_us(start), to_us(end))
            return _stay_coverage(s, rooms, stays, clips, start, end, now), clips

    def _footage(
        self,
        s: Session,
        rooms: Mapping[str, _Room],
        stays: list[RoomStay],
        clips: list[ImportedClip],
        start: datetime,
        end: datetime,
        now: datetime,
    ) -> list[StayFootage]:
        """Every stay's footage: the segments of every camera of every stay in one query and their
        gaps in another (one ``UNION ALL`` branch per stay and camera, see :func:`_overlapping`)."""
        todo: list[tuple[RoomStay, TimeRange, _Room | None]] = []
        for stay in stays:
            bounds = clip_stay(stay, start, end, now)
            if bounds is not None:
                todo.append((stay, TimeRange(*bounds), rooms.get(stay.room_id)))
        reads: list[tuple[str, int, int, int]] = []  # (camera, lowest segment start, lo, hi)
        gap_reads: list[tuple[str, int, int, int]] = []
        for _, interval, room in todo:
            lo, hi = to_us(interval.start), to_us(interval.end)
            for cam, seg_max, gap_max in room.cameras if room is not None else ():
                reads.append((cam, lo - seg_max, lo, hi))
                gap_reads.append((cam, lo - gap_max, lo, hi))
        seg_cols, by_start_seq, width = _seg_layout(s.get_bind().dialect.name)
        seg_rows = _overlapping(s, SEGMENTS, seg_cols, by_start_seq, reads)
        gap_rows = _overlapping(s, GAPS, _GAP_COLS, _BY_START_ID, gap_reads)
        out: list[StayFootage] = []
        k = 0
        for stay, interval, room in todo:
            cameras: tuple[CameraCoverage, ...] = ()
            if room is not None and room.cameras:
                n = len(room.cameras)
                cameras = _coverage(room, interval, seg_rows[k : k + n], gap_rows[k : k + n], width)
                k += n
            mine = tuple(c for c in clips if c.range.overlaps(interval))
            out.append(StayFootage(stay=stay, interval=interval, cameras=cameras, clips=mine))
        return out

    # --- case timeline -------------------------------------------------------------------------

    def case_timeline(self, case_id: int, now: datetime | None = None) -> CaseTimeline:
        """Events, and for every subject the trajectory with its coverage and clips."""
        case = self._store.get_case(case_id)
        now = utc(now) if now is not None else self._store.now()
        events = self._store.events(case_id=case_id)
        timelines: list[SubjectTimeline] = []
        for subject in self._store.subjects_of_case(case_id):
            with self._store.session(f"timeline of subject {subject.id}") as s:
                rooms = _rooms(s)
                stays = _trajectory(s, subject.id, rooms)
                clips = self._clips(s, subject.id)
                if stays:
                    first = stays[0].start
                    last = max((st.end or now) for st in stays)
                    footage = _stay_coverage(s, rooms, stays, clips, first, max(last, first), now)
                else:
                    footage = []
            timelines.append(SubjectTimeline(subject, footage, clips))
        return CaseTimeline(case, events, timelines)


@dataclass(frozen=True, slots=True)
class _Room:
    kind: RoomKind
    cameras: tuple[tuple[str, int, int], ...]  # (camera id, max_segment_us, max_gap_us) by id


def _rooms(s: Session) -> dict[str, _Room]:
    """Every room with its kind and cameras: one query (a centre has tens of rooms)."""
    rows = _raw_rows(
        s,
        select(ROOMS.c.id, ROOMS.c.kind, CAMERAS.c.id, CAMERAS.c.max_segment_us, CAMERAS.c.max_gap_us)
        .outerjoin(CAMERAS, CAMERAS.c.room_id == ROOMS.c.id)
        .order_by(ROOMS.c.id, CAMERAS.c.id),
    )
    kinds: dict[str, RoomKind] = {}
    cams: dict[str, list[tuple[str, int, int]]] = {}
    for room_id, kind, cam, seg_max, gap_max in rows:
        if room_id not in kinds:
            try:
                kinds[room_id] = RoomKind(kind)
            except ValueError:
                kinds[room_id] = RoomKind.OTHER
            cams[room_id] = []
        if cam is not None:
            cams[room_id].append((cam, int(seg_max), int(gap_max)))
    return {rid: _Room(kinds[rid], tuple(sorted(cams[rid]))) for rid in kinds}


def _readings_statement() -> Select[Any]:
    """A subject's observations and events (the inputs of the trajectory) in one statement:
    ``UNION ALL`` of (0, time, room, source, client id, id) per observation and (1, time, room,
    type, client id, id) per event, each side by (time, id), at most ``m`` rows (``s``: the
    subject id)."""
    obs = (
        select(
            literal_column("0", Integer).label("kind_"),
            OBSERVATIONS.c.time_us,
            OBSERVATIONS.c.room_id,
            OBSERVATIONS.c.source.label("what_"),
            OBSERVATIONS.c.client_id,
            OBSERVATIONS.c.id,
        )
        .where(OBSERVATIONS.c.subject_id == bindparam("s"))
        .order_by(OBSERVATIONS.c.time_us, OBSERVATIONS.c.id)
        .limit(bindparam("m"))
        .subquery("obs")
    )
    events = (
        select(
            literal_column("1", Integer).label("kind_"),
            EVENTS.c.time_us,
            EVENTS.c.room_id,
            EVENTS.c.type.label("what_"),
            EVENTS.c.client_id,
            EVENTS.c.id,
        )
        .where(EVENTS.c.subject_id == bindparam("s"))
        .order_by(EVENTS.c.time_us, EVENTS.c.id)
        .limit(bindparam("m"))
        .subquery("events")
    )
    return select(union_all(select(*obs.c), select(*events.c)).subquery("readings"))


_READINGS = _readings_statement()
_BY_TIME_ID = itemgetter(1, 5)


def _trajectory(s: Session, subject_id: int, rooms: Mapping[str, _Room]) -> list[RoomStay]:
    """The subject's stays, read in the caller's session (the inputs of
    :func:`indexer.trajectory.trajectory`: observations and the events' type, time and room, in one
    statement; the subject's existence is asked only when it has neither)."""
    rows = _raw_rows(s, _READINGS, {"s": subject_id, "m": MAX_READINGS})
    if not rows and s.execute(select(SUBJECTS.c.id).where(SUBJECTS.c.id == subject_id)).first() is None:
        raise NotFoundError(f"subject {subject_id} does not exist", subject_id=subject_id)
    rows.sort(key=_BY_TIME_ID)  # a UNION ALL has no promised order
    observations = [
        Observation(from_us(t), room, ObservationSource(src), cid)
        for kind, t, room, src, cid, _ in rows
        if kind == 0
    ]
    events = [
        CaseEvent(cid, EventType(etype), from_us(t), room, subject_id)
        for kind, t, room, etype, cid, _ in rows
        if kind == 1
    ]
    return trajectory(subject_id, observations, events, {rid: r.kind for rid, r in rooms.items()})


def _coverage(
    room: _Room,
    interval: TimeRange,
    seg_rows: Sequence[list[tuple[Any, ...]]],
    gap_rows: Sequence[list[tuple[Any, ...]]],
    width: int,
) -> tuple[CameraCoverage, ...]:
    """Every camera of the room over the interval, from its rows (by start) of that stay, camera
    by camera in the order of ``room.cameras``."""
    lo, hi = to_us(interval.start), to_us(interval.end)
    out = []
    for (cam, _, _), segs, gaps in zip(room.cameras, seg_rows, gap_rows, strict=True):
        spans = [(r[width + 1], r[width + 2]) for r in segs] + [(r[0], r[1]) for r in gaps]
        out.append(
            CameraCoverage(
                camera_id=cam,
                interval=interval,
                segments=_segments(cam, segs, width),
                gaps=_gaps(cam, gaps),
                unexplained=tuple(TimeRange(from_us(a), from_us(b)) for a, b in _holes(lo, hi, spans)),
            )
        )
    return tuple(out)


MAX_BRANCHES = 64  # UNION ALL branches per statement (SQLite allows 500 compound terms)
_STATEMENTS: dict[tuple[str, tuple[str, ...], int], Select[Any]] = {}


def _reads_statement(table: Table, cols: Sequence[ColumnElement[Any]], n: int) -> Select[Any]:
    """The statement of :func:`_overlapping` for ``n`` reads: ``UNION ALL`` of ``n`` branches, each
    the rows of one camera (``c<i>``) starting in [``a<i>``, ``h<i>``) and ending after ``l<i>``, in
    index order, at most ``m`` rows, tagged with ``i`` (a trailing column). Built once per (table,
    columns, n) and reused with new parameters: building a select of tens of 20-column subqueries
    costs more than running it (n ≤ MAX_BRANCHES, so the cache stays small)."""
    key = (table.name, tuple(str(c) for c in cols), n)
    stmt = _STATEMENTS.get(key)
    if stmt is not None:
        return stmt
    branches: list[Select[Any]] = [
        select(*cols, literal_column(str(i), Integer).label("read_"))
        .where(
            table.c.camera_id == bindparam(f"c{i}"),
            table.c.start_us >= bindparam(f"a{i}"),
            table.c.start_us < bindparam(f"h{i}"),
            table.c.end_us > bindparam(f"l{i}"),
        )
        .order_by(table.c.start_us)
        .limit(bindparam("m"))
        for i in range(n)
    ]
    if n == 1:
        stmt = branches[0]
    else:
        parts = [b.subquery(f"r{i}") for i, b in enumerate(branches)]
        stmt = select(union_all(*(select(*p.c) for p in parts)).subquery("reads"))
    _STATEMENTS[key] = stmt
    return stmt


def _overlapping(
    s: Session,
    table: Table,
    cols: Sequence[ColumnElement[Any]],
    by_start: Any,
    reads: Sequence[tuple[str, int, int, int]],
) -> list[list[tuple[Any, ...]]]:
    """For every read (camera, lowest start, lo, hi): the rows of ``table`` of that camera
    overlapping [lo, hi), by (start, then the tie-breaker in ``by_start``), at most
    MAX_ROWS_PER_CAMERA.

    A row overlaps [lo, hi) only if it starts in [lo - longest, hi), ``longest`` being the camera's
    ``max_segment_us``/``max_gap_us`` (the caller passes lo - longest), so every read is a short
    range scan of the ``(camera_id, start_us)`` index, whatever the table's size. All reads go in
    one statement (``UNION ALL``, one branch per read, up to MAX_BRANCHES a statement) instead of
    a round trip each. SQL does not promise the order of a ``UNION ALL`` and the index does not
    order ties on ``start_us``, so each read's rows are sorted by ``by_start`` in Python (one pass
    on rows already in order).
    """
    out: list[list[tuple[Any, ...]]] = [[] for _ in reads]
    for first in range(0, len(reads), MAX_BRANCHES):
        chunk = reads[first : first + MAX_BRANCHES]
        params: dict[str, Any] = {"m": MAX_ROWS_PER_CAMERA}
        for i, (cam, low, lo, hi) in enumerate(chunk):
            params.update({f"c{i}": cam, f"a{i}": low, f"l{i}": lo, f"h{i}": hi})
        for r in _raw_rows(s, _reads_statement(table, cols, len(chunk)), params):
            out[first + r[-1]].append(r)
    for rows in out:
        rows.sort(key=by_start)
    return out


def _stay_coverage(
    s: Session,
    rooms: Mapping[str, _Room],
    stays: list[RoomStay],
    clips: list[ImportedClip],
    start: datetime,
    end: datetime,
    now: datetime,
) -> list[StayCoverage]:
    """Every stay's run-level footage: runs and segment totals of every camera of every stay in one
    statement (:func:`indexer.coverage.runs_statement`), gaps in another."""
    todo: list[tuple[RoomStay, TimeRange, _Room | None]] = []
    for stay in stays:
        bounds = clip_stay(stay, start, end, now)
        if bounds is not None:
            todo.append((stay, TimeRange(*bounds), rooms.get(stay.room_id)))
    reads: list[tuple[str, int, int, int]] = []  # (camera, lowest segment start, lo, hi)
    gap_reads: list[tuple[str, int, int, int]] = []
    for _, interval, room in todo:
        lo, hi = to_us(interval.start), to_us(interval.end)
        for cam, seg_max, gap_max in room.cameras if room is not None else ():
            reads.append((cam, lo - seg_max, lo, hi))
            gap_reads.append((cam, lo - gap_max, lo, hi))
    run_reads = _run_reads(s, reads)
    gap_rows = _overlapping(s, GAPS, _GAP_COLS, _BY_START_ID, gap_reads)
    out: list[StayCoverage] = []
    k = 0
    for stay, interval, room in todo:
        cams: list[CameraRuns] = []
        lo, hi = to_us(interval.start), to_us(interval.end)
        for cam, _, _ in room.cameras if room is not None else ():
            got, gaps = run_reads[k], gap_rows[k]
            k += 1
            runs = [(max(a, lo), min(b, hi)) for a, b in got.runs]
            spans = runs + [(r[0], r[1]) for r in gaps]
            cams.append(
                CameraRuns(
                    camera_id=cam,
                    interval=interval,
                    runs=tuple(TimeRange(from_us(a), from_us(b)) for a, b in runs),
                    segment_count=got.segment_count,
                    footage_us=got.footage_us,
                    gaps=_gaps(cam, gaps),
                    unexplained=tuple(TimeRange(from_us(a), from_us(b)) for a, b in _holes(lo, hi, spans)),
                )
            )
        mine = tuple(c for c in clips if c.range.overlaps(interval))
        out.append(StayCoverage(stay=stay, interval=interval, cameras=tuple(cams), clips=mine))
    return out


_SPAN_COLS: list[ColumnElement[Any]] = [SEGMENTS.c.start_us, SEGMENTS.c.end_us]


def _run_reads(s: Session, reads: Sequence[tuple[str, int, int, int]]) -> list[RunRead]:
    """For every read (camera, lowest segment start, lo, hi): its coverage runs overlapping
    [lo, hi) by start, and the count and covered µs of its segments there. Cameras with a dirty
    run (a segment deleted inside it) get their runs from their segments' spans instead."""
    out = [RunRead([]) for _ in reads]
    los = [lo for _, _, lo, _ in reads]
    step = coverage.MAX_BRANCHES
    for first in range(0, len(reads), step):
        chunk = reads[first : first + step]
        params: dict[str, Any] = {"m": MAX_ROWS_PER_CAMERA}
        for i, (cam, low, lo, hi) in enumerate(chunk):
            params.update({f"c{i}": cam, f"a{i}": low, f"l{i}": lo, f"h{i}": hi})
        coverage.collect(_raw_rows(s, coverage.runs_statement(len(chunk)), params), los, first, out)
    dirty = [k for k, got in enumerate(out) if got.dirty]
    if dirty:
        log.info("footage: %d camera read(s) over dirty runs, read from the segments", len(dirty))
        spans = _overlapping(s, SEGMENTS, _SPAN_COLS, itemgetter(0, 1), [reads[k] for k in dirty])
        for k, rows in zip(dirty, spans, strict=True):
            out[k].runs = union_runs((r[0], r[1]) for r in rows)
    for got in out:
        got.runs.sort()
    return out


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
