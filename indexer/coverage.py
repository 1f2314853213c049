"""Run-level footage: a camera's coverage of an interval as runs, counts and holes, no segments.

The footage answer without its segment list (``FootageIndex.subject_coverage``, the case
timeline, ``GET …/footage?segments=false``): for every camera of every stay, one statement
returns

* the coverage runs (table ``segment_runs``, see :mod:`indexer.segment_runs`) overlapping the
  stay — a handful of rows where the segment list has thousands; and
* one aggregate row: how many segments overlap the stay and how many microseconds of the stay
  they cover (the ``segment_count`` / ``footage_seconds`` the segment list gave), summed by the
  database over the same bounded ``(camera_id, start_us)`` range scan, so no segment row reaches
  Python.

Holes are the stay minus (runs ∪ gaps), which is the stay minus (segments ∪ gaps): the same
unexplained seconds as the per-segment answer. A camera whose runs are dirty (a segment was
deleted inside them, :mod:`indexer.segment_runs`) gets its runs from its segments instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Integer,
    Select,
    bindparam,
    case,
    func,
    literal_column,
    select,
    text,
    union_all,
)
from sqlalchemy.sql.elements import ColumnElement

from domain.types import GapRecord, ImportedClip, RoomStay, SegmentRecord, TimeRange, subtract_ranges
from indexer.models import Base, from_us, to_us
from indexer.segment_runs import union_runs

RUNS, SEGMENTS = Base.metadata.tables["segment_runs"], Base.metadata.tables["segments"]

KIND_RUN, KIND_TOTALS, KIND_DIRTY_RUN = 0, 1, 2


@dataclass(frozen=True, slots=True)
class CameraRuns:
    """What one camera holds over an interval, at run level (cf. ``domain.types.CameraCoverage``)."""

    camera_id: str
    interval: TimeRange
    runs: tuple[TimeRange, ...]  # coverage runs clipped to the interval, by start
    segment_count: int  # segments overlapping the interval
    footage_us: int  # Σ over those segments of their overlap with the interval, µs
    gaps: tuple[GapRecord, ...]
    unexplained: tuple[TimeRange, ...]

    @property
    def footage_seconds(self) -> float:
        return self.footage_us / 1_000_000


@dataclass(frozen=True, slots=True)
class StayCoverage:
    """The run-level footage of one stay (cf. ``domain.types.StayFootage``)."""

    stay: RoomStay
    interval: TimeRange  # the stay clipped to the query range
    cameras: tuple[CameraRuns, ...]
    clips: tuple[ImportedClip, ...]
    pending: TimeRange | None = None  # not indexed yet (cf. ``domain.types.StayFootage.pending``)

    @property
    def unexplained(self) -> list[TimeRange]:
        """Seconds of the interval covered by no camera's footage, gap or clip (nor pending)."""
        covered: list[TimeRange] = []
        for cam in self.cameras:
            covered.extend(cam.runs)
            covered.extend(g.range for g in cam.gaps)
        covered.extend(c.range for c in self.clips)
        if self.pending is not None:
            covered.append(self.pending)
        return subtract_ranges(self.interval, covered)


def _p(name: str) -> Any:
    return bindparam(name, type_=BigInteger)


def _branches(i: int) -> tuple[Select[Any], Select[Any]]:
    """Read ``i``: camera ``c<i>``, interval [``l<i>``, ``h<i>``), lowest segment start ``a<i>``.

    Runs: those starting in [start of the last run starting at or before lo, hi) — runs never
    overlap, so that is every run reaching into the interval (plus perhaps one ending before lo,
    dropped by the reader); two probes of the primary key. Totals: count and clipped sum of the
    segments overlapping the interval, over the usual bounded range of ``(camera_id, start_us)``."""
    cam: Any = bindparam(f"c{i}")
    lo, hi = _p(f"l{i}"), _p(f"h{i}")
    tag = literal_column(str(i), Integer).label("read_")
    before = (
        select(func.max(RUNS.c.start_us))
        .where(RUNS.c.camera_id == cam, RUNS.c.start_us <= lo)
        .scalar_subquery()
    )
    runs = (
        select(
            tag,
            case((RUNS.c.dirty.is_(True), KIND_DIRTY_RUN), else_=KIND_RUN).label("kind_"),
            RUNS.c.start_us.label("a_"),
            RUNS.c.end_us.label("b_"),
        )
        .where(RUNS.c.camera_id == cam, RUNS.c.start_us >= func.coalesce(before, lo), RUNS.c.start_us < hi)
        .order_by(RUNS.c.start_us)
        .limit(bindparam("m"))
    )
    clipped: ColumnElement[Any] = case((SEGMENTS.c.end_us > hi, hi), else_=SEGMENTS.c.end_us) - case(
        (SEGMENTS.c.start_us < lo, lo), else_=SEGMENTS.c.start_us
    )
    totals = select(
        tag,
        literal_column(str(KIND_TOTALS), Integer).label("kind_"),
        func.count().label("a_"),
        func.coalesce(func.sum(clipped), 0).label("b_"),
    ).where(
        SEGMENTS.c.camera_id == cam,
        SEGMENTS.c.start_us >= _p(f"a{i}"),
        SEGMENTS.c.start_us < hi,
        SEGMENTS.c.end_us > lo,
    )
    return runs, totals


MAX_BRANCHES = 32  # reads per statement (two UNION ALL terms each; SQLite allows 500)
_STATEMENTS: dict[int, Select[Any]] = {}


def runs_statement(n: int) -> Select[Any]:
    """``UNION ALL`` of the run and totals branches of ``n`` reads, rows (read, kind, a, b). Built
    once per ``n`` and reused with new parameters (building costs more than running it)."""
    stmt = _STATEMENTS.get(n)
    if stmt is None:
        parts = []
        for i in range(n):
            runs, totals = _branches(i)
            parts += [select(*runs.subquery(f"r{i}").c), select(*totals.subquery(f"t{i}").c)]
        stmt = _STATEMENTS[n] = select(union_all(*parts).subquery("coverage"))
    return stmt


# PostgreSQL: the same rows (read, kind, a, b) from one statement whose text does not depend on the
# number of reads: the reads come as arrays, and each is answered by a LATERAL subquery (the run and
# totals branches above). Planning the UNION ALL of two branches per read was the largest server
# cost of a footage call (3.3 of 8.6 ms for 12 reads, docs/bench/index.md); this plans once, small, and a
# fixed text is what psycopg prepares after a few uses. ``read_`` counts from 0 like the union's.
# The reads (camera, lowest start, lo, hi) as arrays :c, :a, :l, :h, one row ``r`` each, numbered from 1.
READS_FROM_ARRAYS = """unnest(CAST(:c AS text[]), CAST(:a AS bigint[]), CAST(:l AS bigint[]), CAST(:h AS bigint[]))
     WITH ORDINALITY AS r(cam, low, lo, hi, i)"""
RUNS_LATERAL_PG = text(f"""
SELECT r.i - 1 AS read_, k.kind_, k.a_, k.b_
FROM {READS_FROM_ARRAYS}
CROSS JOIN LATERAL (
    (SELECT CASE WHEN sr.dirty THEN 2 ELSE 0 END AS kind_, sr.start_us AS a_, sr.end_us AS b_
     FROM segment_runs sr
     WHERE sr.camera_id = r.cam
       AND sr.start_us >= coalesce((SELECT max(p.start_us) FROM segment_runs p
                                    WHERE p.camera_id = r.cam AND p.start_us <= r.lo), r.lo)
       AND sr.start_us < r.hi
     ORDER BY sr.start_us
     LIMIT :m)
    UNION ALL
    (SELECT 1, count(*), coalesce(sum(least(sg.end_us, r.hi) - greatest(sg.start_us, r.lo)), 0)
     FROM segments sg
     WHERE sg.camera_id = r.cam AND sg.start_us >= r.low AND sg.start_us < r.hi AND sg.end_us > r.lo)
) AS k
""")
assert (KIND_RUN, KIND_TOTALS, KIND_DIRTY_RUN) == (0, 1, 2)  # the literals in RUNS_LATERAL_PG


@dataclass(slots=True)
class RunRead:
    """What one read returned: runs (µs, by start, only those ending after lo), totals, dirty."""

    runs: list[tuple[int, int]]
    segment_count: int = 0
    footage_us: int = 0
    dirty: bool = False


def collect(rows: Sequence[tuple[Any, ...]], los: Sequence[int], first: int, out: list[RunRead]) -> None:
    """Rows (read, kind, a, b) of a statement whose reads start at ``first`` → ``out``."""
    for i, kind, a, b in rows:
        read = out[first + i]
        if kind == KIND_TOTALS:
            read.segment_count, read.footage_us = int(a), int(b)
        elif int(b) > los[first + i]:
            read.runs.append((int(a), int(b)))
            read.dirty = read.dirty or kind == KIND_DIRTY_RUN


def runs_of(segments: Sequence[SegmentRecord], interval: TimeRange) -> tuple[TimeRange, ...]:
    """The coverage runs of a segment list clipped to ``interval`` (what :class:`CameraRuns`
    carries, for answers built from the segments themselves)."""
    lo, hi = to_us(interval.start), to_us(interval.end)
    spans = union_runs((to_us(s.start), to_us(s.end)) for s in segments)
    return tuple(
        TimeRange(from_us(max(a, lo)), from_us(min(b, hi))) for a, b in spans if min(b, hi) > max(a, lo)
    )
