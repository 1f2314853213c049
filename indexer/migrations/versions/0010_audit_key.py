"""``audit_log.key_id``: the audit trail is keyed (HMAC) from now on.

Revision ID: 0010_audit_key
Revises: 0009_write_authors
Create Date: 2026-12-07

Rows written from this revision on carry ``hash = HMAC-SHA-256(key, ...)`` and the id of the key
(a file outside the database, ``[audit] key_file``); rows already there keep their plain SHA-256
and ``key_id`` NULL, and still verify (indexer/audit.py). Adding a nullable column touches no
row, so the append-only triggers are not in the way.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_audit_key"
down_revision: str | None = "0009_write_authors"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("audit_log", sa.Column("key_id", sa.String(16), nullable=True))


def downgrade() -> None:
    # SQLite rebuilds the table to drop a column; its triggers would refuse nothing there, but the
    # copy must not lose them, so they are dropped and made again around it.
    if op.get_bind().dialect.name == "sqlite":
        for verb in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS audit_log_no_{verb}")
        with op.batch_alter_table("audit_log") as batch:
            batch.drop_column("key_id")
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"""CREATE TRIGGER audit_log_no_{verb.lower()} BEFORE {verb} ON audit_log
    BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END"""
            )
    else:
        op.drop_column("audit_log", "key_id")
