"""``location_observations (room_id, time_us)``: the readings of a room in a time range.

Revision ID: 0011_observation_room_time
Revises: 0010_audit_key
Create Date: 2026-12-07

Search by room and time also finds the stays overlapping the range (indexer/search_stays.py):
its candidates are the subjects with a reading in the room since the window's start minus the
stay look-back (and, with no start, before the end). ``procedure_events`` has had its
``(room_id, time_us)`` index since 0001; the observations had only ``(subject_id, time_us)`` and
``(officer_id, time_us)``, so PostgreSQL read the whole table for that half of the candidates and
SQLite skip-scanned the officer index over every room's readings in the range. Measured before
and after (``bench/stay_search.py``) in docs/bench/index.md. Building the index reads the table
once (0.15-0.22 s at 191,000 readings).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0011_observation_room_time"
down_revision: str | None = "0010_audit_key"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_location_observations_room_time", "location_observations", ["room_id", "time_us"])


def downgrade() -> None:
    op.drop_index("ix_location_observations_room_time", table_name="location_observations")
