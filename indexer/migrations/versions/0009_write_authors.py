"""Writes carry their author; late entries; exported ranges; login throttling.

Revision ID: 0009_write_authors
Revises: 0008
Create Date: 2026-12-07

Issue 16 (points 2, 3, 7): every row written through the API records the user who wrote it
(``created_by``, ``users.id``; NULL for the system's own writes and for every row before this
revision). Events and location readings get a ``late`` flag (written after the late-entry window,
or inside an exported range) and a supervisor's confirmation (``confirmed_by``/``confirmed_us``).
``exported_ranges`` keeps what went onto a disc; ``login_throttle`` the failed logins per account
and per address. Alerts keep the user id of whoever acknowledged or resolved them.

Columns are added with plain ``ALTER TABLE ... ADD COLUMN`` (no table copy on SQLite, so its
partial indexes stay as they are); the author columns have no foreign key (see
``indexer.models.Author``).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_write_authors"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_AUTHORED = ("cases", "subjects", "officers", "case_officers", "imported_files")
_READINGS = ("procedure_events", "location_observations")


def upgrade() -> None:
    for table in (*_AUTHORED, *_READINGS):
        op.add_column(table, sa.Column("created_by", sa.BigInteger(), nullable=True))
    for table in _READINGS:
        op.add_column(table, sa.Column("late", sa.Boolean(), nullable=False, server_default=sa.text("false")))
        op.add_column(table, sa.Column("confirmed_by", sa.BigInteger(), nullable=True))
        op.add_column(table, sa.Column("confirmed_us", sa.BigInteger(), nullable=True))
    op.add_column("risk_alerts", sa.Column("acknowledged_by_id", sa.BigInteger(), nullable=True))
    op.add_column("risk_alerts", sa.Column("resolved_by_id", sa.BigInteger(), nullable=True))
    op.create_table(
        "exported_ranges",
        sa.Column("id", _BIG, autoincrement=True, nullable=False),
        sa.Column("case_id", _BIG, nullable=False),
        sa.Column("subject_id", _BIG, nullable=False),
        sa.Column("start_us", sa.BigInteger(), nullable=False),
        sa.Column("end_us", sa.BigInteger(), nullable=False),
        sa.Column("export_id", sa.String(64), nullable=False),
        sa.Column("exported_us", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_exported_ranges_case_id_cases")),
        sa.ForeignKeyConstraint(
            ["subject_id"], ["subjects.id"], name=op.f("fk_exported_ranges_subject_id_subjects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exported_ranges")),
    )
    op.create_index("ix_exported_ranges_subject_start", "exported_ranges", ["subject_id", "start_us"])
    op.create_index("ix_exported_ranges_case_id", "exported_ranges", ["case_id"])
    op.create_table(
        "login_throttle",
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("first_failure_us", sa.BigInteger(), nullable=False),
        sa.Column("last_failure_us", sa.BigInteger(), nullable=False),
        sa.Column("locked_until_us", sa.BigInteger(), nullable=False),
        sa.Column("alerted", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_login_throttle")),
    )


def downgrade() -> None:
    op.drop_table("login_throttle")
    op.drop_index("ix_exported_ranges_case_id", table_name="exported_ranges")
    op.drop_index("ix_exported_ranges_subject_start", table_name="exported_ranges")
    op.drop_table("exported_ranges")
    # SQLite drops a column with ALTER TABLE ... DROP COLUMN (3.35+) unless an index or constraint
    # names it; none of these is named by one.
    op.drop_column("risk_alerts", "resolved_by_id")
    op.drop_column("risk_alerts", "acknowledged_by_id")
    for table in _READINGS:
        op.drop_column(table, "confirmed_us")
        op.drop_column(table, "confirmed_by")
        op.drop_column(table, "late")
    for table in (*_AUTHORED, *_READINGS):
        op.drop_column(table, "created_by")
