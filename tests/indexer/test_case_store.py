"""CaseStore on SQLite and PostgreSQL: idempotency by client id, validation, atomic batches."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select

from domain.errors import ConflictError, NotFoundError, ValidationFailed
from domain.types import EventType, ObservationSource
from indexer.case_records import NewCase, NewEvent, NewObservation, NewOfficer, NewSubject
from indexer.case_store import EVENT_OFFICERS, EVENTS, OBSERVATIONS, SUBJECTS, CaseStore
from indexer.segment_store import SegmentStore

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
NOW = T0 + timedelta(hours=12)


@pytest.fixture
def cs(engine: Engine, store: SegmentStore) -> CaseStore:
    store.sync_rooms(
        [
            ("entry", "入区登记", "entry", []),
            ("wait", "候问室", "waiting", []),
            ("int-1", "讯问室1", "interrogation", [("cam-a", "a", "rtsp://10.0.0.1/a")]),
        ]
    )
    return CaseStore(engine, max_future=timedelta(seconds=300), clock=lambda: NOW)


def _count(engine: Engine, table: object) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def _people(cs: CaseStore) -> tuple[int, int, int]:
    case, _ = cs.create_case(NewCase("A-2026-001", "盗窃案", "盗窃"))
    subject, _ = cs.create_subject(NewSubject(case.id, "张三", "suspect", id_number="110101199001011234"))
    officer, _ = cs.create_officer(NewOfficer("李警官", "P-001"))
    return case.id, subject.id, officer.id


def ev(cid: str, minutes: float, subject: int, type_: EventType = EventType.ENTRY, **kw: object) -> NewEvent:
    return NewEvent(cid, type_, T0 + timedelta(minutes=minutes), subject_id=subject, **kw)  # type: ignore[arg-type]


def test_case_number_idempotent_and_conflicting(cs: CaseStore) -> None:
    a, created = cs.create_case(NewCase("A-1", "title", "charge"))
    b, again = cs.create_case(NewCase("A-1", "title", "charge"))
    assert created and not again and a.id == b.id
    with pytest.raises(ConflictError) as err:
        cs.create_case(NewCase("A-1", "other title", "charge"))
    # says the key was reused, not which stored fields differ (the row may be someone else's)
    assert "title" not in err.value.message and "fields" not in err.value.details
    assert "reused with different content" in err.value.message
    assert cs.get_case(a.id).case_number == "A-1"
    with pytest.raises(NotFoundError):
        cs.get_case(a.id + 1000)


def test_officer_and_subject_idempotent_by_natural_key(cs: CaseStore, engine: Engine) -> None:
    case_id, subject_id, officer_id = _people(cs)
    again, created = cs.create_officer(NewOfficer("李警官", "P-001"))
    assert again.id == officer_id and not created
    with pytest.raises(ConflictError):
        cs.create_officer(NewOfficer("王警官", "P-001"))
    same, created = cs.create_subject(NewSubject(case_id, "张三", "suspect", id_number="110101199001011234"))
    assert same.id == subject_id and not created
    assert _count(engine, SUBJECTS) == 1
    with pytest.raises(NotFoundError):
        cs.create_subject(NewSubject(case_id + 99, "x", "witness"))


def test_same_event_id_twice_is_one_row(cs: CaseStore, engine: Engine) -> None:
    _, subject, officer = _people(cs)
    e = ev("e-1", 0, subject, room_id="entry", officer_ids=(officer,), payload={"note": "入区"})
    first = cs.add_events([e])
    second = cs.add_events([e, e])
    assert first[0].created and not second[0].created and not second[1].created
    assert _count(engine, EVENTS) == 1
    assert _count(engine, EVENT_OFFICERS) == 1


def test_same_id_different_content_conflicts_and_batch_is_atomic(cs: CaseStore, engine: Engine) -> None:
    _, subject, _ = _people(cs)
    cs.add_events([ev("e-1", 0, subject, room_id="entry")])
    with pytest.raises(ConflictError) as err:
        cs.add_events([ev("e-2", 5, subject), ev("e-1", 1, subject, room_id="entry")])
    assert "time" not in err.value.message and "fields" not in err.value.details
    assert _count(engine, EVENTS) == 1  # e-2 was rolled back with the batch
    with pytest.raises(ConflictError):
        cs.add_events([ev("e-3", 0, subject), ev("e-3", 1, subject)])


def test_unknown_references_and_future_times_are_field_errors(cs: CaseStore, engine: Engine) -> None:
    _, subject, _ = _people(cs)
    bad = [
        ev("ok", 0, subject, room_id="entry"),
        ev("b1", 0, subject, room_id="nowhere", officer_ids=(999,)),
        ev("b2", 0, 4242),
        NewEvent("b3", EventType.SEARCH, NOW + timedelta(seconds=301), subject_id=subject),
        NewEvent("b4", EventType.SEARCH, datetime(2026, 3, 1, 8, 0), subject_id=subject),
    ]
    with pytest.raises(ValidationFailed) as err:
        cs.add_events(bad)
    fields = {f["field"] for f in err.value.details["fields"]}
    assert fields == {
        "body.1.room_id",
        "body.1.officer_ids",
        "body.2.subject_id",
        "body.3.time",
        "body.4.time",
    }
    assert _count(engine, EVENTS) == 0
    with pytest.raises(ValidationFailed) as one:
        cs.add_events([ev("x", 0, subject, room_id="nowhere")], batch=False)
    assert one.value.details["fields"][0]["field"] == "body.room_id"
    # Just inside the future limit is accepted.
    cs.add_events([NewEvent("f", EventType.OTHER, NOW + timedelta(seconds=299), subject_id=subject)])


def test_event_case_comes_from_subject_and_mismatch_is_refused(cs: CaseStore) -> None:
    case_id, subject, _ = _people(cs)
    other, _ = cs.create_case(NewCase("B-1", "t", "c"))
    stored = cs.add_events([ev("e", 0, subject)])
    assert stored[0].case_id == case_id
    with pytest.raises(ValidationFailed) as err:
        cs.add_events([ev("e2", 0, subject, case_id=other.id)])
    assert err.value.details["fields"][0]["field"] == "body.0.case_id"


def test_out_of_order_events_read_back_in_time_order(cs: CaseStore) -> None:
    case_id, subject, _ = _people(cs)
    cs.add_events([ev("c", 30, subject, EventType.INTERROGATION_START, room_id="int-1")])
    cs.add_events(
        [ev("a", 0, subject, room_id="entry"), ev("b", 10, subject, EventType.WAITING, room_id="wait")]
    )
    assert [e.event.event_id for e in cs.events(case_id=case_id)] == ["a", "b", "c"]
    assert [e.event.event_id for e in cs.events(subject_id=subject, start=T0 + timedelta(minutes=5))] == [
        "b",
        "c",
    ]


def test_observations_idempotent_and_validated(cs: CaseStore, engine: Engine) -> None:
    _, subject, officer = _people(cs)
    o = NewObservation("o-1", "wait", T0, ObservationSource.WRISTBAND, subject_id=subject)
    assert cs.add_observations([o, o])[0].created
    assert not cs.add_observations([o])[0].created
    cs.add_observations([NewObservation("o-2", "wait", T0, ObservationSource.FACE, officer_id=officer)])
    assert _count(engine, OBSERVATIONS) == 2
    with pytest.raises(ConflictError):
        cs.add_observations(
            [NewObservation("o-1", "entry", T0, ObservationSource.WRISTBAND, subject_id=subject)]
        )
    with pytest.raises(ValidationFailed) as err:
        cs.add_observations(
            [
                NewObservation("o-3", "nowhere", T0, ObservationSource.FACE),
                NewObservation("o-4", "wait", T0, ObservationSource.FACE, subject_id=77, officer_id=88),
            ]
        )
    fields = {f["field"] for f in err.value.details["fields"]}
    assert fields == {"body.0.room_id", "body.0.subject_id", "body.1.subject_id", "body.1.officer_id"}
    assert [x.room_id for x in cs.subject_observations(subject)] == ["wait"]


def test_two_concurrent_writers_with_overlapping_batches(cs: CaseStore, engine: Engine) -> None:
    _, subject, _ = _people(cs)
    batches = [
        [ev(f"e-{i}", i, subject, EventType.OTHER) for i in range(0, 300)],
        [ev(f"e-{i}", i, subject, EventType.OTHER) for i in range(150, 450)],
    ]
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def write(batch: list[NewEvent]) -> None:
        barrier.wait()
        try:
            for i in range(0, len(batch), 50):
                cs.add_events(batch[i : i + 50])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(b,)) for b in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert _count(engine, EVENTS) == 450
