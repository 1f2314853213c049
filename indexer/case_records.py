"""Plain data in and out of the case store, and the row → data converters.

Kept apart from :mod:`indexer.case_store` so the API, search and footage modules can share
the types without importing the store's SQL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from domain.errors import Forbidden, ValidationFailed
from domain.types import CaseEvent, EventType, ObservationSource
from indexer.models import from_us

# --- plain data in and out -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewCase:
    case_number: str
    title: str
    charge: str
    recording_mandatory: bool = True
    serious: bool = False


@dataclass(frozen=True, slots=True)
class CaseInfo(NewCase):
    id: int = 0
    created: datetime | None = None


@dataclass(frozen=True, slots=True)
class NewSubject:
    case_id: int
    name: str
    role: str
    id_number: str | None = None
    minor: bool = False
    guardian_name: str | None = None
    wristband_id: str | None = None


@dataclass(frozen=True, slots=True)
class SubjectInfo(NewSubject):
    id: int = 0


@dataclass(frozen=True, slots=True)
class NewOfficer:
    name: str
    badge_number: str
    unit: str | None = None


@dataclass(frozen=True, slots=True)
class OfficerInfo(NewOfficer):
    id: int = 0
    active: bool = True


@dataclass(frozen=True, slots=True)
class NewEvent:
    client_id: str
    type: EventType
    time: datetime
    room_id: str | None = None
    case_id: int | None = None
    subject_id: int | None = None
    officer_ids: tuple[int, ...] = ()
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Entry:
    """Who entered a reading (event or location observation) and when, and whether it is a late
    entry or was confirmed by a supervisor. ``by`` is the author's user name (None: the system)."""

    by: str | None = None
    at: datetime | None = None
    late: bool = False
    confirmed_by: str | None = None
    confirmed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class StoredEvent:
    event: CaseEvent
    case_id: int | None
    created: bool = False
    entry: Entry = Entry()


@dataclass(frozen=True, slots=True)
class NewObservation:
    client_id: str
    room_id: str
    time: datetime
    source: ObservationSource
    subject_id: int | None = None
    officer_id: int | None = None


@dataclass(frozen=True, slots=True)
class StoredObservation(NewObservation):
    created: bool = False
    entry: Entry = Entry()


@dataclass(frozen=True, slots=True)
class Writer:
    """Who writes through the API, and the bounds of what they may write.

    ``cases`` None: any case (supervisor, legal, admin, and the system itself); otherwise the only
    cases this writer may write into (an officer's). ``officer_id``: the writer's own officer
    record, the one officer whose location they may report without a subject. ``late_allowed``:
    may write late entries (see :class:`indexer.case_store.CaseStore`)."""

    user_id: int | None = None
    name: str = "system"
    cases: frozenset[int] | None = None
    officer_id: int | None = None
    late_allowed: bool = True


SYSTEM = Writer()


@dataclass
class Problems:
    """Field-level validation messages collected over a whole batch, raised together."""

    fields: list[dict[str, str]] = field(default_factory=list)

    def add(self, loc: str, message: str) -> None:
        self.fields.append({"field": loc, "message": message})

    def raise_if_any(self, what: str) -> None:
        if self.fields:
            summary = "; ".join(f"{f['field']}: {f['message']}" for f in self.fields[:5])
            raise ValidationFailed(f"{what} refused: {summary}", fields=self.fields)


@dataclass
class Refusals(Problems):
    """Like :class:`Problems`, for what the writer may not do (403 instead of 422)."""

    def raise_if_any(self, what: str) -> None:
        if self.fields:
            summary = "; ".join(f"{f['field']}: {f['message']}" for f in self.fields[:5])
            raise Forbidden(f"{what} refused: {summary}", fields=self.fields)


def item_loc(prefix: str, index: int | None, name: str) -> str:
    """``body.room_id`` for a single item, ``body.3.room_id`` for item 3 of a batch."""
    return f"{prefix}.{name}" if index is None else f"{prefix}.{index}.{name}"


def replace_id(new: NewSubject, new_id: int) -> SubjectInfo:
    return SubjectInfo(**{f: getattr(new, f) for f in NewSubject.__dataclass_fields__}, id=new_id)


# --- row → plain data --------------------------------------------------------------------------


def case_from_row(r: Mapping[Any, Any]) -> CaseInfo:
    return CaseInfo(
        case_number=r["case_number"],
        title=r["title"],
        charge=r["charge"],
        recording_mandatory=bool(r["recording_mandatory"]),
        serious=bool(r["serious"]),
        id=int(r["id"]),
        created=from_us(r["created_us"]),
    )


def subject_from_row(r: Mapping[Any, Any]) -> SubjectInfo:
    return SubjectInfo(
        case_id=int(r["case_id"]),
        name=r["name"],
        role=r["role"],
        id_number=r["id_number"],
        minor=bool(r["minor"]),
        guardian_name=r["guardian_name"],
        wristband_id=r["wristband_id"],
        id=int(r["id"]),
    )


def officer_from_row(r: Mapping[Any, Any]) -> OfficerInfo:
    return OfficerInfo(
        name=r["name"],
        badge_number=r["badge_number"],
        unit=r["unit"],
        id=int(r["id"]),
        active=bool(r["active"]),
    )


def event_from_row(r: Mapping[Any, Any]) -> CaseEvent:
    return CaseEvent(
        event_id=r["client_id"],
        type=EventType(r["type"]),
        time=from_us(r["time_us"]),
        room_id=r["room_id"],
        subject_id=None if r["subject_id"] is None else int(r["subject_id"]),
        officer_ids=tuple(r.get("officer_ids", ())),
        payload=dict(r["payload"] or {}),
    )
