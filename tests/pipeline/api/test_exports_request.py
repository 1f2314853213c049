"""The export request's accepted intervals and the export plan route (pipeline/api/exports.py):
bad intervals are refused with the field named; the plan says what the export would refuse."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from indexer.case_records import NewCase, NewSubject
from indexer.case_store import CaseStore
from indexer.segment_store import SegmentStore
from pipeline.api.app import create_app
from pipeline.settings import Settings
from pipeline.storage import LocalStorage
from tests.support.auth import add_user, bearer


@pytest.fixture
def api(engine: Engine, tmp_path: Path) -> Iterator[tuple[TestClient, int, int]]:
    settings = Settings(
        api={"upload_tmp": tmp_path / "up"},
        export={"out_dir": tmp_path / "exports", "signing_key": tmp_path / "key.pem"},
        audit={"key_file": tmp_path / "audit.key"},
    )
    cases = CaseStore(engine)
    case, _ = cases.create_case(NewCase("A-1", "盗窃案", "盗窃"))
    subject, _ = cases.create_subject(NewSubject(case.id, "张三", "suspect"))
    add_user(engine, "zhang", "supervisor")
    add_user(engine, "wang", "officer")
    app = create_app(settings, SegmentStore(engine), engine=engine, storage=LocalStorage(tmp_path / "s"))
    with TestClient(app) as c:
        c.headers.update(bearer(c, "zhang"))
        yield c, case.id, subject.id


def _refused(resp: Any, field: str) -> None:
    assert resp.status_code == 422, resp.text
    err = resp.json()["error"]
    assert err["code"] == "validation_failed" and field in [f["field"] for f in err["details"]["fields"]], err


def test_accepted_intervals_are_checked(api: tuple[TestClient, int, int]) -> None:
    c, _case, subject = api
    body = {"case": "A-1", "subject": str(subject)}
    good = {"start": "2026-05-01T01:00:03Z", "end": "2026-05-01T01:00:05Z", "note": "押解途中"}
    naive = {**good, "start": "2026-05-01T01:00:03"}
    _refused(c.post("/api/v1/exports", json={**body, "accept": [naive]}), "body.accept.0.start")
    backwards = {**good, "end": "2026-05-01T01:00:01Z"}
    _refused(c.post("/api/v1/exports", json={**body, "accept": [good, backwards]}), "body.accept.1.end")
    blank = {**good, "note": "   "}
    _refused(c.post("/api/v1/exports", json={**body, "accept": [blank]}), "body.accept.0.note")
    assert c.post("/api/v1/exports", json={**body, "accept": [{**good, "note": ""}]}).status_code == 422


def test_the_plan_route_answers_with_the_exporters_reason(api: tuple[TestClient, int, int]) -> None:
    c, _case, subject = api
    resp = c.get("/api/v1/exports/plan", params={"case": "A-1", "subject": str(subject)})
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["code"] == "export_range_invalid"  # no footage: nothing to plan
    naive = c.get(
        "/api/v1/exports/plan", params={"case": "A-1", "subject": str(subject), "from": "2026-05-01T01:00:00"}
    )
    _refused(naive, "query.from")
    assert c.get("/api/v1/exports/plan", params={"case": "B-9", "subject": "1"}).status_code == 404
    c.headers.update(bearer(c, "wang"))  # an officer not on the case
    assert c.get("/api/v1/exports/plan", params={"case": "A-1", "subject": str(subject)}).status_code == 403
