"""Coverage runs (table ``segment_runs``): what a camera's segments cover, as few rows.

A run is a maximal stretch of one camera's time covered by its segments without a hole:
segments that overlap or touch (``end == next start``) belong to one run; zero-length segments
cover nothing and make none. The footage answer needs only this (plus the gaps) to find the
unexplained seconds, so it reads tens of runs instead of thousands of segments.

Kept exact by the writers, in the transaction of the insert:

* :func:`merge` — after segments are inserted (``SegmentStore`` calls it for every batch, so the
  uploader and ``vaudit reindex`` keep runs alike): the camera's runs touching the new spans and
  the spans themselves are replaced by their union. Idempotent (a duplicate segment changes
  nothing) and independent of insertion order. On PostgreSQL the cameras' rows are locked first
  (``FOR UPDATE``), so two writers of one camera cannot both rewrite the same run.
* Deletes: a trigger of revision 0006 marks the run holding a deleted segment ``dirty``; readers
  then compute that camera's coverage from its segments, and :func:`repair` recomputes dirty runs.
* :func:`rebuild` — every run from scratch in one SQL statement (migration backfill, bulk loads
  that bypass the store).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Table, delete, func, insert, select, text
from sqlalchemy.orm import Session

from indexer.models import Base

log = logging.getLogger(__name__)

RUNS: Table = Base.metadata.tables["segment_runs"]
SEGMENTS: Table = Base.metadata.tables["segments"]
CAMERAS: Table = Base.metadata.tables["cameras"]

Span = tuple[int, int]

# Every run of the cameras selected by {where} (the segments' own "gaps and islands": a segment
# starts a new run when it starts after the furthest end of the camera's earlier segments).
# Plain SQL that SQLite (3.25+: window functions) and PostgreSQL both run; revision 0006 holds
# a copy (migrations must not import application code that may change after them).
REBUILD_SQL = """
INSERT INTO segment_runs (camera_id, start_us, end_us, dirty)
SELECT camera_id, min(start_us), max(end_us), {false}
FROM (
    SELECT camera_id, start_us, end_us,
           sum(fresh) OVER (PARTITION BY camera_id ORDER BY start_us, end_us ROWS UNBOUNDED PRECEDING) AS grp
    FROM (
        SELECT camera_id, start_us, end_us,
               CASE WHEN start_us <= max(end_us) OVER (
                        PARTITION BY camera_id ORDER BY start_us, end_us
                        ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
                    THEN 0 ELSE 1 END AS fresh
        FROM segments
        WHERE end_us > start_us {where}
    ) AS marked
) AS grouped
GROUP BY camera_id, grp
"""


def union_runs(spans: Iterable[Span]) -> list[Span]:
    """The runs of half-open spans ``(start_us, end_us)``: overlapping or touching spans merged,
    empty ones dropped, by start. The definition every stored run must equal."""
    out: list[Span] = []
    for start, end in sorted(sp for sp in spans if sp[1] > sp[0]):
        if out and start <= out[-1][1]:
            if end > out[-1][1]:
                out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


def lock_cameras(s: Session, camera_ids: Iterable[str]) -> None:
    """PostgreSQL: lock the cameras' rows until commit, sorted (two writers cannot deadlock on
    the order). ``FOR NO KEY UPDATE``, not ``FOR UPDATE``: the segment insert before it already
    holds the foreign key's ``KEY SHARE`` lock on the camera, which ``FOR UPDATE`` would wait for
    in the other writer while that one waits for ours (a deadlock, seen in the concurrent-writers
    test); ``NO KEY UPDATE`` locks exclude each other but not key-share locks. SQLite needs none: a
    writer holds the whole database, and a writer whose snapshot went stale cannot start writing."""
    ids = sorted(set(camera_ids))
    if ids and s.get_bind().dialect.name == "postgresql":
        s.execute(
            select(CAMERAS.c.id)
            .where(CAMERAS.c.id.in_(ids))
            .order_by(CAMERAS.c.id)
            .with_for_update(key_share=True)
        )


def merge(s: Session, spans_by_camera: Mapping[str, Sequence[Span]]) -> None:
    """Fold the spans of newly written segments (duplicates of stored ones allowed) into the
    cameras' runs, in the caller's transaction: the runs touching them and the spans become their
    union. Only rows that change are written (re-inserting known segments writes nothing)."""
    lock_cameras(s, spans_by_camera)
    for camera_id in sorted(spans_by_camera):
        new = union_runs(spans_by_camera[camera_id])
        if not new:
            continue
        lo, hi = new[0][0], new[-1][1]
        have = {
            (int(a), int(b)): bool(d)
            for a, b, d in s.execute(_touching(camera_id, lo, hi)).all()
            if int(b) >= lo  # the run starting before lo may end before it
        }
        merged = union_runs([*have, *new])
        # A run grown over a dirty one stays dirty (the dirty part may hide holes).
        want = {run: any(d for (a, b), d in have.items() if run[0] <= a and b <= run[1]) for run in merged}
        gone = [a for (a, b), d in have.items() if want.get((a, b)) != d]
        fresh = [run for run, d in want.items() if have.get(run) != d]
        if gone:
            s.execute(delete(RUNS).where(RUNS.c.camera_id == camera_id, RUNS.c.start_us.in_(gone)))
        if fresh:
            s.execute(
                insert(RUNS),
                [
                    {"camera_id": camera_id, "start_us": a, "end_us": b, "dirty": want[(a, b)]}
                    for a, b in fresh
                ],
            )


def _touching(camera_id: str, lo: int, hi: int) -> Any:
    """The camera's runs that may touch [lo, hi]: the last one starting at or before ``lo`` and
    every one starting in (lo, hi] (runs never overlap, so no other can reach into the span):
    two bounded probes of the primary key, however many runs the camera has."""
    before = (
        select(func.max(RUNS.c.start_us))
        .where(RUNS.c.camera_id == camera_id, RUNS.c.start_us <= lo)
        .scalar_subquery()
    )
    return select(RUNS.c.start_us, RUNS.c.end_us, RUNS.c.dirty).where(
        RUNS.c.camera_id == camera_id,
        RUNS.c.start_us >= func.coalesce(before, lo),
        RUNS.c.start_us <= hi,
    )


def repair(s: Session, camera_id: str | None = None) -> int:
    """Recompute every dirty run (of one camera, or all) from the segments left in it; returns
    how many dirty runs were repaired. A run's segments all start inside it, so each repair reads
    only that run's segments."""
    stmt = select(RUNS.c.camera_id, RUNS.c.start_us, RUNS.c.end_us).where(RUNS.c.dirty.is_(True))
    if camera_id is not None:
        stmt = stmt.where(RUNS.c.camera_id == camera_id)
    dirty = s.execute(stmt.order_by(RUNS.c.camera_id, RUNS.c.start_us)).all()
    lock_cameras(s, {r[0] for r in dirty})
    for cam, start, end in dirty:
        spans = s.execute(
            select(SEGMENTS.c.start_us, SEGMENTS.c.end_us).where(
                SEGMENTS.c.camera_id == cam, SEGMENTS.c.start_us >= start, SEGMENTS.c.start_us < end
            )
        ).all()
        s.execute(delete(RUNS).where(RUNS.c.camera_id == cam, RUNS.c.start_us == start))
        runs = union_runs((int(a), int(b)) for a, b in spans)
        if runs:
            s.execute(
                insert(RUNS),
                [{"camera_id": cam, "start_us": a, "end_us": b, "dirty": False} for a, b in runs],
            )
    if dirty:
        log.info("segment runs: %d dirty run(s) recomputed after deletes", len(dirty))
    return len(dirty)


def rebuild(conn: Connection | Session, camera_ids: Sequence[str] | None = None) -> None:
    """Every run (of ``camera_ids``, or of all cameras) recomputed from the segments in one
    statement, in the caller's transaction."""
    dialect = conn.get_bind().dialect.name if isinstance(conn, Session) else conn.dialect.name
    false = "false" if dialect == "postgresql" else "0"
    if camera_ids is None:
        conn.execute(delete(RUNS))
        conn.execute(text(REBUILD_SQL.format(false=false, where="")))
        return
    if isinstance(conn, Session):
        lock_cameras(conn, camera_ids)
    for cam in sorted(set(camera_ids)):
        conn.execute(delete(RUNS).where(RUNS.c.camera_id == cam))
        conn.execute(text(REBUILD_SQL.format(false=false, where="AND camera_id = :cam")), {"cam": cam})
