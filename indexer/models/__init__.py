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

from indexer.models.alerts import (
    ALERT_STATES,
    SEVERITIES,
    RiskAlert,
    RiskAlertSnapshot,
)
from indexer.models.audit import (
    AuditEntry,
)
from indexer.models.base import (
    EPOCH,
    NAMING_CONVENTION,
    OBSERVATION_SOURCES,
    SEGMENT_SOURCES,
    SUBJECT_ROLES,
    Author,
    Base,
    BigId,
    Hash,
    Ident,
    IntPK,
    JsonDoc,
    Micros,
    from_us,
    one_of,
    to_us,
)
from indexer.models.cases import (
    Case,
    CaseOfficer,
    ExportedRange,
    ImportedFile,
    ImportedFileSubject,
    LocationObservation,
    Officer,
    OfficerCase,
    ProcedureEvent,
    ProcedureEventOfficer,
    Subject,
    SubjectNameGram,
)
from indexer.models.fleet import (
    CameraLease,
    LegalHold,
    LegalHoldObject,
    RecorderNode,
    active_hold_keys,
)
from indexer.models.footage import (
    Camera,
    Centre,
    Gap,
    Room,
    Segment,
    SegmentRun,
)
from indexer.models.users import (
    CREDENTIAL_KINDS,
    ROLES,
    Credential,
    LoginThrottle,
    User,
)

__all__ = [
    "ALERT_STATES",
    "CREDENTIAL_KINDS",
    "EPOCH",
    "NAMING_CONVENTION",
    "OBSERVATION_SOURCES",
    "ROLES",
    "SEGMENT_SOURCES",
    "SEVERITIES",
    "SUBJECT_ROLES",
    "AuditEntry",
    "Author",
    "Base",
    "BigId",
    "Camera",
    "CameraLease",
    "Case",
    "CaseOfficer",
    "Centre",
    "Credential",
    "ExportedRange",
    "Gap",
    "Hash",
    "Ident",
    "ImportedFile",
    "ImportedFileSubject",
    "IntPK",
    "JsonDoc",
    "LegalHold",
    "LegalHoldObject",
    "LocationObservation",
    "LoginThrottle",
    "Micros",
    "Officer",
    "OfficerCase",
    "ProcedureEvent",
    "ProcedureEventOfficer",
    "RecorderNode",
    "RiskAlert",
    "RiskAlertSnapshot",
    "Room",
    "Segment",
    "SegmentRun",
    "Subject",
    "SubjectNameGram",
    "User",
    "active_hold_keys",
    "from_us",
    "one_of",
    "to_us",
]
