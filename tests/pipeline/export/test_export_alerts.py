"""Which stored risk alerts go on a subject's disc (ExportService.case_alerts), SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine

from domain.types import EventType
from indexer.alert_store import AlertStore, NewAlert
from indexer.case_records import NewCase, NewEvent, NewSubject
from indexer.case_store import CaseStore
from indexer.segment_store import SegmentStore
from pipeline.export.service import ExportService, ExportSpec
from pipeline.settings import Settings
from pipeline.storage import LocalStorage

T0 = datetime(2026, 5, 1, 1, 0, tzinfo=UTC)
ROOMS = [
    ("wait", "候问室", "waiting", [("wait-a", "a", "rtsp://h/a")]),
    ("int-1", "讯问室", "interrogation", []),
]


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def test_subjects_disc_gets_its_own_case_and_room_alerts(engine: Engine, tmp_path: Path) -> None:
    SegmentStore(engine).sync_rooms(ROOMS)
    cases = CaseStore(engine, max_future=timedelta(days=3650))
    case, _ = cases.create_case(NewCase("A7", "t", "盗窃"))
    other_case, _ = cases.create_case(NewCase("B8", "t", "诈骗"))
    me, _ = cases.create_subject(NewSubject(case.id, "甲", "suspect"))
    mate, _ = cases.create_subject(NewSubject(case.id, "乙", "suspect"))
    cases.add_events(
        [
            NewEvent("e1", EventType.ENTRY, at(0), "wait", None, me.id),
            NewEvent("e2", EventType.INTERROGATION_START, at(30), "int-1", None, me.id),
            NewEvent("e3", EventType.EXIT, at(90), None, None, me.id),
        ]
    )
    store = AlertStore(engine)

    def alert(key: str, start: float, end: float | None, **kw: object) -> int:
        rule = key.split(":")[0]
        new = NewAlert(rule, key, "high", key, at(start), None if end is None else at(end), **kw)  # type: ignore[arg-type]
        return store.raise_or_continue(new, at(start))[0].id

    mine = alert("unattended:me", 5, 10, case_id=case.id, subject_id=me.id, room_id="wait")
    together = alert(
        "co_suspects:a7", 6, 8, case_id=case.id, room_id="wait", details={"subject_ids": [me.id, mate.id]}
    )
    alert("time_limit_exceeded:mate", 700, None, case_id=case.id, subject_id=mate.id)  # not about me
    covered = alert(
        "picture_covered:wait-a", 20, 25, case_id=other_case.id, room_id="wait", camera_id="wait-a"
    )
    alert("picture_black:wait-a", 40, 45, room_id="wait", camera_id="wait-a")  # I was in int-1 then
    during = alert(
        "recording_lost:int", 60, None, room_id="int-1", camera_id="int-a"
    )  # still open, I was there
    alert("recording_lost:int-old", -30, -20, room_id="int-1")  # before I came
    settings = Settings.model_validate({"export": {"signing_key": str(tmp_path / "key.pem")}})
    svc = ExportService(settings, engine, LocalStorage(tmp_path / "store"))
    got = svc.case_alerts("A7", str(me.id))
    assert [a["id"] for a in got] == [mine, together, covered, during]
    first = got[0]
    assert (first["label_zh"], first["start"], first["end"], first["state"]) == (
        "无人看管",
        "2026-05-01T01:05:00.000000Z",
        "2026-05-01T01:10:00.000000Z",
        "open",
    )
    assert svc.options(ExportSpec("A7", str(me.id))).alerts == got  # what the export job puts on the disc
