"""Risk alerts with their evidence: ``risk_alerts`` and ``risk_alert_snapshots``.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27

See ``indexer/models/alerts.py`` (the models and their invariants) and docs/design/alerts.md.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON_DOC = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.create_table(
        "risk_alerts",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column("severity", sa.String(length=8), nullable=False),
        sa.Column("dedup_key", sa.String(length=200), nullable=False),
        sa.Column("open_key", sa.String(length=200), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("case_id", BIG_ID, nullable=True),
        sa.Column("subject_id", BIG_ID, nullable=True),
        sa.Column("room_id", sa.String(length=64), nullable=True),
        sa.Column("camera_id", sa.String(length=64), nullable=True),
        sa.Column("start_us", sa.BigInteger(), nullable=False),
        sa.Column("end_us", sa.BigInteger(), nullable=True),
        sa.Column("raised_us", sa.BigInteger(), nullable=False),
        sa.Column("last_seen_us", sa.BigInteger(), nullable=False),
        sa.Column("occurrences", sa.Integer(), nullable=False),
        sa.Column("details", JSON_DOC, nullable=True),
        sa.Column("acknowledged_by", sa.String(length=128), nullable=True),
        sa.Column("acknowledged_us", sa.BigInteger(), nullable=True),
        sa.Column("resolved_by", sa.String(length=128), nullable=True),
        sa.Column("resolved_us", sa.BigInteger(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "state IN ('open', 'acknowledged', 'resolved')", name=op.f("ck_risk_alerts_state")
        ),
        sa.CheckConstraint("severity IN ('high', 'medium', 'low')", name=op.f("ck_risk_alerts_severity")),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_risk_alerts_case_id_cases")),
        sa.ForeignKeyConstraint(
            ["subject_id"], ["subjects.id"], name=op.f("fk_risk_alerts_subject_id_subjects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_alerts")),
        sa.UniqueConstraint("open_key", name=op.f("uq_risk_alerts_open_key")),
    )
    op.create_index("ix_risk_alerts_state_raised", "risk_alerts", ["state", "raised_us"])
    op.create_index("ix_risk_alerts_case_id", "risk_alerts", ["case_id"])
    op.create_index("ix_risk_alerts_room_id_start", "risk_alerts", ["room_id", "start_us"])
    op.create_table(
        "risk_alert_snapshots",
        sa.Column("alert_id", BIG_ID, nullable=False),
        sa.Column("taken_us", sa.BigInteger(), nullable=False),
        sa.Column("camera_id", sa.String(length=64), nullable=True),
        sa.Column("jpeg", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["alert_id"], ["risk_alerts.id"], name=op.f("fk_risk_alert_snapshots_alert_id_risk_alerts")
        ),
        sa.PrimaryKeyConstraint("alert_id", name=op.f("pk_risk_alert_snapshots")),
    )


def downgrade() -> None:
    op.drop_table("risk_alert_snapshots")
    op.drop_index("ix_risk_alerts_room_id_start", table_name="risk_alerts")
    op.drop_index("ix_risk_alerts_case_id", table_name="risk_alerts")
    op.drop_index("ix_risk_alerts_state_raised", table_name="risk_alerts")
    op.drop_table("risk_alerts")
