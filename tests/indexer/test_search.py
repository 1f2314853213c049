"""Case search on SQLite and PostgreSQL: every filter, their combination, paging with total."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, inspect, text

from domain.errors import ValidationFailed
from domain.types import EventType, ObservationSource
from indexer.case_records import NewCase, NewEvent, NewObservation, NewOfficer, NewSubject
from indexer.case_store import CaseStore
from indexer.database import downgrade, upgrade
from indexer.search import CaseQuery, CaseSearch
from indexer.segment_store import SegmentStore

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


def at(h: float) -> datetime:
    return T0 + timedelta(hours=h)


@pytest.fixture
def search(engine: Engine, store: SegmentStore) -> CaseSearch:
    store.sync_rooms([("wait", "候问室", "waiting", []), ("int-1", "讯问室1", "interrogation", [])])
    cs = CaseStore(engine, clock=lambda: at(1000))
    o1, _ = cs.create_officer(NewOfficer("李警官", "P-1"))
    o2, _ = cs.create_officer(NewOfficer("王警官", "P-2"))
    for n in range(12):
        case, _ = cs.create_case(NewCase(f"A-2026-{n:03d}", f"案 {n}", "盗窃" if n % 2 else "诈骗"))
        subj, _ = cs.create_subject(NewSubject(case.id, f"张{n}号", "suspect", id_number=f"ID{n:04d}"))
        room = "int-1" if n % 3 == 0 else "wait"
        kind = EventType.INTERROGATION_START if n % 3 == 0 else EventType.WAITING
        cs.add_events(
            [NewEvent(f"e{n}", kind, at(n), room_id=room, subject_id=subj.id, officer_ids=(o1.id,))]
        )
    case, _ = cs.create_case(NewCase("B-100%_x", "特殊", "抢劫"))
    cs.add_case_officer(case.id, o2.id, "lead")
    assert not cs.add_case_officer(case.id, o2.id, "lead")
    return CaseSearch(cs)


def numbers(search: CaseSearch, **kw: object) -> list[str]:
    page = search.search(CaseQuery(limit=100, **kw))  # type: ignore[arg-type]
    assert page.total == len(page.items)
    return sorted(h.case.case_number for h in page.items)


def test_each_filter(search: CaseSearch) -> None:
    assert numbers(search, case_number="A-2026-01") == ["A-2026-010", "A-2026-011"]
    assert numbers(search, case_number="B-100%_") == ["B-100%_x"]  # LIKE metacharacters are literal
    assert numbers(search, case_number="B-1000") == []
    assert numbers(search, subject_name="5号") == ["A-2026-005"]
    assert numbers(search, id_number="ID0007") == ["A-2026-007"]
    assert numbers(search, officer_id=2) == ["B-100%_x"]
    assert len(numbers(search, officer_id=1)) == 12
    assert numbers(search, room_id="int-1") == ["A-2026-000", "A-2026-003", "A-2026-006", "A-2026-009"]
    assert len(numbers(search, event_type=EventType.WAITING)) == 8
    assert numbers(search, start=at(2), end=at(4)) == ["A-2026-002", "A-2026-003"]


def test_event_filters_hold_for_the_same_event(search: CaseSearch) -> None:
    interrogations = {"room_id": "int-1", "event_type": EventType.INTERROGATION_START}
    assert numbers(search, **interrogations, start=at(2.5), end=at(7)) == ["A-2026-003", "A-2026-006"]
    assert numbers(search, room_id="int-1", event_type=EventType.WAITING) == []
    # without an event type a room also matches stays: case 0's suspect entered at 0 h and never left
    assert numbers(search, room_id="int-1", start=at(2.5), end=at(7)) == [
        "A-2026-000",
        "A-2026-003",
        "A-2026-006",
    ]
    assert numbers(search, officer_id=1, subject_name="张1") == ["A-2026-001", "A-2026-010", "A-2026-011"]


def test_paging_with_total(search: CaseSearch) -> None:
    first = search.search(CaseQuery(limit=5, offset=0))
    last = search.search(CaseQuery(limit=5, offset=10))
    assert first.total == last.total == 13
    assert len(first.items) == 5 and len(last.items) == 3
    assert first.items[0].case.case_number == "B-100%_x"  # newest first
    assert first.items[1].subjects[0].name == "张11号"
    beyond = search.search(CaseQuery(limit=5, offset=50))
    assert beyond.total == 13 and beyond.items == []


def test_bad_queries_are_field_errors(search: CaseSearch) -> None:
    with pytest.raises(ValidationFailed) as err:
        search.search(CaseQuery(limit=0, offset=-1, start=datetime(2026, 1, 1)))
    assert {f["field"] for f in err.value.details["fields"]} == {"query.limit", "query.offset", "query.start"}
    with pytest.raises(ValidationFailed):
        search.search(CaseQuery(start=at(2), end=at(1)))


def test_event_only_total_counts_each_case_once(search: CaseSearch, engine: Engine) -> None:
    """Event filters alone: the total (counted on the events on PostgreSQL) is the number of cases,
    however many of a case's events match; paging and a page past the end keep it."""
    cs = CaseStore(engine, clock=lambda: at(1000))
    case = search.search(CaseQuery(case_number="A-2026-001")).items[0].case
    subject = search.search(CaseQuery(case_number="A-2026-001")).items[0].subjects[0]
    cs.add_events(
        [
            NewEvent(
                f"more{k}",
                EventType.WAITING,
                at(1.1 + k / 10),
                room_id="wait",
                case_id=case.id,
                subject_id=subject.id,
            )
            for k in range(3)
        ]
    )
    assert len(numbers(search, event_type=EventType.WAITING)) == 8
    page = search.search(CaseQuery(event_type=EventType.WAITING, start=at(0), end=at(6), limit=2))
    assert page.total == 4 and [h.case.case_number for h in page.items] == ["A-2026-005", "A-2026-004"]
    beyond = search.search(CaseQuery(event_type=EventType.WAITING, limit=2, offset=8))
    assert beyond.total == 8 and beyond.items == []


def test_officer_index_is_kept_rebuilt_and_backfilled(search: CaseSearch, engine: Engine) -> None:
    """``officer_cases`` (what the officer filter reads) as the store keeps it = its rebuild from
    case and event officers = revision 0007's backfill of the same data."""

    def pairs() -> set[tuple[int, int]]:
        with engine.connect() as conn:
            return {
                (int(o), int(c))
                for o, c in conn.execute(text("SELECT officer_id, case_id FROM officer_cases"))
            }

    kept = pairs()
    assert len(kept) == 13 and {o for o, _ in kept} == {1, 2}  # 12 cases through events, 1 as case officer
    assert CaseStore(engine).rebuild_officer_cases() == 13 and pairs() == kept
    downgrade(engine, "0006")
    assert "officer_cases" not in inspect(engine).get_table_names()
    upgrade(engine)
    assert pairs() == kept
    assert numbers(search, officer_id=1)[:2] == ["A-2026-000", "A-2026-001"]


def test_name_search_is_a_substring_match_of_any_length(search: CaseSearch, engine: Engine) -> None:
    """One, two and three characters, a whole name, a name's middle, ASCII and LIKE metacharacters:
    the gram index narrows, ``LIKE`` decides, so the answer is exactly the substring matches."""
    cs = CaseStore(engine, clock=lambda: at(1000))
    names = ["王小明", "李小明", "小明王", "欧阳娜娜", "Zhang Wei", "100%_李", "明"]
    for n, name in enumerate(names):
        case, _ = cs.create_case(NewCase(f"N-{n}", "名", "盗窃"))
        cs.create_subject(NewSubject(case.id, name, "suspect"))

    def hits(query: str) -> set[str]:
        page = search.search(CaseQuery(subject_name=query, limit=100))
        return {s.name for h in page.items for s in h.subjects if query.lower() in s.name.lower()}

    for query in [
        "小明",
        "明",
        "王小",
        "小明王",
        "阳娜",
        "娜娜",
        "欧阳娜娜",
        "ang W",
        "100%_",
        "%_李",
        "_",
        "明王",
    ]:
        expected = {n for n in names if query in n}
        assert hits(query) == expected, query
        assert search.search(CaseQuery(subject_name=query, limit=100)).total == len(expected), query
    assert hits("明明") == set() and hits("小王") == set()
    assert numbers(search, subject_name="张1") == ["A-2026-001", "A-2026-010", "A-2026-011"]


def test_name_grams_are_kept_rebuilt_and_backfilled(search: CaseSearch, engine: Engine) -> None:
    """``subject_name_grams`` as the store keeps it = its rebuild from the subjects = revision
    0008's backfill; without it the name search would find nothing."""

    def rows() -> set[tuple[str, int]]:
        with engine.connect() as conn:
            return {
                (g, int(s)) for g, s in conn.execute(text("SELECT gram, subject_id FROM subject_name_grams"))
            }

    kept = rows()
    subject = search.search(CaseQuery(case_number="A-2026-005")).items[0].subjects[0]
    assert {g for g, s in kept if s == subject.id} == {"张", "5", "号", "张5", "5号"}
    assert CaseStore(engine).rebuild_name_grams() == len(kept) and rows() == kept
    downgrade(engine, "0007")
    assert "subject_name_grams" not in inspect(engine).get_table_names()
    upgrade(engine)
    assert rows() == kept
    assert numbers(search, subject_name="5号") == ["A-2026-005"]
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM subject_name_grams"))
    assert numbers(search, subject_name="5号") == []


def test_a_page_counts_cases_not_their_subjects(search: CaseSearch, engine: Engine) -> None:
    """The page's subjects come joined to it: a case with three subjects is still one item, with all
    three in id order, and the limit and total count cases."""
    cs = CaseStore(engine, clock=lambda: at(1000))
    case, _ = cs.create_case(NewCase("C-3", "三人", "盗窃"))
    for name in ("甲", "乙", "丙"):
        cs.create_subject(NewSubject(case.id, name, "suspect"))
    page = search.search(CaseQuery(limit=2))
    assert page.total == 14 and [h.case.case_number for h in page.items] == ["C-3", "B-100%_x"]
    assert [s.name for s in page.items[0].subjects] == ["甲", "乙", "丙"] and page.items[1].subjects == []
    for kw in ({"subject_name": "乙"}, {"case_number": "C-"}):
        page = search.search(CaseQuery(limit=1, **kw))  # type: ignore[arg-type]
        assert page.total == 1 and [s.name for s in page.items[0].subjects] == ["甲", "乙", "丙"], kw
    cs.add_events([NewEvent("c3", EventType.WAITING, at(30), room_id="wait", case_id=case.id)])
    page = search.search(CaseQuery(event_type=EventType.WAITING, limit=1))
    assert page.total == 9 and len(page.items) == 1 and len(page.items[0].subjects) == 3


def test_a_stay_overlapping_the_range_is_found_without_a_reading_in_it(
    search: CaseSearch, engine: Engine
) -> None:
    """The issue's case: a suspect in 候问室 from 01:13:19 is found for 01:13-01:14:30 though no reading
    falls inside; one who left before the range, or came after it, is not."""
    cs = CaseStore(engine, clock=lambda: at(1000))
    t = datetime(2026, 3, 5, 1, 13, 19, tzinfo=UTC)
    people = {"在区": (t, None), "已离开": (t - timedelta(hours=2), t - timedelta(minutes=5))}
    people["后来"] = (t + timedelta(minutes=10), None)
    for n, (name, (came, left)) in enumerate(people.items()):
        case, _ = cs.create_case(NewCase(f"S-{n}", name, "盗窃"))
        subj, _ = cs.create_subject(NewSubject(case.id, name, "suspect"))
        cs.add_observations(
            [NewObservation(f"s{n}", "wait", came, ObservationSource.WRISTBAND, subject_id=subj.id)]
        )
        if left is not None:
            cs.add_events([NewEvent(f"x{n}", EventType.EXIT, left, subject_id=subj.id)])
    window = {
        "start": datetime(2026, 3, 5, 1, 13, tzinfo=UTC),
        "end": datetime(2026, 3, 5, 1, 14, 30, tzinfo=UTC),
    }
    assert numbers(search, room_id="wait", **window) == ["S-0"]
    assert numbers(search, room_id="候问室", **window) == ["S-0"]  # the room by its name
    later = {"start": t + timedelta(hours=5), "end": t + timedelta(hours=6)}
    assert numbers(search, room_id="wait", **later) == ["S-0", "S-2"]  # no exit: still inside
    assert numbers(search, room_id="wait", start=t + timedelta(hours=5)) == ["S-0", "S-2"]  # open range
    # no start: any stay begun before the end
    assert "S-1" in numbers(search, room_id="wait", end=t) and "S-2" not in numbers(
        search, room_id="wait", end=t
    )
    assert numbers(search, room_id="int-1", **window) == []
    # a stay is the subject's, with the other filters still AND-ed
    assert numbers(search, room_id="wait", subject_name="在区", **window) == ["S-0"]
    assert numbers(search, room_id="wait", subject_name="后来", **window) == []


def test_room_by_name_and_unknown_room(search: CaseSearch) -> None:
    assert numbers(search, room_id="讯问室1") == numbers(search, room_id="int-1")
    with pytest.raises(ValidationFailed) as err:
        search.search(CaseQuery(room_id="讯问室9"))
    assert err.value.details["fields"][0]["field"] == "query.room_id"


def test_officer_by_badge_number(search: CaseSearch) -> None:
    assert len(numbers(search, badge_number="P-1")) == 12
    assert numbers(search, badge_number="P-2") == ["B-100%_x"]
    assert numbers(search, badge_number="P-404") == []
    assert numbers(search, badge_number="P-1", subject_name="张1") == [
        "A-2026-001",
        "A-2026-010",
        "A-2026-011",
    ]
