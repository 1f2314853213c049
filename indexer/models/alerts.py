"""Tables of the risk alerts (revision 0005): the alert with its evidence, and its snapshot.

Imported at the end of ``indexer/models/`` so that ``Base.metadata`` holds these tables too.

Invariants:

* ``open_key`` is the alert's dedup key while it is open or acknowledged and NULL once
  resolved; its UNIQUE constraint makes "one open alert per dedup key" hold in the database
  itself (NULLs never collide on SQLite or PostgreSQL), so two engines, or one engine before
  and after a restart, can never hold two open alerts for one condition.
* ``start_us``/``end_us`` are the condition's time range (``end_us`` NULL while it still
  holds); the state columns say what people did about it. An alert is never deleted.
* The snapshot JPEG lives in ``risk_alert_snapshots`` as a blob, not in the evidence storage:
  it is written in the same transaction as (or right after) its alert, so a restart never
  finds an alert pointing at a missing object or an object without its alert; it is small
  (tens of kB); and it is not footage, so it must not fall under the footage's object lock
  and retention (a false alarm's picture would otherwise be kept for ten years).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from indexer.models.base import Base, BigId, IntPK, JsonDoc, Micros, one_of

ALERT_STATES = ("open", "acknowledged", "resolved")
SEVERITIES = ("high", "medium", "low")


class RiskAlert(Base):
    __tablename__ = "risk_alerts"
    __table_args__ = (
        one_of("state", ALERT_STATES, "state"),
        one_of("severity", SEVERITIES, "severity"),
        Index("ix_risk_alerts_state_raised", "state", "raised_us"),
        Index("ix_risk_alerts_case_id", "case_id"),
        Index("ix_risk_alerts_room_id_start", "room_id", "start_us"),
    )

    id: Mapped[IntPK]
    rule: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(8))
    dedup_key: Mapped[str] = mapped_column(String(200))
    open_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    state: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)
    case_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("cases.id"))
    subject_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("subjects.id"))
    room_id: Mapped[str | None] = mapped_column(String(64))
    camera_id: Mapped[str | None] = mapped_column(String(64))
    start_us: Mapped[Micros]
    end_us: Mapped[int | None] = mapped_column(BigInteger)
    raised_us: Mapped[Micros]
    last_seen_us: Mapped[Micros]
    occurrences: Mapped[int] = mapped_column(Integer, default=1)
    details: Mapped[dict[str, Any] | None] = mapped_column(JsonDoc)
    acknowledged_by: Mapped[str | None] = mapped_column(String(128))
    acknowledged_by_id: Mapped[int | None] = mapped_column(
        BigInteger
    )  # users.id (revision 0009_write_authors)
    acknowledged_us: Mapped[int | None] = mapped_column(BigInteger)
    resolved_by: Mapped[str | None] = mapped_column(String(128))
    resolved_by_id: Mapped[int | None] = mapped_column(BigInteger)  # users.id
    resolved_us: Mapped[int | None] = mapped_column(BigInteger)
    note: Mapped[str | None] = mapped_column(Text)


class RiskAlertSnapshot(Base):
    __tablename__ = "risk_alert_snapshots"

    alert_id: Mapped[int] = mapped_column(BigId, ForeignKey("risk_alerts.id"), primary_key=True)
    taken_us: Mapped[Micros]
    camera_id: Mapped[str | None] = mapped_column(String(64))
    jpeg: Mapped[bytes] = mapped_column(LargeBinary)
