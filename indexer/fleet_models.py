"""Tables of the recorder fleet and of evidence retention (revision 0003).

* ``recorder_nodes``: one row per recording node, its heartbeat and when it is presumed dead.
* ``camera_leases``: which node records which camera until when (see ``indexer/leases.py``).
* ``legal_holds`` and ``legal_hold_objects``: a hold placed on a case's footage and the storage
  keys it covers; while any unreleased hold names a key, retention never deletes it.

Imported at the end of ``indexer/models.py`` so that ``Base.metadata`` holds these tables too.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from indexer.models import Base, BigId, Ident, IntPK, Micros


class RecorderNode(Base):
    """A recording node (``vaudit recorder``); live while ``expires_us`` is in the future."""

    __tablename__ = "recorder_nodes"

    id: Mapped[Ident] = mapped_column(primary_key=True)
    host: Mapped[str] = mapped_column(String(200), default="")
    started_us: Mapped[Micros]
    heartbeat_us: Mapped[Micros]
    expires_us: Mapped[Micros]


class CameraLease(Base):
    """The right to record one camera. ``node_id`` NULL (or ``expires_us`` past) = free.

    ``generation`` grows by one at every acquisition (a fencing token); ``previous_node_id`` is
    who held it before, so the new holder knows whether it takes over from another node.
    """

    __tablename__ = "camera_leases"
    __table_args__ = (Index("ix_camera_leases_node_id", "node_id"),)

    camera_id: Mapped[str] = mapped_column(String(64), ForeignKey("cameras.id"), primary_key=True)
    node_id: Mapped[str | None] = mapped_column(String(64))
    expires_us: Mapped[int] = mapped_column(BigInteger, default=0)
    acquired_us: Mapped[int] = mapped_column(BigInteger, default=0)
    generation: Mapped[int] = mapped_column(BigInteger, default=0)
    previous_node_id: Mapped[str | None] = mapped_column(String(64))
    previous_expires_us: Mapped[int | None] = mapped_column(BigInteger)


class LegalHold(Base):
    """A legal hold on a case's footage; ``released_us`` NULL while it holds."""

    __tablename__ = "legal_holds"

    id: Mapped[IntPK]
    case_id: Mapped[int] = mapped_column(BigId, ForeignKey("cases.id"), index=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    placed_by: Mapped[str] = mapped_column(String(128))
    placed_us: Mapped[Micros]
    released_by: Mapped[str | None] = mapped_column(String(128))
    released_us: Mapped[int | None] = mapped_column(BigInteger)


class LegalHoldObject(Base):
    """A storage object (segment media, its sidecar, an imported clip) covered by a hold."""

    __tablename__ = "legal_hold_objects"

    hold_id: Mapped[int] = mapped_column(BigId, ForeignKey("legal_holds.id"), primary_key=True)
    storage_key: Mapped[str] = mapped_column(String(512), primary_key=True, index=True)
