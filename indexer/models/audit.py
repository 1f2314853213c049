"""The audit trail's table (indexer/audit.py writes and checks it)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from indexer.models.base import (
    Base,
    IntPK,
    JsonDoc,
    Micros,
)

# --- the audit trail ----------------------------------------------------------------------------


class AuditEntry(Base):
    """Append-only, hash-chained log of access to originals and every change of record.

    The migration installs triggers that refuse UPDATE and DELETE on this table.
    ``hash`` = HMAC(key, prev_hash + canonical entry), ``key_id`` naming the key (revision
    0010_audit_key; NULL: a row from before, plain SHA-256). indexer/audit.py writes and checks it.
    """

    __tablename__ = "audit_log"

    seq: Mapped[IntPK]
    time_us: Mapped[Micros]
    user: Mapped[str] = mapped_column("user_name", String(128))  # "user" is reserved in SQL
    action: Mapped[str] = mapped_column(String(64))
    object: Mapped[str] = mapped_column(String(500))
    client_addr: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JsonDoc)
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    key_id: Mapped[str | None] = mapped_column(String(16))
