"""Cases, subjects, officers, procedure events, location observations and imported files.

Every public method opens its own session and transaction, so one :class:`CaseStore` may be
shared by many threads (the API's worker threads do).

Writes that come from other systems are idempotent by a natural or client-supplied key:
case number, badge number, the client ``id`` of an event or observation, the storage key of
an imported file. Writing the same thing again returns the stored row (``created=False``);
writing *different* content under an existing key raises :class:`ConflictError`. The insert
is ``INSERT ... ON CONFLICT DO NOTHING`` followed by a comparison, so two writers racing
with the same key cannot both insert, and the loser still gets an honest answer. The conflict
says only that the key was reused with other content, never which stored fields differ: the
stored row may be someone else's (a case the caller cannot read).

Every write takes a :class:`Writer` (default: the system): its user id is stored with the row
(``created_by``), and an officer's writer names the only cases they may write into; anything
else is :class:`Forbidden` before a row is written. A reading (event, location observation)
whose time is older than ``late_after`` when written, or inside a range already exported to
disc, is a *late entry*: stored with ``late`` set, and refused (Forbidden) for a writer without
``late_allowed``. A replay of a stored row writes nothing, so it is never refused as late.

References (rooms, subjects, officers, cases) are checked before writing so that a bad
reference is a :class:`ValidationFailed` with a field-level message, never a foreign-key
error from the database.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Select, Table, func, or_, select, text, update
from sqlalchemy.orm import Session

from domain.errors import ConflictError, Forbidden, NotFoundError, ValidationFailed
from domain.types import EventType, ObservationSource, RoomKind
from indexer.case_records import (
    SYSTEM,
    CaseInfo,
    Entry,
    NewCase,
    NewEvent,
    NewObservation,
    NewOfficer,
    NewSubject,
    OfficerInfo,
    Problems,
    Refusals,
    StoredEvent,
    StoredObservation,
    SubjectInfo,
    Writer,
    case_from_row,
    event_from_row,
    item_loc,
    officer_from_row,
    replace_id,
    subject_from_row,
)
from indexer.database import DB_INT_MAX, dialect_insert, mapped_transaction, session_factory
from indexer.models import Base, from_us, to_us
from indexer.name_grams import add_grams, rebuild_grams
from indexer.trajectory import Observation

log = logging.getLogger(__name__)

T: Mapping[str, Table] = Base.metadata.tables
CASES, SUBJECTS, OFFICERS = T["cases"], T["subjects"], T["officers"]
CASE_OFFICERS, ROOMS = T["case_officers"], T["rooms"]
OFFICER_CASES = T["officer_cases"]
# officer_cases from its sources; revision 0007 keeps its own copy (a migration must not change when
# this does).
OFFICER_CASES_SQL = """
INSERT INTO officer_cases (officer_id, case_id)
SELECT officer_id, case_id FROM case_officers
UNION
SELECT eo.officer_id, e.case_id
FROM procedure_event_officers eo JOIN procedure_events e ON e.id = eo.event_id
WHERE e.case_id IS NOT NULL
"""
EVENTS, EVENT_OFFICERS = T["procedure_events"], T["procedure_event_officers"]
OBSERVATIONS = T["location_observations"]
USERS, EXPORTED = T["users"], T["exported_ranges"]
# Keys of a reading's row that say who wrote it and when, not what it says: a replay by another
# user, or after the late-entry window, is still the same reading.
_NOT_CONTENT = frozenset({"received_us", "created_by", "late"})

_CHUNK = 500  # rows per multi-VALUES insert: well under SQLite's bound-parameter limit


def _now() -> datetime:
    return datetime.now(UTC)


class CaseStore:
    """Case data in the index. Thread-safe: one session per call."""

    def __init__(
        self,
        engine: Engine,
        max_future: timedelta = timedelta(minutes=5),
        clock: Callable[[], datetime] = _now,
        late_after: timedelta | None = None,
    ) -> None:
        """``late_after``: readings older than this when written are late entries (None: only
        those inside an exported range are)."""
        self._engine = engine
        self._sessions = session_factory(engine)
        # Reads of several statements on PostgreSQL: READ COMMITTED gives each statement its own
        # snapshot inside a transaction too, so the BEGIN and ROLLBACK round trips buy nothing.
        reads = (
            engine.execution_options(isolation_level="AUTOCOMMIT")
            if engine.dialect.name == "postgresql"
            else engine
        )
        self._read_sessions = session_factory(reads)
        self._max_future = max_future
        self._clock = clock
        self._late_after = late_after

    @property
    def engine(self) -> Engine:
        return self._engine

    def now(self) -> datetime:
        return self._clock()

    @property
    def max_future(self) -> timedelta:
        return self._max_future

    # --- plumbing ----------------------------------------------------------------------------

    def session(self, what: str) -> AbstractContextManager[Session]:
        """A transaction; database errors become the project's errors (never a bare 500)."""
        return mapped_transaction(self._sessions, what)

    def read_session(self, what: str) -> AbstractContextManager[Session]:
        """Like :meth:`session`, for reads only (no transaction round trips on PostgreSQL)."""
        return mapped_transaction(self._read_sessions, what)

    def insert_for(self, table: Table) -> Any:
        return dialect_insert(self._engine, table)

    def _link_officers(self, s: Session, pairs: Sequence[tuple[int, int]]) -> None:
        """Record (officer, case) in ``officer_cases``, the officer search's index."""
        rows = [{"officer_id": o, "case_id": c} for o, c in sorted(set(pairs))]
        for i in range(0, len(rows), _CHUNK):
            s.execute(
                self.insert_for(OFFICER_CASES)
                .values(rows[i : i + _CHUNK])
                .on_conflict_do_nothing(index_elements=["officer_id", "case_id"])
            )

    def rebuild_officer_cases(self) -> int:
        """Recompute ``officer_cases`` from the case and event officers (after a bulk load that
        bypassed this store); returns the number of rows."""
        with self.session("rebuild officer_cases") as s:
            s.execute(OFFICER_CASES.delete())
            s.execute(text(OFFICER_CASES_SQL))
            return int(s.execute(select(func.count()).select_from(OFFICER_CASES)).scalar_one())

    def rebuild_name_grams(self) -> int:
        """Recompute ``subject_name_grams`` from the subjects (after a bulk load that bypassed this
        store); returns the number of rows."""
        with self.session("rebuild subject_name_grams") as s:
            return rebuild_grams(s)

    def insert_new(self, s: Session, table: Table, row: dict[str, Any], key: str) -> int | None:
        """Insert ``row`` unless its ``key`` exists; the new id, or None if it was there."""
        stmt = (
            self.insert_for(table)
            .values(row)
            .on_conflict_do_nothing(index_elements=[key])
            .returning(table.c.id)
        )
        got = s.execute(stmt).scalar()
        return None if got is None else int(got)

    @staticmethod
    def same_or_conflict(what: str, want: Mapping[str, Any], have: Mapping[Any, Any]) -> None:
        if any(have.get(k) != v for k, v in want.items()):
            raise ConflictError(f"{what}: the key was reused with different content", key=what)

    @staticmethod
    def check_case(writer: Writer, case_id: int | None, loc: str, refusals: Problems) -> None:
        """Note a refusal unless ``writer`` may write into ``case_id`` (None: no case at all)."""
        if writer.cases is None:
            return
        if case_id is None:
            refusals.add(loc, "officers write into their own cases only: give the subject or case")
        elif case_id not in writer.cases:
            refusals.add(loc, f"case {case_id} is not one of your cases")

    @staticmethod
    def require_case(writer: Writer, case_id: int, loc: str = "path.case_id") -> None:
        refusals = Refusals()
        CaseStore.check_case(writer, case_id, loc, refusals)
        refusals.raise_if_any("write")

    def _check_time(self, problems: Problems, loc: str, when: datetime) -> int:
        if when.tzinfo is None:
            problems.add(loc, "needs a time zone (e.g. Z or +08:00)")
            return 0
        limit = self._clock() + self._max_future
        if when > limit:
            seconds = self._max_future.total_seconds()
            problems.add(loc, f"is more than {seconds:g} s in the future")
        return to_us(when)

    @staticmethod
    def existing(s: Session, table: Table, ids: Iterable[Any]) -> set[Any]:
        wanted = {i for i in ids if i is not None}
        if not wanted:
            return set()
        return set(s.execute(select(table.c.id).where(table.c.id.in_(wanted))).scalars())

    # --- cases ---------------------------------------------------------------------------------

    def create_case(self, new: NewCase, writer: Writer = SYSTEM) -> tuple[CaseInfo, bool]:
        """(case, created). Same case number with other content → ConflictError.

        An officer (``writer.cases`` set) who creates a case is attached to it as its lead, so it
        is theirs to read and write; an existing case number that is not theirs is Forbidden
        (before its content is compared, so nothing of it is told)."""
        row = {
            "case_number": new.case_number,
            "title": new.title,
            "charge": new.charge,
            "recording_mandatory": new.recording_mandatory,
            "serious": new.serious,
        }
        if writer.cases is not None and writer.officer_id is None:
            raise Forbidden("this account has no officer record: it cannot be attached to a case it creates")
        with self.session(f"create case {new.case_number}") as s:
            stamped = {**row, "created_us": to_us(self._clock()), "created_by": writer.user_id}
            new_id = self.insert_new(s, CASES, stamped, "case_number")
            have = s.execute(select(CASES).where(CASES.c.case_number == new.case_number)).mappings().one()
            if new_id is None:
                self.require_case(writer, int(have["id"]), "body.case_number")
                self.same_or_conflict(f"case {new.case_number}", row, have)
            elif writer.cases is not None and writer.officer_id is not None:
                link = {"case_id": new_id, "officer_id": writer.officer_id, "role": "lead"}
                s.execute(CASE_OFFICERS.insert().values(**link, created_by=writer.user_id))
                self._link_officers(s, [(writer.officer_id, new_id)])
        return case_from_row(have), new_id is not None

    def case_id(self, case: str) -> int:
        """The id of a case given by its number, or by its id as digits; NotFoundError if none.
        The one place that reads "case number or id" (the CLI, exports, legal holds)."""
        with self.session(f"case {case}") as s:
            row = s.execute(select(CASES.c.id).where(CASES.c.case_number == case)).first()
            if row is None and case.isdigit() and int(case) <= DB_INT_MAX:  # beyond: no such id
                row = s.execute(select(CASES.c.id).where(CASES.c.id == int(case))).first()
        if row is None:
            raise NotFoundError(f"no case with number or id {case!r}", case=case)
        return int(row[0])

    def get_case(self, case_id: int) -> CaseInfo:
        with self.session(f"case {case_id}") as s:
            row = s.execute(select(CASES).where(CASES.c.id == case_id)).mappings().first()
        if row is None:
            raise NotFoundError(f"case {case_id} does not exist", case_id=case_id)
        return case_from_row(row)

    def add_case_officer(
        self, case_id: int, officer_id: int, role: str | None, writer: Writer = SYSTEM
    ) -> bool:
        """Attach an officer to a case (idempotent; a different role for the pair → conflict)."""
        problems = Problems()
        with self.session(f"officer {officer_id} on case {case_id}") as s:
            if not self.existing(s, CASES, [case_id]):
                raise NotFoundError(f"case {case_id} does not exist", case_id=case_id)
            self.require_case(writer, case_id)
            if not self.existing(s, OFFICERS, [officer_id]):
                problems.add("body.officer_id", "unknown officer")
            problems.raise_if_any("case officer")
            row = {"case_id": case_id, "officer_id": officer_id, "role": role}
            stmt = (
                self.insert_for(CASE_OFFICERS)
                .values(**row, created_by=writer.user_id)
                .on_conflict_do_nothing(index_elements=["case_id", "officer_id"])
                .returning(CASE_OFFICERS.c.case_id)
            )
            created = s.execute(stmt).first() is not None
            self._link_officers(s, [(officer_id, case_id)])
            if not created:
                have = (
                    s.execute(
                        select(CASE_OFFICERS).where(
                            CASE_OFFICERS.c.case_id == case_id, CASE_OFFICERS.c.officer_id == officer_id
                        )
                    )
                    .mappings()
                    .one()
                )
                self.same_or_conflict(f"officer {officer_id} on case {case_id}", row, have)
        return created

    def case_officers(self, case_id: int) -> list[tuple[OfficerInfo, str | None]]:
        with self.session(f"officers of case {case_id}") as s:
            rows = (
                s.execute(
                    select(OFFICERS, CASE_OFFICERS.c.role)
                    .join(CASE_OFFICERS, CASE_OFFICERS.c.officer_id == OFFICERS.c.id)
                    .where(CASE_OFFICERS.c.case_id == case_id)
                    .order_by(OFFICERS.c.id)
                )
                .mappings()
                .all()
            )
        return [(officer_from_row(r), r["role"]) for r in rows]

    # --- subjects ------------------------------------------------------------------------------

    def create_subject(self, new: NewSubject, writer: Writer = SYSTEM) -> tuple[SubjectInfo, bool]:
        """(subject, created). A subject with the same ID number in the same case is the same
        person: identical content returns it, different content is a conflict. (Without an ID
        number there is no natural key and every call creates a subject.)"""
        row = {
            "case_id": new.case_id,
            "name": new.name,
            "role": new.role,
            "id_number": new.id_number,
            "minor": new.minor,
            "guardian_name": new.guardian_name,
            "wristband_id": new.wristband_id,
        }
        with self.session(f"create subject in case {new.case_id}") as s:
            if not self.existing(s, CASES, [new.case_id]):
                raise NotFoundError(f"case {new.case_id} does not exist", case_id=new.case_id)
            self.require_case(writer, new.case_id)
            if new.id_number:
                have = (
                    s.execute(
                        select(SUBJECTS).where(
                            SUBJECTS.c.case_id == new.case_id, SUBJECTS.c.id_number == new.id_number
                        )
                    )
                    .mappings()
                    .first()
                )
                if have is not None:
                    self.same_or_conflict(f"subject {new.id_number} in case {new.case_id}", row, have)
                    return subject_from_row(have), False
            new_id = s.execute(
                SUBJECTS.insert().values(**row, created_by=writer.user_id).returning(SUBJECTS.c.id)
            ).scalar_one()
            add_grams(s, [(int(new_id), new.name)])
        return replace_id(new, int(new_id)), True

    def get_subject(self, subject_id: int) -> SubjectInfo:
        with self.session(f"subject {subject_id}") as s:
            row = s.execute(select(SUBJECTS).where(SUBJECTS.c.id == subject_id)).mappings().first()
        if row is None:
            raise NotFoundError(f"subject {subject_id} does not exist", subject_id=subject_id)
        return subject_from_row(row)

    def subjects_of_case(self, case_id: int) -> list[SubjectInfo]:
        with self.session(f"subjects of case {case_id}") as s:
            rows = (
                s.execute(select(SUBJECTS).where(SUBJECTS.c.case_id == case_id).order_by(SUBJECTS.c.id))
                .mappings()
                .all()
            )
        return [subject_from_row(r) for r in rows]

    # --- officers ------------------------------------------------------------------------------

    def create_officer(self, new: NewOfficer, writer: Writer = SYSTEM) -> tuple[OfficerInfo, bool]:
        """(officer, created); idempotent by badge number."""
        row = {"name": new.name, "badge_number": new.badge_number, "unit": new.unit}
        with self.session(f"create officer {new.badge_number}") as s:
            stamped = {**row, "active": True, "created_by": writer.user_id}
            new_id = self.insert_new(s, OFFICERS, stamped, "badge_number")
            have = (
                s.execute(select(OFFICERS).where(OFFICERS.c.badge_number == new.badge_number))
                .mappings()
                .one()
            )
            if new_id is None:
                self.same_or_conflict(f"officer {new.badge_number}", row, have)
        return officer_from_row(have), new_id is not None

    def officer_shares_case(self, officer_id: int, cases: Iterable[int]) -> bool:
        """Whether the officer is attached to one of ``cases``."""
        wanted = list(cases)
        if not wanted:
            return False
        with self.read_session(f"cases of officer {officer_id}") as s:
            hit = s.execute(
                select(CASE_OFFICERS.c.case_id)
                .where(CASE_OFFICERS.c.officer_id == officer_id, CASE_OFFICERS.c.case_id.in_(wanted))
                .limit(1)
            ).first()
        return hit is not None

    def get_officer(self, officer_id: int) -> OfficerInfo:
        with self.session(f"officer {officer_id}") as s:
            row = s.execute(select(OFFICERS).where(OFFICERS.c.id == officer_id)).mappings().first()
        if row is None:
            raise NotFoundError(f"officer {officer_id} does not exist", officer_id=officer_id)
        return officer_from_row(row)

    # --- rooms ---------------------------------------------------------------------------------

    def room_kinds(self) -> dict[str, RoomKind]:
        with self.session("rooms") as s:
            rows = s.execute(select(ROOMS.c.id, ROOMS.c.kind)).all()
        out: dict[str, RoomKind] = {}
        for room_id, kind in rows:
            try:
                out[room_id] = RoomKind(kind)
            except ValueError:
                out[room_id] = RoomKind.OTHER
        return out

    # --- late entries --------------------------------------------------------------------------

    def _exported(
        self, s: Session, subject_ids: Iterable[int | None], case_ids: Iterable[int | None]
    ) -> tuple[dict[int, list[tuple[int, int]]], dict[int, list[tuple[int, int]]]]:
        """Exported ranges (start_us, end_us) by subject and by case, of the subjects and cases
        given."""
        subjects = sorted({i for i in subject_ids if i is not None})
        cases = sorted({i for i in case_ids if i is not None})
        by_subject: dict[int, list[tuple[int, int]]] = {}
        by_case: dict[int, list[tuple[int, int]]] = {}
        if not subjects and not cases:
            return by_subject, by_case
        cols = (EXPORTED.c.subject_id, EXPORTED.c.case_id, EXPORTED.c.start_us, EXPORTED.c.end_us)
        for sid, cid, lo, hi in s.execute(
            select(*cols).where(or_(EXPORTED.c.subject_id.in_(subjects), EXPORTED.c.case_id.in_(cases)))
        ):
            by_subject.setdefault(int(sid), []).append((int(lo), int(hi)))
            by_case.setdefault(int(cid), []).append((int(lo), int(hi)))
        return by_subject, by_case

    def _mark_late(
        self,
        s: Session,
        rows: list[dict[str, Any]],
        writer: Writer,
        now_us: int,
    ) -> None:
        """Set each row's ``late`` (and ``created_by``): older than the window, or inside a range
        already exported for its subject (for an event without a subject: for any subject of its
        case)."""
        by_subject, by_case = self._exported(
            s, (r["subject_id"] for r in rows), (r.get("case_id") for r in rows)
        )
        oldest = None if self._late_after is None else now_us - self._late_after // timedelta(microseconds=1)
        for r in rows:
            t = r["time_us"]
            if r["subject_id"] is not None:
                ranges = by_subject.get(r["subject_id"], [])
            else:
                ranges = by_case.get(r.get("case_id") or -1, [])
            r["late"] = (oldest is not None and t < oldest) or any(lo <= t <= hi for lo, hi in ranges)
            r["created_by"] = writer.user_id

    def _refuse_late(
        self, rows: list[dict[str, Any]], fresh: Iterable[str], writer: Writer, loc: str, batch: bool
    ) -> None:
        """Forbidden if a row just written is late and the writer may not write late entries (the
        caller's transaction then writes nothing)."""
        if writer.late_allowed:
            return
        written = set(fresh)
        refusals = Refusals()
        hours = (
            ""
            if self._late_after is None
            else f"older than {self._late_after.total_seconds() / 3600:g} h or "
        )
        for i, r in enumerate(rows):
            if r["late"] and r["client_id"] in written:
                refusals.add(
                    item_loc(loc, i if batch else None, "time"),
                    f"a late entry ({hours}inside a range already exported to disc):"
                    " a supervisor, legal or admin user must enter it",
                )
        refusals.raise_if_any("late entry")

    @staticmethod
    def _entries(s: Session, table: Table, client_ids: Iterable[str]) -> dict[str, Entry]:
        """Who entered each reading of ``table`` and when (by client id)."""
        ids = sorted(set(client_ids))
        out: dict[str, Entry] = {}
        for i in range(0, len(ids), _CHUNK):
            stmt = _entry_select(table, table.c.client_id).where(table.c.client_id.in_(ids[i : i + _CHUNK]))
            for r in s.execute(stmt).mappings():
                out[r["client_id"]] = entry_from_row(r)
        return out

    def record_export(
        self, case_id: int, subject_id: int, start: datetime, end: datetime, export_id: str
    ) -> None:
        """A subject's range went onto a disc: readings inside it are late entries from now on."""
        with self.session(f"exported range of subject {subject_id}") as s:
            s.execute(
                EXPORTED.insert().values(
                    case_id=case_id,
                    subject_id=subject_id,
                    start_us=to_us(start),
                    end_us=to_us(end),
                    export_id=export_id[:64],
                    exported_us=to_us(self._clock()),
                )
            )

    def confirm_readings(self, events: Sequence[str], observations: Sequence[str], writer: Writer) -> int:
        """A supervisor vouches for readings (events, observations by client id) an officer wrote,
        so they count for that officer's footage window. Unknown ids are ValidationFailed; a
        reading confirmed before keeps its first confirmation. Returns how many were confirmed now."""
        if writer.cases is not None:
            raise Forbidden("officers cannot confirm readings (a supervisor, legal or admin user can)")
        problems = Problems()
        now_us = to_us(self._clock())
        confirmed = 0
        with self.session("confirm readings") as s:
            todo = (
                (EVENTS, sorted(set(events)), "events"),
                (OBSERVATIONS, sorted(set(observations)), "observations"),
            )
            for table, ids, name in todo:
                known: set[str] = set()
                for i in range(0, len(ids), _CHUNK):
                    part = ids[i : i + _CHUNK]
                    known.update(
                        s.execute(select(table.c.client_id).where(table.c.client_id.in_(part))).scalars()
                    )
                for cid in ids:
                    if cid not in known:
                        problems.add(f"body.{name}", f"unknown {name[:-1]} {cid!r}")
            problems.raise_if_any("confirm")
            for table, ids, _ in todo:
                for i in range(0, len(ids), _CHUNK):
                    result = s.execute(
                        update(table)
                        .where(table.c.client_id.in_(ids[i : i + _CHUNK]), table.c.confirmed_by.is_(None))
                        .values(confirmed_by=writer.user_id, confirmed_us=now_us)
                    )
                    confirmed += int(result.rowcount or 0)  # type: ignore[attr-defined]
        return confirmed

    # --- procedure events ----------------------------------------------------------------------

    def add_events(
        self, events: Sequence[NewEvent], writer: Writer = SYSTEM, *, loc: str = "body", batch: bool = True
    ) -> list[StoredEvent]:
        """Store events atomically (all or none), in the order given; see the module doc.

        Field errors name ``{loc}.{i}.{field}`` (``{loc}.{field}`` when ``batch`` is False).
        """
        problems = Problems()
        refusals = Refusals()
        with self.session("add events") as s:
            rows = self._event_rows(s, events, problems, loc, batch)
            problems.raise_if_any("events")
            for i, r in enumerate(rows):
                self.check_case(
                    writer, r["case_id"], item_loc(loc, i if batch else None, "subject_id"), refusals
                )
            refusals.raise_if_any("events")
            self._mark_late(s, rows, writer, rows[0]["received_us"] if rows else 0)
            self._same_within_batch(rows, "event")
            unique = list({r["client_id"]: r for r in rows}.values())
            fresh: dict[str, int] = {}
            for i in range(0, len(unique), _CHUNK):
                part = unique[i : i + _CHUNK]
                stmt = (
                    self.insert_for(EVENTS)
                    .values([{k: v for k, v in r.items() if k != "officer_ids"} for r in part])
                    .on_conflict_do_nothing(index_elements=["client_id"])
                    .returning(EVENTS.c.client_id, EVENTS.c.id)
                )
                fresh.update({cid: int(eid) for cid, eid in s.execute(stmt).all()})
            self._refuse_late(rows, fresh, writer, loc, batch)
            links = [
                {"event_id": fresh[r["client_id"]], "officer_id": o}
                for r in unique
                if r["client_id"] in fresh
                for o in sorted(set(r["officer_ids"]))
            ]
            if links:
                s.execute(EVENT_OFFICERS.insert(), links)
                self._link_officers(
                    s,
                    [
                        (o, r["case_id"])
                        for r in unique
                        if r["client_id"] in fresh and r["case_id"] is not None
                        for o in r["officer_ids"]
                    ],
                )
            stale = [r for r in unique if r["client_id"] not in fresh]
            if stale:
                self._events_match(s, stale)
            entries = self._entries(s, EVENTS, (r["client_id"] for r in unique))
        log.info("events: %d stored, %d already present", len(fresh), len(unique) - len(fresh))
        return [
            StoredEvent(
                event_from_row(r),
                r["case_id"],
                created=r["client_id"] in fresh,
                entry=entries[r["client_id"]],
            )
            for r in rows
        ]

    def _event_rows(
        self, s: Session, events: Sequence[NewEvent], problems: Problems, loc: str, batch: bool
    ) -> list[dict[str, Any]]:
        rooms = self.existing(s, ROOMS, (e.room_id for e in events))
        officers = self.existing(s, OFFICERS, (o for e in events for o in e.officer_ids))
        cases = self.existing(s, CASES, (e.case_id for e in events))
        subject_case = self.subject_cases(s, (e.subject_id for e in events))
        now_us = to_us(self._clock())
        rows: list[dict[str, Any]] = []
        for i, e in enumerate(events):
            at = i if batch else None
            time_us = self._check_time(problems, item_loc(loc, at, "time"), e.time)
            if e.room_id is not None and e.room_id not in rooms:
                problems.add(item_loc(loc, at, "room_id"), f"unknown room {e.room_id!r}")
            for o in e.officer_ids:
                if o not in officers:
                    problems.add(item_loc(loc, at, "officer_ids"), f"unknown officer {o}")
            if e.case_id is not None and e.case_id not in cases:
                problems.add(item_loc(loc, at, "case_id"), f"unknown case {e.case_id}")
            case_id = e.case_id
            if e.subject_id is not None:
                if e.subject_id not in subject_case:
                    problems.add(item_loc(loc, at, "subject_id"), f"unknown subject {e.subject_id}")
                else:
                    owner = subject_case[e.subject_id]
                    if case_id is not None and case_id != owner:
                        problems.add(
                            item_loc(loc, at, "case_id"), f"subject {e.subject_id} belongs to case {owner}"
                        )
                    case_id = owner
            rows.append(
                {
                    "client_id": e.client_id,
                    "type": EventType(e.type).value,
                    "time_us": time_us,
                    "room_id": e.room_id,
                    "case_id": case_id,
                    "subject_id": e.subject_id,
                    "payload": dict(e.payload),
                    "received_us": now_us,
                    "officer_ids": tuple(sorted(set(e.officer_ids))),
                }
            )
        return rows

    @staticmethod
    def subject_cases(s: Session, subject_ids: Iterable[int | None]) -> dict[int, int]:
        """The case of each known subject of ``subject_ids``."""
        wanted = {i for i in subject_ids if i is not None}
        if not wanted:
            return {}
        found = s.execute(select(SUBJECTS.c.id, SUBJECTS.c.case_id).where(SUBJECTS.c.id.in_(wanted)))
        return {int(sid): int(cid) for sid, cid in found}

    @staticmethod
    def _same_within_batch(rows: list[dict[str, Any]], what: str) -> None:
        seen: dict[str, dict[str, Any]] = {}
        for r in rows:
            first = seen.setdefault(r["client_id"], r)
            if first is not r:
                CaseStore.same_or_conflict(
                    f"{what} {r['client_id']} (twice in this batch)",
                    {k: v for k, v in r.items() if k not in _NOT_CONTENT},
                    first,
                )

    def _events_match(self, s: Session, rows: list[dict[str, Any]]) -> None:
        by_id = {r["client_id"]: r for r in rows}
        stored = s.execute(select(EVENTS).where(EVENTS.c.client_id.in_(list(by_id)))).mappings().all()
        officers = self._event_officers(s, [int(h["id"]) for h in stored])
        for have in stored:
            want = {k: v for k, v in by_id[have["client_id"]].items() if k not in _NOT_CONTENT}
            got = {**have, "officer_ids": tuple(officers.get(int(have["id"]), ()))}
            self.same_or_conflict(f"event {have['client_id']}", want, got)

    @staticmethod
    def _event_officers(s: Session, event_ids: list[int]) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {}
        for i in range(0, len(event_ids), _CHUNK):
            part = event_ids[i : i + _CHUNK]
            rows = s.execute(
                select(EVENT_OFFICERS.c.event_id, EVENT_OFFICERS.c.officer_id)
                .where(EVENT_OFFICERS.c.event_id.in_(part))
                .order_by(EVENT_OFFICERS.c.event_id, EVENT_OFFICERS.c.officer_id)
            )
            for eid, oid in rows:
                out.setdefault(int(eid), []).append(int(oid))
        return out

    def events(
        self,
        *,
        case_id: int | None = None,
        subject_id: int | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 100_000,
    ) -> list[StoredEvent]:
        """Events of a case or a subject (at least one given), by time then arrival, each with who
        entered it."""
        if case_id is None and subject_id is None:
            raise ValidationFailed("events need a case or a subject")
        stmt = _entry_select(EVENTS, *EVENTS.c)
        if case_id is not None:
            stmt = stmt.where(EVENTS.c.case_id == case_id)
        if subject_id is not None:
            stmt = stmt.where(EVENTS.c.subject_id == subject_id)
        if start is not None:
            stmt = stmt.where(EVENTS.c.time_us >= to_us(start))
        if end is not None:
            stmt = stmt.where(EVENTS.c.time_us < to_us(end))
        stmt = stmt.order_by(EVENTS.c.time_us, EVENTS.c.id).limit(limit)
        with self.session("events") as s:
            rows = s.execute(stmt).mappings().all()
            officers = self._event_officers(s, [int(r["id"]) for r in rows])
        return [
            StoredEvent(
                event_from_row({**r, "officer_ids": tuple(officers.get(int(r["id"]), ()))}),
                r["case_id"],
                entry=entry_from_row(r),
            )
            for r in rows
        ]

    # --- location observations -----------------------------------------------------------------

    def add_observations(
        self,
        items: Sequence[NewObservation],
        writer: Writer = SYSTEM,
        *,
        loc: str = "body",
        batch: bool = True,
    ) -> list[StoredObservation]:
        """Store observations atomically, idempotent by client id (see the module doc)."""
        problems = Problems()
        refusals = Refusals()
        with self.session("add observations") as s:
            rooms = self.existing(s, ROOMS, (o.room_id for o in items))
            subjects = self.subject_cases(s, (o.subject_id for o in items))
            officers = self.existing(s, OFFICERS, (o.officer_id for o in items))
            now_us = to_us(self._clock())
            rows: list[dict[str, Any]] = []
            for i, o in enumerate(items):
                at = i if batch else None
                time_us = self._check_time(problems, item_loc(loc, at, "time"), o.time)
                if o.room_id not in rooms:
                    problems.add(item_loc(loc, at, "room_id"), f"unknown room {o.room_id!r}")
                if o.subject_id is None and o.officer_id is None:
                    problems.add(item_loc(loc, at, "subject_id"), "a subject_id or an officer_id is required")
                if o.subject_id is not None and o.subject_id not in subjects:
                    problems.add(item_loc(loc, at, "subject_id"), f"unknown subject {o.subject_id}")
                if o.officer_id is not None and o.officer_id not in officers:
                    problems.add(item_loc(loc, at, "officer_id"), f"unknown officer {o.officer_id}")
                if o.subject_id is not None:
                    self.check_case(
                        writer, subjects.get(o.subject_id), item_loc(loc, at, "subject_id"), refusals
                    )
                elif writer.cases is not None and o.officer_id != writer.officer_id:
                    refusals.add(item_loc(loc, at, "officer_id"), "officers report their own location only")
                rows.append(
                    {
                        "client_id": o.client_id,
                        "subject_id": o.subject_id,
                        "officer_id": o.officer_id,
                        "room_id": o.room_id,
                        "time_us": time_us,
                        "source": ObservationSource(o.source).value,
                        "received_us": now_us,
                    }
                )
            problems.raise_if_any("observations")
            refusals.raise_if_any("observations")
            self._mark_late(s, rows, writer, now_us)
            self._same_within_batch(rows, "observation")
            unique = list({r["client_id"]: r for r in rows}.values())
            fresh: set[str] = set()
            for i in range(0, len(unique), _CHUNK):
                stmt = (
                    self.insert_for(OBSERVATIONS)
                    .values(unique[i : i + _CHUNK])
                    .on_conflict_do_nothing(index_elements=["client_id"])
                    .returning(OBSERVATIONS.c.client_id)
                )
                fresh.update(s.execute(stmt).scalars())
            self._refuse_late(rows, fresh, writer, loc, batch)
            stale = {r["client_id"]: r for r in unique if r["client_id"] not in fresh}
            if stale:
                stored = s.execute(
                    select(OBSERVATIONS).where(OBSERVATIONS.c.client_id.in_(list(stale)))
                ).mappings()
                for have in stored:
                    want = {k: v for k, v in stale[have["client_id"]].items() if k not in _NOT_CONTENT}
                    self.same_or_conflict(f"observation {have['client_id']}", want, have)
            entries = self._entries(s, OBSERVATIONS, (r["client_id"] for r in unique))
        log.info("observations: %d stored, %d already present", len(fresh), len(unique) - len(fresh))
        return [
            StoredObservation(
                client_id=o.client_id,
                room_id=o.room_id,
                time=o.time,
                source=ObservationSource(o.source),
                subject_id=o.subject_id,
                officer_id=o.officer_id,
                created=o.client_id in fresh,
                entry=entries[o.client_id],
            )
            for o in items
        ]

    def late_observations(
        self, subject_id: int, start: datetime | None = None, end: datetime | None = None
    ) -> list[StoredObservation]:
        """The subject's location observations that are late entries (optionally in [start, end)),
        by time, each with who entered it and when."""
        stmt = _entry_select(OBSERVATIONS, *OBSERVATIONS.c).where(
            OBSERVATIONS.c.subject_id == subject_id, OBSERVATIONS.c.late.is_(True)
        )
        if start is not None:
            stmt = stmt.where(OBSERVATIONS.c.time_us >= to_us(start))
        if end is not None:
            stmt = stmt.where(OBSERVATIONS.c.time_us < to_us(end))
        with self.read_session(f"late observations of subject {subject_id}") as s:
            rows = s.execute(stmt.order_by(OBSERVATIONS.c.time_us, OBSERVATIONS.c.id)).mappings().all()
        return [
            StoredObservation(
                client_id=r["client_id"],
                room_id=r["room_id"],
                time=from_us(r["time_us"]),
                source=ObservationSource(r["source"]),
                subject_id=r["subject_id"],
                officer_id=r["officer_id"],
                entry=entry_from_row(r),
            )
            for r in rows
        ]

    def subject_observations(self, subject_id: int, limit: int = 100_000) -> list[Observation]:
        stmt = (
            select(OBSERVATIONS)
            .where(OBSERVATIONS.c.subject_id == subject_id)
            .order_by(OBSERVATIONS.c.time_us, OBSERVATIONS.c.id)
            .limit(limit)
        )
        with self.session(f"observations of subject {subject_id}") as s:
            rows = s.execute(stmt).mappings().all()
        return [
            Observation(from_us(r["time_us"]), r["room_id"], ObservationSource(r["source"]), r["client_id"])
            for r in rows
        ]


_AUTHOR, _CONFIRMER = USERS.alias("author_"), USERS.alias("confirmer_")


def _entry_select(table: Table, *columns: Any) -> Select[Any]:
    """``columns`` of ``table`` with what :func:`entry_from_row` reads: the reading's late flag,
    arrival, confirmation, and the user names of its author and confirmer."""
    wanted = (table.c.late, table.c.received_us, table.c.confirmed_us)
    extra = [c for c in wanted if not any(c is have for have in columns)]
    return select(
        *columns,
        *extra,
        _AUTHOR.c.name.label("entered_by_"),
        _CONFIRMER.c.name.label("confirmed_by_name_"),
    ).select_from(
        table.outerjoin(_AUTHOR, _AUTHOR.c.id == table.c.created_by).outerjoin(
            _CONFIRMER, _CONFIRMER.c.id == table.c.confirmed_by
        )
    )


def entry_from_row(r: Mapping[Any, Any]) -> Entry:
    return Entry(
        by=r["entered_by_"],
        at=from_us(r["received_us"]),
        late=bool(r["late"]),
        confirmed_by=r["confirmed_by_name_"],
        confirmed_at=None if r["confirmed_us"] is None else from_us(r["confirmed_us"]),
    )
