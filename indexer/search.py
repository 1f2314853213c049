"""Search across cases: by case number, subject name or ID number, officer (database id or badge
number), room (id or name), event type and time range; paged with a total.

Every filter narrows the set of cases (they combine with AND). The event filters — room,
event type and time range — must hold for the *same* event: "cases with a search in room
S between 9:00 and 10:00", not "a search some time and something in room S at 9:00". A room
without an event type also matches a subject's *stay* in the room overlapping the time range
(:mod:`indexer.search_stays`): someone held in 候问室 through the window, with no reading in it.

Each filter is a ``cases.id IN (SELECT case_id FROM ... WHERE ...)`` semi-join whose inner
query is driven by an index (subjects.id_number, procedure_events (room_id, time_us) /
(type, time_us) / (time_us), officer_cases (officer_id, case_id)), so the planner starts
from the few matching rows instead of walking every case. A subject-name search is a
substring match (people search by a given name or a surname alike), which no B-tree index
can serve: ``LIKE`` runs on the subjects that hold the query's one- and two-character pieces
(``indexer.name_grams``, revision 0008) instead of on every subject.
The case-number prefix is an index range on both databases (see :func:`_prefix`); on
PostgreSQL the officer's case ids are read first and used as a list (see ``CaseSearch.search``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    RowMapping,
    Select,
    any_,
    cast,
    distinct,
    func,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from domain.errors import ValidationFailed
from domain.types import EventType
from indexer.case_records import CaseInfo, Problems, case_from_row
from indexer.case_store import CaseStore
from indexer.models import Base, to_us
from indexer.name_grams import candidate_subjects
from indexer.read_batch import raw_rows
from indexer.search_stays import room_ids_named, stay_case_ids, stay_case_ids_before

log = logging.getLogger(__name__)

T = Base.metadata.tables
CASES, SUBJECTS, EVENTS = T["cases"], T["subjects"], T["procedure_events"]
OFFICER_CASES, OFFICERS = T["officer_cases"], T["officers"]

MAX_LIMIT = 500


@dataclass(frozen=True, slots=True)
class CaseQuery:
    """What to look for; None means "any"."""

    case_number: str | None = None  # prefix (a full number matches itself)
    subject_name: str | None = None  # substring
    id_number: str | None = None  # exact
    officer_id: int | None = None  # on the case, or on one of its events
    room_id: str | None = None  # a room's id or its name; without event_type also its stays
    event_type: EventType | None = None
    start: datetime | None = None  # event time >= start
    end: datetime | None = None  # event time < end
    limit: int = 50
    offset: int = 0
    badge_number: str | None = None  # an officer by badge number (警号), as officer_id


@dataclass(frozen=True, slots=True)
class SubjectBrief:
    id: int
    name: str
    role: str
    id_number: str | None


@dataclass(frozen=True, slots=True)
class CaseHit:
    case: CaseInfo
    subjects: list[SubjectBrief] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class CasePage:
    total: int
    limit: int
    offset: int
    items: list[CaseHit]


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _validate(q: CaseQuery) -> None:
    problems = Problems()
    if not 1 <= q.limit <= MAX_LIMIT:
        problems.add("query.limit", f"must be between 1 and {MAX_LIMIT}")
    if q.offset < 0:
        problems.add("query.offset", "must not be negative")
    for name, value in (("start", q.start), ("end", q.end)):
        if value is not None and value.tzinfo is None:
            problems.add(f"query.{name}", "needs a time zone (e.g. Z or +08:00)")
    problems.raise_if_any("search")
    if q.start is not None and q.end is not None and q.end <= q.start:
        raise ValidationFailed(
            "end must be after start", fields=[{"field": "query.end", "message": "not after start"}]
        )


# Sorts after every character a case number can continue a prefix with (SQLite BINARY order is
# the UTF-8 byte order, i.e. code point order; U+10FFFF is the largest code point).
_AFTER_ALL = "\U0010ffff"


def _prefix(prefix: str, dialect: str) -> ColumnElement[bool]:
    """``case_number`` starts with ``prefix`` (case-sensitive on both databases), index-friendly.

    SQLite: a range on the unique index (``LIKE`` is case-insensitive there and cannot use a
    BINARY index). PostgreSQL: ``LIKE 'p%'``, which the ``text_pattern_ops`` index of revision
    0002 range-scans whatever the database collation (a plain range would be wrong under a
    linguistic collation).
    """
    if dialect == "sqlite":
        return (CASES.c.case_number >= prefix) & (CASES.c.case_number < prefix + _AFTER_ALL)
    return CASES.c.case_number.like(_like_escape(prefix) + "%", escape="\\")


def officer_case_ids(officer_id: int) -> Select[tuple[int]]:
    """Ids of the cases the officer is on, or on one of whose events (``officer_cases``, kept by
    the store: one primary-key range instead of a join through every event of the officer)."""
    return select(OFFICER_CASES.c.case_id).where(OFFICER_CASES.c.officer_id == officer_id)


def badge_case_ids(badge_number: str) -> Select[tuple[int]]:
    """Ids of the cases of the officer with this badge number (none for an unknown one)."""
    officer = select(OFFICERS.c.id).where(OFFICERS.c.badge_number == badge_number)
    return select(OFFICER_CASES.c.case_id).where(OFFICER_CASES.c.officer_id.in_(officer))


def _with_stays(q: CaseQuery) -> bool:
    """A room without an event type: its stays count besides its events."""
    return bool(q.room_id) and q.event_type is None


def _event_terms(q: CaseQuery, room_ids: Sequence[str] | None = None) -> list[ColumnElement[bool]]:
    """The terms on ``procedure_events`` (room, type, time range: all on the same event).
    ``room_ids``: the ids the query's room stands for (its name may name several)."""
    terms: list[ColumnElement[bool]] = []
    if q.room_id:
        terms.append(EVENTS.c.room_id.in_(room_ids if room_ids is not None else [q.room_id]))
    if q.event_type is not None:
        terms.append(EVENTS.c.type == EventType(q.event_type).value)
    if q.start is not None:
        terms.append(EVENTS.c.time_us >= to_us(q.start))
    if q.end is not None:
        terms.append(EVENTS.c.time_us < to_us(q.end))
    return terms


def _events_only(q: CaseQuery) -> bool:
    """Only event filters (room, type, time): the total can be counted on the events alone."""
    others = q.case_number or q.subject_name or q.id_number or q.officer_id is not None or q.badge_number
    return not others and not _with_stays(q) and bool(_event_terms(q))


def event_case_ids(q: CaseQuery, room_ids: Sequence[str] | None = None) -> Select[tuple[int]]:
    """The case ids of the events matching the query's event filters (repeats included)."""
    return select(EVENTS.c.case_id).where(*_event_terms(q, room_ids), EVENTS.c.case_id.is_not(None))


def name_case_ids(name: str) -> Select[tuple[int]]:
    """Ids of the cases with a subject whose name contains ``name``: ``LIKE`` checked only on the
    subjects that hold the name's grams (``indexer.name_grams``), not on every subject."""
    terms = [SUBJECTS.c.name.like("%" + _like_escape(name) + "%", escape="\\")]
    candidates = candidate_subjects(name)
    if candidates is not None:
        terms.append(SUBJECTS.c.id.in_(candidates))
    return select(SUBJECTS.c.case_id).where(*terms)


# Case ids given to the PostgreSQL filters: an array-valued subquery (the ids read by the same
# statement, see ``id_array``).
CaseIds = ColumnElement[Any]


def _one_of(ids: CaseIds) -> ColumnElement[bool]:
    """``cases.id = ANY((SELECT ids FROM cte))`` (PostgreSQL only): an index lookup per id, not
    the hash semi-join over every case that ``IN (SELECT ...)`` got."""
    return CASES.c.id == any_(ids)


def id_array(ids: Select[tuple[int]], name: str) -> ColumnElement[Any]:
    """The distinct ids of ``ids`` as one array, read once per statement (a ``MATERIALIZED`` CTE
    the page and its total both use): the filter then costs no round trip of its own."""
    sub = ids.subquery()
    cte = select(func.array_agg(distinct(sub.c[0])).label("ids")).cte(name).prefix_with("MATERIALIZED")
    # The cast makes it an array expression: ``= ANY ((SELECT ...))`` compares with the array's
    # elements, whereas ``= ANY (SELECT ...)`` would compare with each row (one array).
    return cast(select(cte.c.ids).scalar_subquery(), ARRAY(BigInteger))


def case_filters(
    q: CaseQuery,
    dialect: str = "postgresql",
    officer_cases: CaseIds | None = None,
    name_cases: CaseIds | None = None,
    room_ids: Sequence[str] | None = None,
    stay_cases: Select[tuple[int]] | Sequence[int] | None = None,
) -> list[ColumnElement[bool]]:
    """The WHERE terms on ``cases`` for a query on ``dialect`` (exposed for the benchmark's EXPLAIN).

    ``officer_cases`` / ``name_cases``: the officer's / the name's case ids as an array read by the
    same statement (PostgreSQL, :func:`id_array`); else those filters are semi-joins. ``room_ids``:
    what the query's room stands for; ``stay_cases``: the cases with a stay there in the time range
    (:mod:`indexer.search_stays`), which match as well as an event does."""
    terms: list[ColumnElement[bool]] = []
    if q.case_number:
        terms.append(_prefix(q.case_number, dialect))
    if q.subject_name:
        if name_cases is not None:
            terms.append(_one_of(name_cases))
        else:
            terms.append(CASES.c.id.in_(name_case_ids(q.subject_name)))
    if q.id_number:
        terms.append(CASES.c.id.in_(select(SUBJECTS.c.case_id).where(SUBJECTS.c.id_number == q.id_number)))
    if q.officer_id is not None:
        if officer_cases is not None:
            terms.append(_one_of(officer_cases))
        else:
            terms.append(CASES.c.id.in_(officer_case_ids(q.officer_id)))
    if q.badge_number:
        terms.append(CASES.c.id.in_(badge_case_ids(q.badge_number)))
    event_terms = _event_terms(q, room_ids)
    if event_terms:
        by_event = CASES.c.id.in_(select(EVENTS.c.case_id).where(*event_terms))
        terms.append(by_event if stay_cases is None else or_(by_event, CASES.c.id.in_(stay_cases)))
    return terms


def case_page_query(
    q: CaseQuery,
    dialect: str = "postgresql",
    officer_cases: CaseIds | None = None,
    name_cases: CaseIds | None = None,
    terms: list[ColumnElement[bool]] | None = None,
) -> Select[tuple[object, ...]]:
    """A page of the matching cases, newest first (``terms``: :func:`case_filters`'s, if made)."""
    return (
        select(CASES)
        .where(*(terms if terms is not None else case_filters(q, dialect, officer_cases, name_cases)))
        .order_by(CASES.c.id.desc())
        .limit(q.limit)
        .offset(q.offset)
    )


_S_ID, _S_NAME, _S_ROLE, _S_ID_NUMBER = "s_id_", "s_name_", "s_role_", "s_id_number_"


def _with_subjects(page: Select[Any]) -> Select[Any]:
    """The page's cases each joined to its subjects (in id order): the result list's subject names
    come with the page in the same statement instead of a round trip of their own."""
    p = page.subquery("page_")
    return (
        select(
            p,
            SUBJECTS.c.id.label(_S_ID),
            SUBJECTS.c.name.label(_S_NAME),
            SUBJECTS.c.role.label(_S_ROLE),
            SUBJECTS.c.id_number.label(_S_ID_NUMBER),
        )
        .outerjoin(SUBJECTS, SUBJECTS.c.case_id == p.c.id)
        .order_by(p.c.id.desc(), SUBJECTS.c.id)
    )


def _page_and_total(
    s: Session,
    q: CaseQuery,
    dialect: str,
    terms: list[ColumnElement[bool]],
    officer_cases: CaseIds | None,
    name_cases: CaseIds | None,
    room_ids: Sequence[str] | None = None,
) -> tuple[Sequence[RowMapping], int]:
    """The page of case rows (newest first) and the number of matching cases."""
    page = case_page_query(q, dialect, officer_cases, name_cases, terms)
    if _events_only(q) and dialect == "sqlite":
        # The matching events' case ids, read once from the covering (type, time_us, case_id)
        # / (room_id, time_us) index: their number is the total, a slice of them the page.
        # SQLite otherwise walked ~6,700 case rows for count(*) OVER () ("type + 1 day").
        ids = sorted({r[0] for r in raw_rows(s, event_case_ids(q, room_ids))}, reverse=True)
        page_ids = ids[q.offset : q.offset + q.limit]
        if not page_ids:
            return [], len(ids)
        chosen = select(CASES).where(CASES.c.id.in_(page_ids)).order_by(CASES.c.id.desc())
        return s.execute(_with_subjects(chosen)).mappings().all(), len(ids)
    if dialect == "postgresql":
        if _events_only(q):
            # Distinct case ids of the matching events: the same number as the cases with such an
            # event (case_id is a foreign key; NULLs count in neither), without the semi-join
            # against every case (PostgreSQL hashed the events and scanned all cases for it).
            count = select(func.count(distinct(EVENTS.c.case_id))).where(*_event_terms(q, room_ids))
        else:
            count = select(func.count()).select_from(CASES).where(*terms)
        # The total as an uncorrelated scalar subquery of the page's statement (an InitPlan, run
        # once): one round trip instead of two. count(*) OVER () instead made PostgreSQL build
        # every matching row ("type + 1 day" 21 → 160 ms).
        with_total = page.add_columns(count.scalar_subquery().label("total_"))
        rows = s.execute(_with_subjects(with_total)).mappings().all()
        if rows:
            return rows, int(rows[0]["total_"])
        return [], int(s.execute(count).scalar_one())
    if terms:
        # SQLite: one evaluation of the filters for the page and the total (count(*) OVER ()).
        rows = (
            s.execute(_with_subjects(page.add_columns(func.count().over().label("total_")))).mappings().all()
        )
        if rows or q.offset == 0:
            return rows, int(rows[0]["total_"]) if rows else 0
    total = int(s.execute(select(func.count()).select_from(CASES).where(*terms)).scalar_one())
    return (s.execute(_with_subjects(page)).mappings().all() if total > q.offset else []), total


class CaseSearch:
    """Paged search over cases. Thread-safe: one session per call."""

    def __init__(self, store: CaseStore) -> None:
        self._store = store

    def search(self, q: CaseQuery) -> CasePage:
        _validate(q)
        dialect = self._store.engine.dialect.name
        with self._store.read_session("search cases") as s:
            officer_cases: CaseIds | None = None
            if q.officer_id is not None and dialect == "postgresql":
                # As a semi-join (evaluated twice, for the total and the page) PostgreSQL hashed the
                # ids and scanned every case: 58 ms at 100k cases. The few ids are read once, by
                # the same statement (a round trip of their own cost more than reading them).
                officer_cases = id_array(officer_case_ids(q.officer_id), "officer_cases_")
            name_cases: CaseIds | None = None
            if q.subject_name and dialect == "postgresql":
                # Likewise a substring match scans subjects: once, not for the total and the page.
                name_cases = id_array(name_case_ids(q.subject_name), "name_cases_")
            room_ids, stay_cases = self._rooms_and_stays(s, q)
            terms = case_filters(q, dialect, officer_cases, name_cases, room_ids, stay_cases)
            rows, total = _page_and_total(s, q, dialect, terms, officer_cases, name_cases, room_ids)
        cases: list[CaseInfo] = []
        briefs: dict[int, list[SubjectBrief]] = {}
        for r in rows:  # a case row per subject of it (at least one), newest case first
            mine = briefs.get(r["id"])
            if mine is None:
                cases.append(case_from_row(r))
                mine = briefs[r["id"]] = []
            if r[_S_ID] is not None:
                mine.append(SubjectBrief(int(r[_S_ID]), r[_S_NAME], r[_S_ROLE], r[_S_ID_NUMBER]))
        log.debug("search %s: %d of %d", q, len(cases), total)
        return CasePage(total, q.limit, q.offset, [CaseHit(c, briefs[c.id]) for c in cases])

    @staticmethod
    def _rooms_and_stays(
        s: Session, q: CaseQuery
    ) -> tuple[list[str] | None, Select[tuple[int]] | list[int] | None]:
        """The room ids the query's room names (ValidationFailed for no room of that id or name)
        and, for a room without event type, the cases with a stay there in the time range."""
        if not q.room_id:
            return None, None
        room_ids = room_ids_named(s, q.room_id)
        if not room_ids:
            raise ValidationFailed(
                f"no room with id or name {q.room_id!r}",
                fields=[{"field": "query.room_id", "message": "unknown room"}],
            )
        if not _with_stays(q):
            return room_ids, None
        if q.start is None:
            return room_ids, stay_case_ids_before(room_ids, q.end)
        return room_ids, stay_case_ids(s, room_ids, q.start, q.end)
