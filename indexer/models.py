"""The system of record: SQLAlchemy 2 declarative models for every table the index keeps.

Conventions (they hold for every table, so later migrations should keep them):

* Every instant is a ``BigInteger`` count of microseconds since the Unix epoch, UTC, in a
  column whose name ends in ``_us``. Portable, exact, and fast to range-scan on SQLite and
  PostgreSQL alike. :func:`to_us` / :func:`from_us` convert to and from aware datetimes.
* Surrogate keys are 64-bit on PostgreSQL and SQLite's ``INTEGER PRIMARY KEY`` rowid.
* Natural ids that come from outside (room, camera, storage key, gap id, client ids of events)
  carry unique constraints: writes are idempotent by them.
* JSON columns are ``JSON`` (text on SQLite) and ``JSONB`` on PostgreSQL.
* Constraint names follow :data:`NAMING_CONVENTION` so migrations can drop them by name.
* Nothing that footage references is ever deleted: rooms and cameras are marked inactive.

The schema is created by the Alembic migrations in ``indexer/migrations``; the models must
stay in step with them (a test compares the migrated database with this metadata).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from domain.types import utc

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)


def to_us(dt: datetime) -> int:
    """Microseconds since the Unix epoch of an aware datetime (exact, no float rounding)."""
    return (utc(dt) - EPOCH) // _ONE_US


def from_us(us: int) -> datetime:
    """The aware UTC datetime of a microsecond count since the Unix epoch."""
    return EPOCH + timedelta(0, 0, us)  # positional: measurably cheaper in the footage hot loop


NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# 64-bit surrogate key; on SQLite only "INTEGER PRIMARY KEY" is the auto-incrementing rowid.
BigId = BigInteger().with_variant(Integer(), "sqlite")
JsonDoc = JSON().with_variant(JSONB(), "postgresql")

IntPK = Annotated[int, mapped_column(BigId, primary_key=True, autoincrement=True)]
Micros = Annotated[int, mapped_column(BigInteger)]
Ident = Annotated[str, mapped_column(String(64))]
Hash = Annotated[str, mapped_column(String(64))]
# The user (``users.id``) who wrote a row through the API; NULL for the system's own writes (imports,
# reindex, rows older than revision 0009_write_authors). No foreign key: ``users`` already refers to
# ``officers``, and a key back would make the two tables a cycle; accounts are disabled, never
# deleted, so an id stays meaningful.
Author = Annotated[int | None, mapped_column(BigInteger)]

SEGMENT_SOURCES = ("camera", "bodycam")
SUBJECT_ROLES = ("suspect", "witness", "victim")
OBSERVATION_SOURCES = ("wristband", "face", "manual")


def _one_of(column: str, values: tuple[str, ...], name: str) -> CheckConstraint:
    quoted = ", ".join(f"'{v}'" for v in values)
    return CheckConstraint(f"{column} IN ({quoted})", name=name)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


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
        _one_of("source", SEGMENT_SOURCES, "source"),
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


# --- cases, people ------------------------------------------------------------------------------


class Case(Base):
    __tablename__ = "cases"
    __table_args__ = (
        # Prefix search (``case_number LIKE 'p%'``) on PostgreSQL: the unique index follows the
        # database collation, which LIKE cannot range-scan unless it is "C"; text_pattern_ops
        # can. SQLite range-scans the unique index itself (search uses a BINARY range there),
        # so its copy of this index is partial and empty (``WHERE 0``): no space, no write cost.
        Index(
            "ix_cases_case_number_pattern",
            "case_number",
            postgresql_ops={"case_number": "text_pattern_ops"},
            sqlite_where=text("0"),
        ),
    )

    id: Mapped[IntPK]
    case_number: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(500))
    charge: Mapped[str] = mapped_column(String(200))  # 案由
    recording_mandatory: Mapped[bool] = mapped_column(Boolean, default=True)
    serious: Mapped[bool] = mapped_column(Boolean, default=False)  # 24 h limit instead of 12 h
    created_us: Mapped[Micros]
    created_by: Mapped[Author]


class Subject(Base):
    """A person the case is about: suspect, witness or victim."""

    __tablename__ = "subjects"
    __table_args__ = (
        _one_of("role", SUBJECT_ROLES, "role"),
        # Name substring search (``name LIKE '%x%'``) on PostgreSQL: a trigram GIN index (pg_trgm,
        # revision 0006). SQLite has no trigram index type; it scans, and its copy is an empty
        # partial index (``WHERE 0``) so both schemas match these models.
        Index(
            "ix_subjects_name_trgm",
            "name",
            postgresql_using="gin",
            postgresql_ops={"name": "gin_trgm_ops"},
            sqlite_where=text("0"),
        ),
    )

    id: Mapped[IntPK]
    case_id: Mapped[int] = mapped_column(BigId, ForeignKey("cases.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    id_number: Mapped[str | None] = mapped_column(String(64), index=True)
    role: Mapped[str] = mapped_column(String(16))
    minor: Mapped[bool] = mapped_column(Boolean, default=False)
    guardian_name: Mapped[str | None] = mapped_column(String(200))
    wristband_id: Mapped[str | None] = mapped_column(String(64), index=True)
    created_by: Mapped[Author]


class Officer(Base):
    __tablename__ = "officers"

    id: Mapped[IntPK]
    name: Mapped[str] = mapped_column(String(200))
    badge_number: Mapped[str] = mapped_column(String(64), unique=True)
    unit: Mapped[str | None] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_by: Mapped[Author]


class CaseOfficer(Base):
    __tablename__ = "case_officers"

    case_id: Mapped[int] = mapped_column(BigId, ForeignKey("cases.id"), primary_key=True)
    # The primary key leads with case_id; search by officer needs its own index.
    officer_id: Mapped[int] = mapped_column(BigId, ForeignKey("officers.id"), primary_key=True, index=True)
    role: Mapped[str | None] = mapped_column(String(32))  # lead, assist, recorder, interpreter
    created_by: Mapped[Author]


# --- what happened where (REST input from the centre's systems) --------------------------------


class ProcedureEvent(Base):
    """An officer's action or a system event (entry, search, interrogation start/end, ...)."""

    __tablename__ = "procedure_events"
    __table_args__ = (
        Index("ix_procedure_events_subject_time", "subject_id", "time_us"),
        Index("ix_procedure_events_room_time", "room_id", "time_us"),
        # search: event type + window; case_id in the key so the total (count of distinct cases)
        # is an index-only scan (revision 0006 replaced the (type, time_us) index of 0002)
        Index("ix_procedure_events_type_time_case", "type", "time_us", "case_id"),
        Index("ix_procedure_events_time_us", "time_us"),  # search: time window alone
    )

    id: Mapped[IntPK]
    client_id: Mapped[str] = mapped_column(String(128), unique=True)  # idempotency key
    type: Mapped[str] = mapped_column(String(64))
    time_us: Mapped[Micros]
    room_id: Mapped[str | None] = mapped_column(String(64), ForeignKey("rooms.id"))
    case_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("cases.id"), index=True)
    subject_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("subjects.id"))
    payload: Mapped[dict[str, Any]] = mapped_column(JsonDoc, default=dict)
    received_us: Mapped[Micros]
    created_by: Mapped[Author]
    # A late entry (revision 0009_write_authors): written more than ``api.late_entry_hours`` after its
    # time, or inside a range already exported to disc; only a supervisor, legal or admin user may
    # write one, and the timeline and the disc mark it (who: created_by, when: received_us).
    late: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    # A supervisor (legal, admin) vouched for a reading an officer wrote: it then counts for that
    # officer's footage window (pipeline/api/footage_access.py).
    confirmed_by: Mapped[Author]
    confirmed_us: Mapped[int | None] = mapped_column(BigInteger)


class ProcedureEventOfficer(Base):
    __tablename__ = "procedure_event_officers"

    event_id: Mapped[int] = mapped_column(BigId, ForeignKey("procedure_events.id"), primary_key=True)
    officer_id: Mapped[int] = mapped_column(BigId, ForeignKey("officers.id"), primary_key=True, index=True)


class OfficerCase(Base):
    """Derived: the officer is on the case or on one of its events. Kept by ``CaseStore`` with every
    case officer and event officer it stores (revision 0007 backfilled it), so "cases of officer X"
    is one index range instead of a join through every event the officer was on."""

    __tablename__ = "officer_cases"

    officer_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("officers.id", ondelete="CASCADE"), primary_key=True
    )
    case_id: Mapped[int] = mapped_column(BigId, ForeignKey("cases.id", ondelete="CASCADE"), primary_key=True)


class SubjectNameGram(Base):
    """Derived: each one- and two-character piece of a subject's lower-cased name (the name search's
    index, revision 0008). A substring search reads the subjects that hold the query's pieces and
    checks ``LIKE`` on those only; neither database has a B-tree for infix matches, and trigram
    indexes miss the two-character Chinese names people search by. Kept by ``CaseStore``."""

    __tablename__ = "subject_name_grams"

    gram: Mapped[str] = mapped_column(String(2), primary_key=True)
    subject_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("subjects.id", ondelete="CASCADE"), primary_key=True
    )


class LocationObservation(Base):
    """A person seen in a room (wristband reader, face recognition at a door, or manual entry)."""

    __tablename__ = "location_observations"
    __table_args__ = (
        Index("ix_location_observations_subject_time", "subject_id", "time_us"),
        Index("ix_location_observations_officer_time", "officer_id", "time_us"),
        CheckConstraint("subject_id IS NOT NULL OR officer_id IS NOT NULL", name="who"),
        _one_of("source", OBSERVATION_SOURCES, "source"),
    )

    id: Mapped[IntPK]
    client_id: Mapped[str] = mapped_column(String(128), unique=True)
    subject_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("subjects.id"))
    officer_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("officers.id"))
    room_id: Mapped[str] = mapped_column(String(64), ForeignKey("rooms.id"))
    time_us: Mapped[Micros]
    source: Mapped[str] = mapped_column(String(16))
    received_us: Mapped[Micros]
    created_by: Mapped[Author]
    # A late entry (revision 0009_write_authors): written more than ``api.late_entry_hours`` after its
    # time, or inside a range already exported to disc; only a supervisor, legal or admin user may
    # write one, and the timeline and the disc mark it (who: created_by, when: received_us).
    late: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    # A supervisor (legal, admin) vouched for a reading an officer wrote: it then counts for that
    # officer's footage window (pipeline/api/footage_access.py).
    confirmed_by: Mapped[Author]
    confirmed_us: Mapped[int | None] = mapped_column(BigInteger)


class ImportedFile(Base):
    """A body-worn camera (执法记录仪) clip imported into storage."""

    __tablename__ = "imported_files"
    __table_args__ = (
        Index("ix_imported_files_officer_start", "officer_id", "start_us"),
        Index("ix_imported_files_device_start", "device_id", "start_us"),
    )

    id: Mapped[IntPK]
    device_id: Mapped[str] = mapped_column(String(64))
    officer_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("officers.id"))
    storage_key: Mapped[str] = mapped_column(String(512), unique=True)
    original_name: Mapped[str] = mapped_column(String(500), default="")
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[Hash]
    sm3: Mapped[str | None] = mapped_column(String(64))
    start_us: Mapped[Micros]
    end_us: Mapped[Micros]
    duration_us: Mapped[Micros]
    container: Mapped[str] = mapped_column(String(16))
    video_codec: Mapped[str | None] = mapped_column(String(16))
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    audio_codec: Mapped[str | None] = mapped_column(String(16))
    audio_sample_rate: Mapped[int | None] = mapped_column(Integer)
    audio_channels: Mapped[int | None] = mapped_column(Integer)
    evidence: Mapped[bool] = mapped_column(Boolean, default=False)  # kept permanently
    imported_us: Mapped[Micros]
    created_by: Mapped[Author]


class ExportedRange(Base):
    """A subject's time range that went onto a court disc (one row per finished export). A reading
    or event inside one changes what a disc already sealed says, so it is a late entry."""

    __tablename__ = "exported_ranges"
    __table_args__ = (
        Index("ix_exported_ranges_subject_start", "subject_id", "start_us"),
        Index("ix_exported_ranges_case_id", "case_id"),
    )

    id: Mapped[IntPK]
    case_id: Mapped[int] = mapped_column(BigId, ForeignKey("cases.id"))
    subject_id: Mapped[int] = mapped_column(BigId, ForeignKey("subjects.id"))
    start_us: Mapped[Micros]
    end_us: Mapped[Micros]
    export_id: Mapped[str] = mapped_column(String(64))
    exported_us: Mapped[Micros]


class ImportedFileSubject(Base):
    __tablename__ = "imported_file_subjects"

    file_id: Mapped[int] = mapped_column(BigId, ForeignKey("imported_files.id"), primary_key=True)
    subject_id: Mapped[int] = mapped_column(BigId, ForeignKey("subjects.id"), primary_key=True, index=True)


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
from indexer import alert_models as _alert_models  # noqa: E402, F401  (risk alerts, revision 0005)
from indexer import fleet_models as _fleet_models  # noqa: E402, F401  (tables of revision 0004)
from indexer import user_models as _user_models  # noqa: E402, F401  (users and credentials tables)
