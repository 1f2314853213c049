"""``officer_cases``: the officer search's index (officer on the case or on one of its events).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-27

Search by officer joined ``procedure_event_officers`` to ``procedure_events`` for every event the
officer was on (about 2,000 per officer at 1M events) to find their cases: 34 ms p95 on SQLite and
54 ms on PostgreSQL at 10M segments / 1M events (docs/bench/index.md). The derived table holds one row per
(officer, case); ``CaseStore`` adds to it with every case officer and event officer it stores, and
this revision backfills it from both.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A copy of indexer.case_store.OFFICER_CASES_SQL as of this revision.
_BACKFILL = """
INSERT INTO officer_cases (officer_id, case_id)
SELECT officer_id, case_id FROM case_officers
UNION
SELECT eo.officer_id, e.case_id
FROM procedure_event_officers eo JOIN procedure_events e ON e.id = eo.event_id
WHERE e.case_id IS NOT NULL
"""

_BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "officer_cases",
        sa.Column("officer_id", _BIG, nullable=False),
        sa.Column("case_id", _BIG, nullable=False),
        sa.ForeignKeyConstraint(
            ["officer_id"],
            ["officers.id"],
            ondelete="CASCADE",
            name=op.f("fk_officer_cases_officer_id_officers"),
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["cases.id"], ondelete="CASCADE", name=op.f("fk_officer_cases_case_id_cases")
        ),
        sa.PrimaryKeyConstraint("officer_id", "case_id", name=op.f("pk_officer_cases")),
    )
    op.execute(_BACKFILL)


def downgrade() -> None:
    op.drop_table("officer_cases")
