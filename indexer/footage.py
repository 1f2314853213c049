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

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from operator import itemgetter
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    Select,
    Table,
    bindparam,
    literal_column,
    or_,
    select,
    union,
    union_all,
)
from sqlalchemy.orm import Session

from domain.errors import NotFoundError, ValidationFailed
from domain.types import (
    CameraCoverage,
    CaseEvent,
    EventType,
    ImportedClip,
    ObservationSource,
    RoomStay,
    StayFootage,
    StreamInfo,
    TimeRange,
    utc,
)
from indexer.case_records import (
    SYSTEM,
    CaseInfo,
    Problems,
    Refusals,
    StoredEvent,
    StoredObservation,
    SubjectInfo,
    Writer,
)
from indexer.case_store import CaseStore
from indexer.coverage import CameraRuns, StayCoverage
from indexer.footage_rows import (
    BY_START_ID,
    GAP_COLS,
    GAPS,
    ROOMS_READ,
    SEGMENTS,
    Room,
    finish_run_reads,
    gap_records,
    holes,
    overlap_rows,
    overlap_statements,
    plan_reads,
    rooms_from_rows,
    rooms_of,
    run_statements,
    seg_layout,
    segment_records,
)
from indexer.models import Base, LocationObservation, ProcedureEvent, from_us, to_us
from indexer.read_batch import Query, fetch_many, raw_rows
from indexer.trajectory import Observation, trajectory

log = logging.getLogger(__name__)

T = Base.metadata.tables
SUBJECTS, OFFICERS = T["subjects"], T["officers"]
IMPORTS, IMPORT_SUBJECTS = T["imported_files"], T["imported_file_subjects"]
EVENTS, OBSERVATIONS = T["procedure_events"], T["location_observations"]

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
    late_readings: list[StoredObservation] = field(default_factory=list)  # late-entry observations


@dataclass(frozen=True, slots=True)
class CaseTimeline:
    case: CaseInfo
    events: list[StoredEvent]
    subjects: list[SubjectTimeline]


# Built once: constructing a select costs more than running this one (usually no rows).
_CLIPS = (
    select(IMPORTS)
    .join(IMPORT_SUBJECTS, IMPORT_SUBJECTS.c.file_id == IMPORTS.c.id)
    .where(IMPORT_SUBJECTS.c.subject_id == bindparam("s"))
    .order_by(IMPORTS.c.start_us, IMPORTS.c.id)
)
_CLIPS_IN_RANGE = _CLIPS.where(IMPORTS.c.start_us < bindparam("hi"), IMPORTS.c.end_us > bindparam("lo"))


_CLIP_NAMES = tuple(c.name for c in _CLIPS.selected_columns)


def clips_from_rows(rows: Sequence[tuple[Any, ...]]) -> list[ImportedClip]:
    """Clips from DB-API rows of :data:`_CLIPS`/:data:`_CLIPS_IN_RANGE`."""
    return [clip_from_row(dict(zip(_CLIP_NAMES, r, strict=True))) for r in rows]


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


OCCUPANCY_WINDOW = timedelta(hours=24)  # subjects with a reading this recent may be in a room now


class FootageIndex:
    """Footage queries and body-camera clip records, on top of a :class:`CaseStore`.

    ``index_lag``: how far behind now the index may be while a camera records (the segment being
    written is indexed only once closed and uploaded). Seconds of that tail before ``now`` that no
    footage covers yet are *pending*, not unexplained: the last seconds of a stay still being
    recorded must not be flagged. Per camera the tail is at least its longest segment so far. Zero
    (the default: exports and holds, which judge footage already recorded) leaves nothing out.
    """

    def __init__(self, store: CaseStore, index_lag: timedelta = timedelta(0)) -> None:
        if index_lag < timedelta(0):
            raise ValueError("index_lag must not be negative")
        self._store = store
        self._lag_us = index_lag // timedelta(microseconds=1)

    @property
    def store(self) -> CaseStore:
        return self._store

    def occupants(
        self, now: datetime, window: timedelta = OCCUPANCY_WINDOW
    ) -> dict[str, list[dict[str, Any]]]:
        """room id → subjects whose trajectory is in that room now: it ends in an open stay there
        (subjects with a reading in the last ``window`` are considered, at most 500)."""
        since = to_us(now - window)
        store = self.store
        q = union(
            select(LocationObservation.subject_id).where(
                LocationObservation.time_us >= since, LocationObservation.subject_id.is_not(None)
            ),
            select(ProcedureEvent.subject_id).where(
                ProcedureEvent.time_us >= since, ProcedureEvent.subject_id.is_not(None)
            ),
        )
        with store.session("recent subjects") as s:
            ids = sorted({int(sid) for (sid,) in s.execute(q) if sid is not None})
        rooms: dict[str, list[dict[str, Any]]] = {}
        for sid in ids[:500]:
            stays = self.trajectory(sid)
            if stays and stays[-1].end is None:
                subject = store.get_subject(sid)
                rooms.setdefault(stays[-1].room_id, []).append(
                    {
                        "subject_id": sid,
                        "name": subject.name,
                        "role": subject.role,
                        "case_id": subject.case_id,
                        "since": stays[-1].start.isoformat(),
                    }
                )
        return rooms

    # --- body-camera clips ---------------------------------------------------------------------

    def check_import_refs(
        self,
        officer_id: int | None,
        subject_ids: Sequence[int],
        loc: str = "form",
        writer: Writer = SYSTEM,
    ) -> None:
        """Refuse an unknown officer or subject (ValidationFailed), or one the writer may not file
        a clip under (Forbidden: an officer files clips for the subjects of their own cases, as
        themselves), before an upload is stored."""
        problems, refusals = Problems(), Refusals()
        with self._store.session("import references") as s:
            if officer_id is not None and not self._store.existing(s, OFFICERS, [officer_id]):
                problems.add(f"{loc}.officer_id", f"unknown officer {officer_id}")
            cases = self._store.subject_cases(s, subject_ids)
            for sid in subject_ids:
                if sid not in cases:
                    problems.add(f"{loc}.subject_ids", f"unknown subject {sid}")
                else:
                    self._store.check_case(writer, cases[sid], f"{loc}.subject_ids", refusals)
        problems.raise_if_any("import")
        if writer.cases is not None and officer_id is not None and officer_id != writer.officer_id:
            refusals.add(f"{loc}.officer_id", "officers upload their own body-camera clips only")
        refusals.raise_if_any("import")

    def add_imported_file(self, new: NewImport, writer: Writer = SYSTEM) -> tuple[ImportedClip, bool]:
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
        self.check_import_refs(new.officer_id, new.subject_ids, writer=writer)
        store = self._store
        with store.session(f"import {new.storage_key}") as s:
            stamped = {**row, "imported_us": to_us(store.now()), "created_by": writer.user_id}
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

    @staticmethod
    def _clips(
        s: Session, subject_id: int, lo: int | None = None, hi: int | None = None
    ) -> list[ImportedClip]:
        return clips_from_rows(raw_rows(s, *_clips_query(subject_id, lo, hi)))

    @staticmethod
    def _subject_reads(
        s: Session, subject_id: int, lo: int | None = None, hi: int | None = None
    ) -> tuple[dict[str, Room], list[RoomStay], list[ImportedClip]]:
        """Rooms, the subject's stays and clips: three independent reads sent together
        (:func:`indexer.read_batch.fetch_many`: one round trip on PostgreSQL)."""
        readings = (_READINGS, {"s": subject_id, "m": MAX_READINGS})
        room_rows, reading_rows, clip_rows = fetch_many(
            s, [ROOMS_READ, readings, _clips_query(subject_id, lo, hi)]
        )
        rooms = rooms_from_rows(room_rows)
        return rooms, _trajectory_from_rows(s, subject_id, reading_rows, rooms), clips_from_rows(clip_rows)

    # --- trajectory and footage ----------------------------------------------------------------

    def trajectory(self, subject_id: int, distrust: int | None = None) -> list[RoomStay]:
        """The subject's stays (NotFoundError for an unknown subject).

        ``distrust``: a user id whose own readings are left out unless a supervisor confirmed
        them: the stays as the devices and other people place the subject, which that user cannot
        move by writing readings (an officer's footage window, pipeline/api/footage_access.py)."""
        with self._store.session(f"trajectory of subject {subject_id}") as s:
            if distrust is None:
                return _trajectory(s, subject_id, rooms_of(s))
            rows = raw_rows(s, _TRUSTED_READINGS, {"s": subject_id, "m": MAX_READINGS, "u": distrust})
            return _trajectory_from_rows(s, subject_id, rows, rooms_of(s))

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
        with self._store.read_session(f"footage of subject {subject_id}") as s:
            rooms, stays, clips = self._subject_reads(s, subject_id, to_us(start), to_us(end))
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
        with self._store.read_session(f"coverage of subject {subject_id}") as s:
            rooms, stays, clips = self._subject_reads(s, subject_id, to_us(start), to_us(end))
            return _stay_coverage(s, rooms, stays, clips, start, end, now, self._lag_us), clips

    def _footage(
        self,
        s: Session,
        rooms: Mapping[str, Room],
        stays: list[RoomStay],
        clips: list[ImportedClip],
        start: datetime,
        end: datetime,
        now: datetime,
    ) -> list[StayFootage]:
        """Every stay's footage: the segments of every camera of every stay in one query and their
        gaps in another (see :func:`overlap_statements`), sent together."""
        todo, reads, gap_reads = plan_reads(stays, rooms, start, end, now)
        dialect = s.get_bind().dialect.name
        seg_cols, by_start_seq, width = seg_layout(dialect)
        seg_stmts = overlap_statements(dialect, SEGMENTS, seg_cols, reads)
        gap_stmts = overlap_statements(dialect, GAPS, GAP_COLS, gap_reads)
        seg_results, gap_results = _fetch_both(s, seg_stmts, gap_stmts)
        seg_rows = overlap_rows(len(reads), seg_stmts, seg_results, by_start_seq)
        gap_rows = overlap_rows(len(gap_reads), gap_stmts, gap_results, BY_START_ID)
        out: list[StayFootage] = []
        k = 0
        for stay, interval, room in todo:
            cameras: tuple[CameraCoverage, ...] = ()
            cuts = _cuts(room, now, self._lag_us)
            if room is not None and room.cameras:
                n = len(room.cameras)
                segs, gaps = seg_rows[k : k + n], gap_rows[k : k + n]
                cameras = _coverage(room, interval, segs, gaps, width, cuts)
                k += n
            mine = tuple(c for c in clips if c.range.overlaps(interval))
            pending = _pending(interval, cuts)
            out.append(
                StayFootage(stay=stay, interval=interval, cameras=cameras, clips=mine, pending=pending)
            )
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
                rooms, stays, clips = self._subject_reads(s, subject.id)
                if stays:
                    first = stays[0].start
                    last = max((st.end or now) for st in stays)
                    footage = _stay_coverage(
                        s, rooms, stays, clips, first, max(last, first), now, self._lag_us
                    )
                else:
                    footage = []
            late = self._store.late_observations(subject.id)
            timelines.append(SubjectTimeline(subject, footage, clips, late))
        return CaseTimeline(case, events, timelines)


def _vouched(table: Table) -> ColumnElement[bool]:
    """A reading not written by user ``u`` alone: by the system or someone else, or confirmed.
    (``created_by != u`` alone is NULL, so false, for the system's rows.)"""
    return or_(
        table.c.created_by.is_(None),
        table.c.created_by != bindparam("u"),
        table.c.confirmed_by.is_not(None),
    )


def _readings_statement(distrusting: bool = False) -> Select[Any]:
    """A subject's observations and events (the inputs of the trajectory) in one statement:
    ``UNION ALL`` of (0, time, room, source, client id, id) per observation and (1, time, room,
    type, client id, id) per event, each side by (time, id), at most ``m`` rows (``s``: the
    subject id). ``distrusting``: only the readings :func:`_vouched` for against user ``u``."""
    obs_where = [OBSERVATIONS.c.subject_id == bindparam("s")]
    event_where = [EVENTS.c.subject_id == bindparam("s")]
    if distrusting:
        obs_where.append(_vouched(OBSERVATIONS))
        event_where.append(_vouched(EVENTS))
    obs = (
        select(
            literal_column("0", Integer).label("kind_"),
            OBSERVATIONS.c.time_us,
            OBSERVATIONS.c.room_id,
            OBSERVATIONS.c.source.label("what_"),
            OBSERVATIONS.c.client_id,
            OBSERVATIONS.c.id,
        )
        .where(*obs_where)
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
        .where(*event_where)
        .order_by(EVENTS.c.time_us, EVENTS.c.id)
        .limit(bindparam("m"))
        .subquery("events")
    )
    return select(union_all(select(*obs.c), select(*events.c)).subquery("readings"))


_READINGS = _readings_statement()
_TRUSTED_READINGS = _readings_statement(distrusting=True)
_BY_TIME_ID = itemgetter(1, 5)


Rows = list[list[tuple[Any, ...]]]


def _fetch_both(
    s: Session, a: Sequence[tuple[Query, int]], b: Sequence[tuple[Query, int]]
) -> tuple[Rows, Rows]:
    """The results of two groups of (statement, first read) sent in one batch, group by group."""
    results = fetch_many(s, [q for q, _ in a] + [q for q, _ in b])
    return results[: len(a)], results[len(a) :]


def _clips_query(subject_id: int, lo: int | None, hi: int | None) -> Query:
    if lo is not None and hi is not None:
        return _CLIPS_IN_RANGE, {"s": subject_id, "lo": lo, "hi": hi}
    return _CLIPS, {"s": subject_id}


def _trajectory(s: Session, subject_id: int, rooms: Mapping[str, Room]) -> list[RoomStay]:
    """The subject's stays, read in the caller's session (the inputs of
    :func:`indexer.trajectory.trajectory`: observations and the events' type, time and room, in one
    statement)."""
    return _trajectory_from_rows(
        s, subject_id, raw_rows(s, _READINGS, {"s": subject_id, "m": MAX_READINGS}), rooms
    )


def _trajectory_from_rows(
    s: Session, subject_id: int, rows: list[tuple[Any, ...]], rooms: Mapping[str, Room]
) -> list[RoomStay]:
    """The stays from the rows of :data:`_READINGS`; the subject's existence is asked only when it
    has neither observations nor events."""
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


def _cuts(room: Room | None, now: datetime, lag_us: int) -> dict[str, int] | None:
    """Per camera of the room, the instant (µs) from which footage may still be on its way to the
    index (see :class:`FootageIndex`); key ``""``: the latest of them, for the stay as a whole.
    None when nothing is left out (``lag_us`` 0)."""
    if lag_us <= 0:
        return None
    now_us = to_us(now)
    cuts = {cam: now_us - max(lag_us, seg_max) for cam, seg_max, _ in room.cameras} if room else {}
    cuts[""] = min(cuts.values(), default=now_us - lag_us)
    return cuts


def _pending(interval: TimeRange, cuts: dict[str, int] | None) -> TimeRange | None:
    """The part of ``interval`` not indexed yet, or None."""
    if cuts is None:
        return None
    lo, hi = to_us(interval.start), to_us(interval.end)
    start = max(lo, cuts[""])
    return TimeRange(from_us(start), from_us(hi)) if start < hi else None


def _explained_until(hi: int, cuts: dict[str, int] | None, camera_id: str) -> int:
    """Where a camera's unexplained seconds may end: the interval's end, or its pending tail's start."""
    return hi if cuts is None else min(hi, cuts[camera_id])


def _coverage(
    room: Room,
    interval: TimeRange,
    seg_rows: Sequence[list[tuple[Any, ...]]],
    gap_rows: Sequence[list[tuple[Any, ...]]],
    width: int,
    cuts: dict[str, int] | None = None,
) -> tuple[CameraCoverage, ...]:
    """Every camera of the room over the interval, from its rows (by start) of that stay, camera
    by camera in the order of ``room.cameras``."""
    lo, hi = to_us(interval.start), to_us(interval.end)
    out = []
    for (cam, _, _), segs, gaps in zip(room.cameras, seg_rows, gap_rows, strict=True):
        spans = [(r[width + 1], r[width + 2]) for r in segs] + [(r[0], r[1]) for r in gaps]
        until = max(lo, _explained_until(hi, cuts, cam))
        out.append(
            CameraCoverage(
                camera_id=cam,
                interval=interval,
                segments=segment_records(cam, segs, width),
                gaps=gap_records(cam, gaps),
                unexplained=tuple(TimeRange(from_us(a), from_us(b)) for a, b in holes(lo, until, spans)),
            )
        )
    return tuple(out)


def _stay_coverage(
    s: Session,
    rooms: Mapping[str, Room],
    stays: list[RoomStay],
    clips: list[ImportedClip],
    start: datetime,
    end: datetime,
    now: datetime,
    lag_us: int = 0,
) -> list[StayCoverage]:
    """Every stay's run-level footage: runs and segment totals of every camera of every stay in one
    statement (:func:`indexer.coverage.runs_statement`), gaps in another, sent together."""
    todo, reads, gap_reads = plan_reads(stays, rooms, start, end, now)
    dialect = s.get_bind().dialect.name
    run_stmts = run_statements(dialect, reads)
    gap_stmts = overlap_statements(dialect, GAPS, GAP_COLS, gap_reads)
    run_results, gap_results = _fetch_both(s, run_stmts, gap_stmts)
    runs_read = finish_run_reads(s, reads, run_stmts, run_results)
    gap_rows = overlap_rows(len(gap_reads), gap_stmts, gap_results, BY_START_ID)
    out: list[StayCoverage] = []
    k = 0
    for stay, interval, room in todo:
        cams: list[CameraRuns] = []
        lo, hi = to_us(interval.start), to_us(interval.end)
        cuts = _cuts(room, now, lag_us)
        for cam, _, _ in room.cameras if room is not None else ():
            got, gaps = runs_read[k], gap_rows[k]
            k += 1
            runs = [(max(a, lo), min(b, hi)) for a, b in got.runs]
            spans = runs + [(r[0], r[1]) for r in gaps]
            until = max(lo, _explained_until(hi, cuts, cam))
            cams.append(
                CameraRuns(
                    camera_id=cam,
                    interval=interval,
                    runs=tuple(TimeRange(from_us(a), from_us(b)) for a, b in runs),
                    segment_count=got.segment_count,
                    footage_us=got.footage_us,
                    gaps=gap_records(cam, gaps),
                    unexplained=tuple(TimeRange(from_us(a), from_us(b)) for a, b in holes(lo, until, spans)),
                )
            )
        mine = tuple(c for c in clips if c.range.overlaps(interval))
        pending = _pending(interval, cuts)
        out.append(
            StayCoverage(stay=stay, interval=interval, cameras=tuple(cams), clips=mine, pending=pending)
        )
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
