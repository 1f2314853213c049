"""Late entries on the court disc, and exports recording what they sealed (issue 16, point 2), on
SQLite and PostgreSQL: a supervisor's late event and reading are marked in the disc's manifest and
its index page (who entered them, when); the export records its range, and a reading written into
that range afterwards is a late entry even when it is fresh."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from domain.types import EventType, ObservationSource, iso
from indexer.case_records import NewCase, NewEvent, NewObservation, NewSubject
from indexer.case_store import EXPORTED, CaseStore
from indexer.models import from_us
from indexer.segment_store import SegmentStore
from pipeline.api.app import create_app
from pipeline.export.service import ExportService, ExportSpec
from pipeline.settings import Settings
from pipeline.storage import LocalStorage
from tests.exporter.conftest import extract
from tests.exporter.scenario import INDEX_ROOMS, Scenario, at, index_scenario
from tests.support.auth import add_user, bearer

pytestmark = pytest.mark.integration  # a scenario and a whole export: ~5 s


def test_late_entries_are_marked_on_the_disc_and_exports_seal_their_range(
    engine: Engine, store: SegmentStore, scenario: Scenario, tmp_path: Path
) -> None:
    store.sync_rooms(INDEX_ROOMS)
    index_scenario(store, scenario)
    # what the centre's systems recorded at the time (the system's own writes: no late entry)
    cases = CaseStore(engine)
    case, _ = cases.create_case(NewCase("A-1", "盗窃案", "盗窃"))
    subject, _ = cases.create_subject(NewSubject(case.id, "张三", "suspect"))
    cases.add_observations(
        [NewObservation("o-wait", "R-WAIT", at(9), ObservationSource.WRISTBAND, subject.id)]
    )
    cases.add_events(
        [
            NewEvent("e-int", EventType.INTERROGATION_START, at(12), "R-INT1", None, subject.id),
            NewEvent("e-exit", EventType.EXIT, at(23), None, None, subject.id),
        ]
    )
    settings = Settings(
        api={"upload_tmp": tmp_path / "up"},
        export={"out_dir": tmp_path / "exports", "signing_key": tmp_path / "key.pem"},
    )
    storage = LocalStorage(scenario.root)
    app = create_app(settings, store, engine=engine, storage=storage)
    with TestClient(app) as c:
        add_user(engine, "sup", "supervisor")
        sup = bearer(c, "sup")
        late_event = {
            "id": "e-signed",
            "type": "transcript_signed",
            "time": iso(at(21)),
            "room_id": "R-INT1",
            "subject_id": subject.id,
        }
        late_reading = {
            "id": "o-late",
            "room_id": "R-INT1",
            "time": iso(at(13)),
            "source": "manual",
            "subject_id": subject.id,
        }
        assert c.post("/api/v1/events", json=late_event, headers=sup).json()["late"] is True
        assert c.post("/api/v1/observations", json=late_reading, headers=sup).json()["late"] is True
        app.state.exports.stop()

    service = ExportService(settings, engine, storage)
    # (the scenario's footage has holes between stays: not what this test is about)
    spec = ExportSpec(
        "A-1", str(subject.id), start=at(8), end=at(24), exported_by="sup", allow_unexplained=True
    )
    result = service.run(spec)
    disc = extract(result.master_images[0], tmp_path / "disc")
    manifest = json.loads((disc / "manifest.json").read_text(encoding="utf-8"))
    late = {(x["kind"], x["id"]): x for x in manifest["late_entries"]}
    assert set(late) == {("event", "e-signed"), ("observation", "o-late")}
    assert late["event", "e-signed"]["entered_by"] == "sup" and late["event", "e-signed"]["entered_at"]
    marks = {e["event_id"]: e["late"] for s in manifest["stages"] for e in s["events"]}
    assert marks["e-signed"] is True and marks["e-int"] is False
    page = (disc / "index.html").read_text(encoding="utf-8")
    data = json.loads(re.search(r"var D = (\{.*?\});\n", page, re.S).group(1))  # type: ignore[union-attr]
    assert [(e["type"], e["late"]) for e in data["events"] if e["type"] == "transcript_signed"] == [
        ("transcript_signed", True)
    ]
    assert sorted((x["kind"], x["by"]) for x in data["late_entries"]) == [
        ("event", "sup"),
        ("observation", "sup"),
    ]
    assert "补录条目" in page and "Late entries" in page

    # the export recorded its range: a reading written into it now is a late entry, one after it is not
    with engine.connect() as conn:
        rows = conn.execute(select(EXPORTED)).mappings().all()
    assert [(r["subject_id"], from_us(r["start_us"]), from_us(r["end_us"])) for r in rows] == [
        (subject.id, at(8), at(24))
    ]
    assert rows[0]["export_id"] == result.export_id
    after = cases.add_events(
        [
            NewEvent("e-inside", EventType.OTHER, at(16), "R-INT1", None, subject.id),
            NewEvent("e-outside", EventType.OTHER, at(30), "R-INT1", None, subject.id),
        ]
    )
    assert [(s.event.event_id, s.entry.late) for s in after] == [("e-inside", True), ("e-outside", False)]
