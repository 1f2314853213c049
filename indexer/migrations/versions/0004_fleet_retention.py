"""Recorder fleet and evidence retention: node heartbeats, camera leases, legal holds.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27

See ``indexer/models/fleet.py`` (the models) and ``indexer/leases.py`` (how leases are used).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "recorder_nodes",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("host", sa.String(length=200), nullable=False),
        sa.Column("started_us", sa.BigInteger(), nullable=False),
        sa.Column("heartbeat_us", sa.BigInteger(), nullable=False),
        sa.Column("expires_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recorder_nodes")),
    )
    op.create_table(
        "camera_leases",
        sa.Column("camera_id", sa.String(length=64), nullable=False),
        sa.Column("node_id", sa.String(length=64), nullable=True),
        sa.Column("expires_us", sa.BigInteger(), nullable=False),
        sa.Column("acquired_us", sa.BigInteger(), nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.Column("previous_node_id", sa.String(length=64), nullable=True),
        sa.Column("previous_expires_us", sa.BigInteger(), nullable=True),
        sa.Column("released_seq", sa.BigInteger(), nullable=True),
        sa.Column("released_sha256", sa.String(length=64), nullable=True),
        sa.Column("released_end_us", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["camera_id"], ["cameras.id"], name=op.f("fk_camera_leases_camera_id_cameras")
        ),
        sa.PrimaryKeyConstraint("camera_id", name=op.f("pk_camera_leases")),
    )
    op.create_index("ix_camera_leases_node_id", "camera_leases", ["node_id"])
    op.create_table(
        "legal_holds",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("case_id", BIG_ID, nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("placed_by", sa.String(length=128), nullable=False),
        sa.Column("placed_us", sa.BigInteger(), nullable=False),
        sa.Column("released_by", sa.String(length=128), nullable=True),
        sa.Column("released_us", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["case_id"], ["cases.id"], name=op.f("fk_legal_holds_case_id_cases")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_legal_holds")),
    )
    op.create_index(op.f("ix_legal_holds_case_id"), "legal_holds", ["case_id"])
    op.create_table(
        "legal_hold_objects",
        sa.Column("hold_id", BIG_ID, nullable=False),
        sa.Column("storage_key", sa.String(length=512), nullable=False),
        sa.ForeignKeyConstraint(
            ["hold_id"], ["legal_holds.id"], name=op.f("fk_legal_hold_objects_hold_id_legal_holds")
        ),
        sa.PrimaryKeyConstraint("hold_id", "storage_key", name=op.f("pk_legal_hold_objects")),
    )
    op.create_index(op.f("ix_legal_hold_objects_storage_key"), "legal_hold_objects", ["storage_key"])


def downgrade() -> None:
    op.drop_index(op.f("ix_legal_hold_objects_storage_key"), table_name="legal_hold_objects")
    op.drop_table("legal_hold_objects")
    op.drop_index(op.f("ix_legal_holds_case_id"), table_name="legal_holds")
    op.drop_table("legal_holds")
    op.drop_index("ix_camera_leases_node_id", table_name="camera_leases")
    op.drop_table("camera_leases")
    op.drop_table("recorder_nodes")
