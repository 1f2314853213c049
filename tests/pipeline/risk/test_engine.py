"""The engine's bookkeeping on a database (SQLite): a condition that ends and comes back continues
its alert; a fleet recording node's engine (people=False) raises camera alerts only and never
ends the API node's alerts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from domain.types import EventType, PictureFault, PictureObservation
from indexer.case_records import NewCase, NewEvent, NewSubject
from indexer.case_store import CaseStore
from indexer.database import create_engine_for, upgrade
from indexer.segment_store import SegmentStore
from pipeline.risk.engine import RiskEngine, rooms_of
from pipeline.settings import Settings
from tests.support.clock import StepClock

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def test_condition_continues_and_recording_node_keeps_to_camera_alerts(tmp_path: Path) -> None:
    eng = create_engine_for(f"sqlite:///{tmp_path / 'index.db'}")
    upgrade(eng)
    settings = Settings.model_validate(
        {
            "rooms": [
                {
                    "id": "wait",
                    "name": "w",
                    "kind": "waiting",
                    "cameras": [{"id": "w-a", "url": "rtsp://h/a"}],
                }
            ]
        }
    )
    SegmentStore(eng).sync_rooms(settings.room_rows())
    cases = CaseStore(eng)
    case, _ = cases.create_case(NewCase("C1", "t", "c"))
    a, _ = cases.create_subject(NewSubject(case.id, "甲", "suspect"))
    b, _ = cases.create_subject(NewSubject(case.id, "乙", "suspect"))
    clock = StepClock(T0)
    api_node = RiskEngine(settings.risk, rooms_of(settings), eng, clock)
    api_node.load()

    def post(eid: str, type_: EventType, t: datetime, subject: int, room: str | None) -> None:
        api_node.observe_events(
            cases.add_events([NewEvent(eid, type_, t, room, None, subject, (9,) if False else ())])
        )

    post("a1", EventType.ENTRY, T0, a.id, "wait")
    post("b1", EventType.ENTRY, T0, b.id, "wait")
    [co] = api_node.alerts.open_alerts()
    assert co.rule == "co_suspects" and co.end is None
    clock.t += 10  # the engine stamps the end when it learns of it (its clock, not the report's)
    post("b2", EventType.EXIT, T0 + timedelta(seconds=10), b.id, None)
    ended = api_node.alerts.get(co.id)
    assert ended.end == T0 + timedelta(seconds=10) and ended.state == "open"
    clock.t += 10
    post("b3", EventType.ENTRY, T0 + timedelta(seconds=20), b.id, "wait")  # together again
    again = api_node.alerts.get(co.id)
    assert (again.end, again.occurrences, len(api_node.alerts.open_alerts())) == (None, 2, 1)

    node = RiskEngine(settings.risk, rooms_of(settings), eng, clock, people=False)
    node.load()
    clock.t += 4 * 3600  # long after: a stale engine would raise time limits, stays and missing exits
    node.tick()
    node.observe_picture(
        PictureObservation("w-a", T0, frozenset({PictureFault.BLACK, PictureFault.MOVED}), 0, b"\xff\xd8")
    )
    rules = sorted(x.rule for x in node.alerts.open_alerts())
    assert rules == ["camera_moved", "co_suspects"]  # black needs occupancy this node cannot know
    assert node.alerts.get(co.id).end is None  # the API node's alert left alone
