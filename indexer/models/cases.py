"""Cases and the people in them, and what happened where: procedure events, location readings,
imported files (body-camera clips), exported ranges."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from indexer.models.base import (
    OBSERVATION_SOURCES,
    SUBJECT_ROLES,
    Author,
    Base,
    BigId,
    Hash,
    IntPK,
    JsonDoc,
    Micros,
    one_of,
)

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
        one_of("role", SUBJECT_ROLES, "role"),
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
        # revision 0011: the readings of a room in a range (search by room finds stays)
        Index("ix_location_observations_room_time", "room_id", "time_us"),
        CheckConstraint("subject_id IS NOT NULL OR officer_id IS NOT NULL", name="who"),
        one_of("source", OBSERVATION_SOURCES, "source"),
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
