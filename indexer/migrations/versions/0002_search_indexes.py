"""Search indexes: event type/time, officers of events and cases, clips of a subject, case-number prefix.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27

Measured at 10M segments / 1M events (docs/bench/index.md): without them "officer" scans
``procedure_event_officers`` (its primary key leads with ``event_id``) and "event type + window"
scans ``procedure_events``. ``ix_cases_case_number_pattern`` lets PostgreSQL range-scan
``case_number LIKE 'p%'`` whatever the database collation (``text_pattern_ops``); on SQLite the
search uses a BINARY range on the unique index instead, so its copy is an empty partial index
(``WHERE 0``) kept only so the schema is the same on both databases.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PLAIN = [
    ("ix_procedure_events_type_time", "procedure_events", ["type", "time_us"]),
    ("ix_procedure_events_time_us", "procedure_events", ["time_us"]),
    ("ix_procedure_event_officers_officer_id", "procedure_event_officers", ["officer_id"]),
    ("ix_case_officers_officer_id", "case_officers", ["officer_id"]),
    ("ix_imported_file_subjects_subject_id", "imported_file_subjects", ["subject_id"]),
]


def upgrade() -> None:
    for name, table, columns in _PLAIN:
        op.create_index(name, table, columns)
    op.create_index(
        "ix_cases_case_number_pattern",
        "cases",
        ["case_number"],
        postgresql_ops={"case_number": "text_pattern_ops"},
        sqlite_where=sa.text("0"),
    )


def downgrade() -> None:
    op.drop_index("ix_cases_case_number_pattern", table_name="cases")
    for name, table, _ in reversed(_PLAIN):
        op.drop_index(name, table_name=table)
