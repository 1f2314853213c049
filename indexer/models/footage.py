"""The centre, its rooms and cameras (synced from the configuration), and footage: segments, gaps and runs."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from indexer.models.base import (
    SEGMENT_SOURCES,
    Base,
    Hash,
    Ident,
    IntPK,
    Micros,
    one_of,
)

# --- the centre and its rooms (synced from the centre configuration) -------------------------


class Centre(Base):
    """The centre this database serves (one row in the embedded set-up; several in a fleet)."""

    __tablename__ = "centres"

    id: Mapped[Ident] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")


class Room(Base):
    __tablename__ = "rooms"

    id: Mapped[Ident] = mapped_column(primary_key=True)
    centre_id: Mapped[str | None] = mapped_column(String(64), ForeignKey("centres.id"))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))  # domain.types.RoomKind value
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_us: Mapped[Micros]


class Camera(Base):
    """A camera. ``room_id`` is NULL only for a camera known from footage alone (reindex)."""

    __tablename__ = "cameras"

    id: Mapped[Ident] = mapped_column(primary_key=True)
    room_id: Mapped[str | None] = mapped_column(String(64), ForeignKey("rooms.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    url: Mapped[str] = mapped_column(String(1000))  # credentials stripped
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Longest segment / gap ever stored for this camera: bounds overlap queries so they use
    # the (camera_id, start_us) index as a short range scan. Only ever grows.
    max_segment_us: Mapped[int] = mapped_column(BigInteger, default=0)
    max_gap_us: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_us: Mapped[Micros]


# --- footage ------------------------------------------------------------------------------------


class Segment(Base):
    """One closed, fsynced, uploaded segment file (``domain.types.SegmentRecord``)."""

    __tablename__ = "segments"
    __table_args__ = (
        # end_us in the key (revision 0006): the run-level footage answer counts and sums a stay's
        # segments from this index alone (SQLite always, PostgreSQL on all-visible pages).
        Index("ix_segments_camera_start_end", "camera_id", "start_us", "end_us"),
        Index("ix_segments_camera_end", "camera_id", "end_us"),
        CheckConstraint("end_us >= start_us", name="time_order"),
        one_of("source", SEGMENT_SOURCES, "source"),
    )

    id: Mapped[IntPK]
    camera_id: Mapped[str] = mapped_column(String(64), ForeignKey("cameras.id"))
    run_id: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(BigInteger)
    start_us: Mapped[Micros]
    end_us: Mapped[Micros]
    storage_key: Mapped[str] = mapped_column(String(512), unique=True)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[Hash]
    sm3: Mapped[str | None] = mapped_column(String(64))
    prev_sha256: Mapped[str | None] = mapped_column(String(64))
    clock_source: Mapped[str] = mapped_column(String(16))
    container: Mapped[str] = mapped_column(String(16))
    video_codec: Mapped[str] = mapped_column(String(16))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    audio_codec: Mapped[str | None] = mapped_column(String(16))
    audio_sample_rate: Mapped[int | None] = mapped_column(Integer)
    audio_channels: Mapped[int | None] = mapped_column(Integer)
    packets: Mapped[int] = mapped_column(BigInteger, default=0)
    recovered: Mapped[bool] = mapped_column(Boolean, default=False)
    source: Mapped[str] = mapped_column(String(16), default="camera")
    indexed_us: Mapped[Micros]


class Gap(Base):
    """An interval of a camera without footage, with its cause (``domain.types.GapRecord``)."""

    __tablename__ = "gaps"
    __table_args__ = (
        Index("ix_gaps_camera_start", "camera_id", "start_us"),
        CheckConstraint("end_us >= start_us", name="time_order"),
    )

    id: Mapped[IntPK]
    gap_id: Mapped[str] = mapped_column(String(200), unique=True)
    camera_id: Mapped[str] = mapped_column(String(64), ForeignKey("cameras.id"))
    start_us: Mapped[Micros]
    end_us: Mapped[Micros]
    cause: Mapped[str] = mapped_column(String(32))  # domain.types.GapCause value
    detail: Mapped[str] = mapped_column(Text, default="")
    indexed_us: Mapped[Micros]


class SegmentRun(Base):
    """A coverage run: one maximal stretch of a camera's time covered by its segments without a
    hole (segments that overlap or touch, ``end == next start``, are one run; zero-length
    segments cover nothing and make none). Kept by :mod:`indexer.segment_runs` in the same
    transaction as every segment insert, so footage answers read a few runs instead of
    thousands of segments. Runs of one camera never overlap nor touch.

    ``dirty``: a segment inside the run was deleted since (a database trigger sets it; nothing in
    the app deletes segments but the retention job): the run may now have holes, so readers
    compute that camera's coverage from the segments until :func:`indexer.segment_runs.repair`
    recomputes it.
    """

    __tablename__ = "segment_runs"
    __table_args__ = (CheckConstraint("end_us > start_us", name="time_order"),)

    camera_id: Mapped[str] = mapped_column(String(64), ForeignKey("cameras.id"), primary_key=True)
    start_us: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    end_us: Mapped[Micros]
    dirty: Mapped[bool] = mapped_column(Boolean, default=False)
