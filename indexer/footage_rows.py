"""The row level of the footage query: reading segment, gap and coverage-run rows of many
(camera, interval) pairs in few statements, and turning rows into domain records fast.

Overlap reads go to the ``segments``/``gaps`` tables directly: a row overlaps ``[lo, hi)`` only if
it starts in ``[lo - longest, hi)`` where ``longest`` is the camera's ``max_segment_us``/``max_gap_us``
bound (maintained by the segment store), so each read is a short range scan of the camera's index
however big the table grows; the reads of one answer go in one ``UNION ALL`` statement (a branch
per camera and stay). :mod:`indexer.footage` composes these into answers.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from operator import itemgetter
from typing import Any

from sqlalchemy import (
    Integer,
    Select,
    Table,
    bindparam,
    func,
    literal_column,
    select,
    text,
    union_all,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement, TextClause

from domain.types import (
    ClockSource,
    GapCause,
    GapRecord,
    RoomKind,
    RoomStay,
    SegmentRecord,
    StreamInfo,
    TimeRange,
)
from indexer import coverage
from indexer.coverage import RunRead
from indexer.models import EPOCH, Base, from_us, to_us
from indexer.read_batch import Query, fetch_many, raw_rows
from indexer.segment_runs import union_runs
from indexer.trajectory import clip_stay

log = logging.getLogger(__name__)

T = Base.metadata.tables
SEGMENTS, GAPS, CAMERAS, ROOMS = T["segments"], T["gaps"], T["cameras"], T["rooms"]

MAX_ROWS_PER_CAMERA = 50_000  # 5.8 days of 10 s segments: a bound, not a page size

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
GAP_COLS = [GAPS.c[name] for name in ("start_us", "end_us", "cause", "detail", "gap_id")]
_CLOCKS = {c.value: c for c in ClockSource}
_CAUSES = {c.value: c for c in GapCause}


# The fields of SegmentRecord in the order ``segment_records`` sets them (checked at import: a field added
# to the domain type must be added here too, or records would be built without it).
_SEG_FIELDS = (
    "camera_id", "run_id", "seq", "start", "end", "storage_key", "size", "sha256", "prev_sha256",
    "clock_source", "stream", "container", "sm3", "packets", "recovered",
)  # fmt: skip
if tuple(f.name for f in fields(SegmentRecord)) != _SEG_FIELDS:  # pragma: no cover - a domain change
    raise ImportError(
        "indexer.footage: SegmentRecord's fields changed; update _SEG_FIELDS and segment_records"
    )
# The slot descriptors' setters: SegmentRecord is a frozen slots dataclass whose __init__ sets each
# field through object.__setattr__ (≈ 1.5 µs a record); object.__new__ plus the 15 slot setters
# builds the same object (same class, same field values, equal and hashable alike) in ≈ 0.8 µs.
# SegmentRecord has no __post_init__, so nothing is skipped.
_SEG_SETTERS: tuple[Any, ...] = tuple(SegmentRecord.__dict__[name].__set__ for name in _SEG_FIELDS)
_BY_START_SEQ = itemgetter(10, 9)  # rows of _SEG_COLS: (start_us, seq)
_BY_START_SEQ_SQLITE = itemgetter(2, 1)  # rows of _SEG_COLS_SQLITE
BY_START_ID = itemgetter(0, 4)  # rows of GAP_COLS: (start_us, gap_id)


def seg_layout(dialect: str) -> tuple[list[ColumnElement[Any]], Any, int]:
    """(columns, sort key (start, seq), width of the run-level part) of segment rows on ``dialect``."""
    if dialect == "sqlite":
        return _SEG_COLS_SQLITE, _BY_START_SEQ_SQLITE, 1
    return _SEG_COLS, _BY_START_SEQ, len(_RUN_NAMES)


def segment_records(camera_id: str, rows: Sequence[tuple[Any, ...]], width: int) -> tuple[SegmentRecord, ...]:
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


def gap_records(camera_id: str, rows: Sequence[tuple[Any, ...]]) -> tuple[GapRecord, ...]:
    """Rows of ``GAP_COLS`` of one camera → records (few per stay; GapRecord's checks are kept)."""
    return tuple(GapRecord(camera_id, from_us(r[0]), from_us(r[1]), _CAUSES[r[2]], r[3], r[4]) for r in rows)


def holes(lo: int, hi: int, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
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


@dataclass(frozen=True, slots=True)
class Room:
    kind: RoomKind
    cameras: tuple[tuple[str, int, int], ...]  # (camera id, max_segment_us, max_gap_us) by id


_ROOMS = (  # built once: constructing it cost more than running it
    select(ROOMS.c.id, ROOMS.c.kind, CAMERAS.c.id, CAMERAS.c.max_segment_us, CAMERAS.c.max_gap_us)
    .outerjoin(CAMERAS, CAMERAS.c.room_id == ROOMS.c.id)
    .order_by(ROOMS.c.id, CAMERAS.c.id)
)


ROOMS_READ: Query = (_ROOMS, None)


def rooms_of(s: Session) -> dict[str, Room]:
    """Every room with its kind and cameras: one query (a centre has tens of rooms)."""
    return rooms_from_rows(raw_rows(s, _ROOMS))


def rooms_from_rows(rows: Sequence[tuple[Any, ...]]) -> dict[str, Room]:
    """The rooms from the rows of :data:`ROOMS_READ`."""
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
    return {rid: Room(kinds[rid], tuple(sorted(cams[rid]))) for rid in kinds}


MAX_BRANCHES = 64  # UNION ALL branches per statement (SQLite allows 500 compound terms)
_STATEMENTS: dict[tuple[str, tuple[str, ...], int], Select[Any]] = {}


def reads_statement(table: Table, cols: Sequence[ColumnElement[Any]], n: int) -> Select[Any]:
    """The statement of :func:`overlapping` for ``n`` reads: ``UNION ALL`` of ``n`` branches, each
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


def overlapping(
    s: Session,
    table: Table,
    cols: Sequence[ColumnElement[Any]],
    by_start: Any,
    reads: Sequence[tuple[str, int, int, int]],
) -> list[list[tuple[Any, ...]]]:
    """For every read (camera, lowest start, lo, hi): the rows of ``table`` of that camera
    overlapping [lo, hi), by (start, then the tie-breaker in ``by_start``), at most
    MAX_ROWS_PER_CAMERA (:func:`overlap_statements` + :func:`overlap_rows`)."""
    stmts = overlap_statements(s.get_bind().dialect.name, table, cols, reads)
    return overlap_rows(len(reads), stmts, fetch_many(s, [st for st, _ in stmts]), by_start)


def overlap_statements(
    dialect: str, table: Table, cols: Sequence[ColumnElement[Any]], reads: Sequence[tuple[str, int, int, int]]
) -> list[tuple[Query, int]]:
    """The statements of an overlap read, each with the index of its first read.

    A row overlaps [lo, hi) only if it starts in [lo - longest, hi), ``longest`` being the camera's
    ``max_segment_us``/``max_gap_us`` (the caller passes lo - longest), so every read is a short
    range scan of the ``(camera_id, start_us)`` index, whatever the table's size. PostgreSQL: one
    LATERAL statement over arrays of the reads; elsewhere ``UNION ALL`` statements, one branch per
    read, up to MAX_BRANCHES a statement, instead of a round trip each."""
    lateral = _lateral_statement(table, cols) if dialect == "postgresql" else None
    if lateral is not None:
        return [((lateral, read_arrays(reads)), 0)] if reads else []
    return [
        ((reads_statement(table, cols, len(chunk)), branch_params(chunk)), first)
        for first in range(0, len(reads), MAX_BRANCHES)
        if (chunk := reads[first : first + MAX_BRANCHES])
    ]


def branch_params(chunk: Sequence[tuple[str, int, int, int]]) -> dict[str, Any]:
    """The parameters of a ``UNION ALL`` read statement: ``c<i>``, ``a<i>``, ``l<i>``, ``h<i>`` of
    each read and the row bound ``m``."""
    params: dict[str, Any] = {"m": MAX_ROWS_PER_CAMERA}
    for i, (cam, low, lo, hi) in enumerate(chunk):
        params.update({f"c{i}": cam, f"a{i}": low, f"l{i}": lo, f"h{i}": hi})
    return params


def overlap_rows(
    n: int, stmts: Sequence[tuple[Query, int]], results: Sequence[Sequence[tuple[Any, ...]]], by_start: Any
) -> list[list[tuple[Any, ...]]]:
    """The rows of :func:`overlap_statements`' results per read (the last column of a row is its
    read's index within its statement). SQL does not promise the order of a ``UNION ALL`` and the
    index does not order ties on ``start_us``, so each read's rows are sorted by ``by_start`` (one
    pass on rows already in order)."""
    out: list[list[tuple[Any, ...]]] = [[] for _ in range(n)]
    for (_, first), rows in zip(stmts, results, strict=True):
        for r in rows:
            out[first + r[-1]].append(r)
    for rows_of_read in out:
        rows_of_read.sort(key=by_start)
    return out


_LATERAL: dict[tuple[str, tuple[str, ...]], TextClause | None] = {}


def read_arrays(reads: Sequence[tuple[str, int, int, int]]) -> dict[str, Any]:
    """The parameters of the PostgreSQL LATERAL statements: one array per field of the reads."""
    return {
        "c": [r[0] for r in reads],
        "a": [r[1] for r in reads],
        "l": [r[2] for r in reads],
        "h": [r[3] for r in reads],
        "m": MAX_ROWS_PER_CAMERA,
    }


def _lateral_statement(table: Table, cols: Sequence[ColumnElement[Any]]) -> TextClause | None:
    """PostgreSQL: :func:`overlapping`'s reads as arrays, each answered by a LATERAL subquery, in
    one statement whose text does not depend on the number of reads (planning the ``UNION ALL`` of
    one branch per read cost more than running it, docs/bench/index.md; a fixed text is also what
    psycopg prepares). None when ``cols`` are not all plain columns of ``table``."""
    names = tuple(getattr(c, "name", "") for c in cols)
    key = (table.name, names)
    if key not in _LATERAL:
        plain = all(getattr(c, "table", None) is table for c in cols)
        _LATERAL[key] = (
            None
            if not plain
            else text(f"""
            SELECT {", ".join(f"t.{n}" for n in names)}, r.i - 1 AS read_
            FROM {coverage.READS_FROM_ARRAYS}
            CROSS JOIN LATERAL (
                SELECT {", ".join(names)} FROM {table.name}
                WHERE camera_id = r.cam AND start_us >= r.low AND start_us < r.hi AND end_us > r.lo
                ORDER BY start_us LIMIT :m
            ) AS t""")
        )
    return _LATERAL[key]


SPAN_COLS: list[ColumnElement[Any]] = [SEGMENTS.c.start_us, SEGMENTS.c.end_us]


def run_reads(s: Session, reads: Sequence[tuple[str, int, int, int]]) -> list[RunRead]:
    """For every read (camera, lowest segment start, lo, hi): its coverage runs overlapping
    [lo, hi) by start, and the count and covered µs of its segments there."""
    stmts = run_statements(s.get_bind().dialect.name, reads)
    return finish_run_reads(s, reads, stmts, fetch_many(s, [st for st, _ in stmts]))


def run_statements(dialect: str, reads: Sequence[tuple[str, int, int, int]]) -> list[tuple[Query, int]]:
    """The statements of :func:`run_reads`, each with the index of its first read."""
    if not reads:
        return []
    if dialect == "postgresql":
        return [((coverage.RUNS_LATERAL_PG, read_arrays(reads)), 0)]
    step = coverage.MAX_BRANCHES
    return [
        ((coverage.runs_statement(len(chunk)), branch_params(chunk)), first)
        for first in range(0, len(reads), step)
        if (chunk := reads[first : first + step])
    ]


def finish_run_reads(
    s: Session,
    reads: Sequence[tuple[str, int, int, int]],
    stmts: Sequence[tuple[Query, int]],
    results: Sequence[Sequence[tuple[Any, ...]]],
) -> list[RunRead]:
    """:func:`run_reads` from its statements' results. Cameras with a dirty run (a segment deleted
    inside it) get their runs from their segments' spans instead (a further read)."""
    out = [RunRead([]) for _ in reads]
    los = [lo for _, _, lo, _ in reads]
    for (_, first), rows in zip(stmts, results, strict=True):
        coverage.collect(rows, los, first, out)
    dirty = [k for k, got in enumerate(out) if got.dirty]
    if dirty:
        log.info("footage: %d camera read(s) over dirty runs, read from the segments", len(dirty))
        spans = overlapping(s, SEGMENTS, SPAN_COLS, itemgetter(0, 1), [reads[k] for k in dirty])
        for k, rows in zip(dirty, spans, strict=True):
            out[k].runs = union_runs((r[0], r[1]) for r in rows)
    for got in out:
        got.runs.sort()
    return out


# (camera, lowest start a row may have and still overlap, lo, hi) in µs: one overlap read
Read = tuple[str, int, int, int]


def plan_reads(
    stays: Sequence[RoomStay], rooms: Mapping[str, Room], start: datetime, end: datetime, now: datetime
) -> tuple[list[tuple[RoomStay, TimeRange, Room | None]], list[Read], list[Read]]:
    """The stays clipped to [start, end) (open stays end at ``now``) with their rooms, and the
    segment and gap reads of every camera of every such stay, in that order."""
    todo: list[tuple[RoomStay, TimeRange, Room | None]] = []
    for stay in stays:
        bounds = clip_stay(stay, start, end, now)
        if bounds is not None:
            todo.append((stay, TimeRange(*bounds), rooms.get(stay.room_id)))
    reads: list[Read] = []
    gap_reads: list[Read] = []
    for _, interval, room in todo:
        lo, hi = to_us(interval.start), to_us(interval.end)
        for cam, seg_max, gap_max in room.cameras if room is not None else ():
            reads.append((cam, lo - seg_max, lo, hi))
            gap_reads.append((cam, lo - gap_max, lo, hi))
    return todo, reads, gap_reads
