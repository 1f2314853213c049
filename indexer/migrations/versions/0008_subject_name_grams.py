"""``subject_name_grams``: the subject-name search's index (one- and two-character pieces).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28

A name search is a substring match; SQLite scanned all subjects for it (28-30 ms p95 at 100,000
subjects, docs/bench/index.md) and PostgreSQL's trigram index cannot serve two-character queries.
``CaseStore`` adds every new subject's grams; this revision backfills them, computed in Python
(``str.lower()``: SQLite's ``lower()`` folds only ASCII) from a copy of
``indexer.name_grams.name_grams`` as of this revision.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_BATCH = 5_000


def _grams(name: str) -> set[str]:
    folded = name.lower()
    return set(folded) | {folded[i : i + 2] for i in range(len(folded) - 1)}


def upgrade() -> None:
    grams = op.create_table(
        "subject_name_grams",
        sa.Column("gram", sa.String(2), nullable=False),
        sa.Column("subject_id", _BIG, nullable=False),
        sa.ForeignKeyConstraint(
            ["subject_id"],
            ["subjects.id"],
            ondelete="CASCADE",
            name=op.f("fk_subject_name_grams_subject_id_subjects"),
        ),
        sa.PrimaryKeyConstraint("gram", "subject_id", name=op.f("pk_subject_name_grams")),
    )
    bind = op.get_bind()
    subjects = sa.table("subjects", sa.column("id", _BIG), sa.column("name", sa.String))
    after = -1
    while True:
        chunk = bind.execute(
            sa.select(subjects.c.id, subjects.c.name)
            .where(subjects.c.id > after)
            .order_by(subjects.c.id)
            .limit(_BATCH)
        ).all()
        if not chunk:
            return
        rows = [{"gram": g, "subject_id": sid} for sid, name in chunk for g in sorted(_grams(name))]
        bind.execute(grams.insert(), rows)
        after = chunk[-1][0]


def downgrade() -> None:
    op.drop_table("subject_name_grams")
