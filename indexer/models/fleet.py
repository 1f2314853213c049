"""Tables of the recorder fleet and of evidence retention (revision 0004).

* ``recorder_nodes``: one row per recording node, its heartbeat and when it is presumed dead.
* ``camera_leases``: which node records which camera until when (see ``indexer/leases.py``).
* ``legal_holds`` and ``legal_hold_objects``: a hold placed on a case's footage and the storage
  keys it covers; while any unreleased hold names a key, retention never deletes it.

Imported at the end of ``indexer/models/`` so that ``Base.metadata`` holds these tables too.

Invariants the code keeps (and a reviewer can check with SQL):

* A camera is recorded by the node named in its lease row only while ``expires_us`` is in the
  future. A node renews every ``fleet.renew_seconds`` (at most half the lease time), so a live
  node never lets a lease lapse; a node that stops renewing loses every lease at once.
* ``generation`` only grows: ``(camera_id, generation)`` names one tenure. Logs carry it, so two
  nodes that both believe they record a camera (a partition) can be told apart afterwards.
* ``previous_node_id`` is the holder before the current tenure: the dead node for an expired
  lease, the releasing node for a released one, NULL when the camera was free (first start) or
  held by this same node before (its own restart). The new holder names its first gap from it
  (``node_failover`` or ``recorder_restart``).
* ``recorder_nodes.expires_us`` follows the same clock as the leases (the nodes' wall clocks;
  they must be NTP-synchronised, which a recording system needs anyway for its time codes).
  Rows of dead nodes stay (history); only live rows count for the fair share.
* A storage key listed in ``legal_hold_objects`` under a hold whose ``released_us`` is NULL is
  never deleted by retention, whatever its age; the storage back end also refuses (S3 legal
  hold, or the local marker), so a crash between the row and the storage call errs on the side
  of keeping. Hold rows are never deleted; a release only stamps ``released_us``/``released_by``.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Index, Select, String, Text, select
from sqlalchemy.orm import Mapped, mapped_column

from indexer.models.base import Base, BigId, Ident, IntPK, Micros


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
    # Chain state of the camera when its last holder released it (from that node's spool, which
    # is ahead of the index while its last segments are still being uploaded).
    released_seq: Mapped[int | None] = mapped_column(BigInteger)
    released_sha256: Mapped[str | None] = mapped_column(String(64))
    released_end_us: Mapped[int | None] = mapped_column(BigInteger)


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


def active_hold_keys() -> Select[str]:
    """SELECT of the storage keys covered by at least one unreleased legal hold."""
    return (
        select(LegalHoldObject.storage_key)
        .join(LegalHold, LegalHold.id == LegalHoldObject.hold_id)
        .where(LegalHold.released_us.is_(None))
    )


__all__ = [
    "CameraLease",
    "LegalHold",
    "LegalHoldObject",
    "RecorderNode",
    "active_hold_keys",
]
