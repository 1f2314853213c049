"""Coverage runs of segments (``segment_runs``, backfilled), trigram name search, covering type index.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27

* ``segment_runs``: one row per maximal stretch of a camera's time its segments cover without a
  hole (:mod:`indexer.segment_runs` keeps it on every insert). Backfilled here from the segments
  in one statement. A trigger marks the run of a deleted segment ``dirty`` (readers then use the
  segments of that camera; ``SegmentStore.repair_runs`` recomputes it).
* PostgreSQL: ``pg_trgm`` and a trigram GIN index on ``subjects.name`` for the substring search
  (``name LIKE '%x%'``); SQLite has no such index type, so its copy is an empty partial index
  (``WHERE 0``) kept only so both schemas equal the models. The extension is left installed on
  downgrade (other objects may use it).
* ``procedure_events (type, time_us, case_id)`` replaces ``(type, time_us)`` of 0002: the
  "event type + window" total counts distinct cases from the index alone.
* ``segments (camera_id, start_us, end_us)`` replaces ``(camera_id, start_us)`` of 0001 (same
  leading columns for every existing query): the run-level footage answer counts and sums a
  stay's segments from the index alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A copy of indexer.segment_runs.REBUILD_SQL as of this revision (a migration must not change
# when application code does): the segments' "gaps and islands" per camera.
_BACKFILL = """
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
        WHERE end_us > start_us
    ) AS marked
) AS grouped
GROUP BY camera_id, grp
"""

# The run holding a deleted segment: the last run of its camera starting at or before it.
_RUN_OF_OLD = (
    "camera_id = OLD.camera_id AND start_us = (SELECT max(start_us) FROM segment_runs"
    " WHERE camera_id = OLD.camera_id AND start_us <= OLD.start_us) AND end_us >= OLD.end_us"
)
_PG_FUNCTION = f"""CREATE FUNCTION segment_runs_mark_dirty() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.end_us > OLD.start_us THEN
        UPDATE segment_runs SET dirty = true WHERE {_RUN_OF_OLD} AND NOT dirty;
    END IF;
    RETURN NULL;
END $$"""
_PG_TRIGGER = """CREATE TRIGGER segments_mark_runs_dirty AFTER DELETE ON segments
FOR EACH ROW EXECUTE FUNCTION segment_runs_mark_dirty()"""
_SQLITE_TRIGGER = f"""CREATE TRIGGER segments_mark_runs_dirty AFTER DELETE ON segments
WHEN OLD.end_us > OLD.start_us
BEGIN UPDATE segment_runs SET dirty = 1 WHERE {_RUN_OF_OLD} AND NOT dirty; END"""


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "segment_runs",
        sa.Column("camera_id", sa.String(length=64), nullable=False),
        sa.Column("start_us", sa.BigInteger(), nullable=False),
        sa.Column("end_us", sa.BigInteger(), nullable=False),
        sa.Column("dirty", sa.Boolean(), nullable=False),
        sa.CheckConstraint("end_us > start_us", name=op.f("ck_segment_runs_time_order")),
        sa.ForeignKeyConstraint(
            ["camera_id"], ["cameras.id"], name=op.f("fk_segment_runs_camera_id_cameras")
        ),
        sa.PrimaryKeyConstraint("camera_id", "start_us", name=op.f("pk_segment_runs")),
    )
    op.execute(_BACKFILL.format(false="false" if postgres else "0"))
    if postgres:
        op.execute(_PG_FUNCTION)
        op.execute(_PG_TRIGGER)
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    else:
        op.execute(_SQLITE_TRIGGER)
    op.create_index(
        "ix_subjects_name_trgm",
        "subjects",
        ["name"],
        postgresql_using="gin",
        postgresql_ops={"name": "gin_trgm_ops"},
        sqlite_where=sa.text("0"),
    )
    op.drop_index("ix_procedure_events_type_time", table_name="procedure_events")
    op.create_index("ix_procedure_events_type_time_case", "procedure_events", ["type", "time_us", "case_id"])
    op.create_index("ix_segments_camera_start_end", "segments", ["camera_id", "start_us", "end_us"])
    op.drop_index("ix_segments_camera_start", table_name="segments")


def downgrade() -> None:
    op.create_index("ix_segments_camera_start", "segments", ["camera_id", "start_us"])
    op.drop_index("ix_segments_camera_start_end", table_name="segments")
    op.drop_index("ix_procedure_events_type_time_case", table_name="procedure_events")
    op.create_index("ix_procedure_events_type_time", "procedure_events", ["type", "time_us"])
    op.drop_index("ix_subjects_name_trgm", table_name="subjects")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS segments_mark_runs_dirty ON segments")
        op.execute("DROP FUNCTION IF EXISTS segment_runs_mark_dirty()")
    else:
        op.execute("DROP TRIGGER IF EXISTS segments_mark_runs_dirty")
    op.drop_table("segment_runs")
