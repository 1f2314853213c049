"""Writes are case-scoped and signed by their author, through the real app (create_app), on SQLite
and PostgreSQL (issue 16, points 2 and 8).

An officer on case A only cannot write events, readings, subjects, case officers or body-camera
clips into case B (403, nothing stored, nothing in storage), nor officer records; every write
stores its author and appends an audit row; readings older than the late-entry window (or inside
a range already exported) need a supervisor and are marked on the timeline; a 409 does not say
what is stored; officers read their own and their cases' officers only; API answers are not
cached.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from indexer.audit import AuditLog, load_audit_key
from indexer.case_store import CASES, EVENTS, OBSERVATIONS, SUBJECTS, CaseStore
from indexer.footage import IMPORTS
from indexer.models.users import User
from indexer.segment_store import SegmentStore
from pipeline.api.app import create_app
from pipeline.settings import Settings
from pipeline.storage import LocalStorage
from tests.support.auth import add_user, bearer
from tests.support.case_api import ROOMS
from tests.support.media import BOUNDARY, make_clip, multipart


@dataclass
class Centre:
    client: TestClient
    engine: Engine
    store_dir: Path
    admin: dict[str, str]
    li: dict[str, str]  # officer on case A only
    sup: dict[str, str]
    case_a: int
    case_b: int
    sa: int  # case A's suspect
    sb: int  # case B's suspect
    li_officer: int
    wang_officer: int


def _build(engine: Engine, store: SegmentStore, tmp_path: Path, **api: Any) -> Iterator[Centre]:
    store.sync_rooms(ROOMS)
    settings = Settings(
        api={"upload_tmp": tmp_path / "up", **api},
        export={"out_dir": tmp_path / "exports"},
        audit={"key_file": tmp_path / "audit.key"},
    )
    app = create_app(settings, store, engine=engine, storage=LocalStorage(tmp_path / "store"))
    with TestClient(app) as c:
        add_user(engine, "admin", "admin")
        admin = bearer(c, "admin")
        ids: dict[str, int] = {}
        for n, badge in ((1, "P-1"), (2, "P-2")):
            off = c.post("/api/v1/officers", json={"name": f"警官{n}", "badge_number": badge}, headers=admin)
            case = c.post(
                "/api/v1/cases",
                json={"case_number": f"A-{n}", "title": "案", "charge": "盗窃"},
                headers=admin,
            )
            cid = case.json()["id"]
            assert c.post(
                f"/api/v1/cases/{cid}/officers", json={"officer_id": off.json()["id"]}, headers=admin
            ).is_success
            sub = c.post(
                f"/api/v1/cases/{cid}/subjects", json={"name": f"张{n}", "role": "suspect"}, headers=admin
            )
            ids[f"case{n}"], ids[f"subject{n}"], ids[f"officer{n}"] = cid, sub.json()["id"], off.json()["id"]
        add_user(engine, "li", "officer", officer_badge="P-1")
        add_user(engine, "sup", "supervisor")
        yield Centre(
            c,
            engine,
            tmp_path / "store",
            admin,
            bearer(c, "li"),
            bearer(c, "sup"),
            ids["case1"],
            ids["case2"],
            ids["subject1"],
            ids["subject2"],
            ids["officer1"],
            ids["officer2"],
        )


@pytest.fixture
def centre(engine: Engine, store: SegmentStore, tmp_path: Path) -> Iterator[Centre]:
    yield from _build(engine, store, tmp_path)


def _audit(centre: Centre) -> AuditLog:
    """The centre's keyed audit trail (its key file lies beside its storage)."""
    return AuditLog(centre.engine, load_audit_key(centre.store_dir.parent / "audit.key"))


def _count(engine: Engine, table: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def _user_id(engine: Engine, name: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(User.id).where(User.name == name)).scalar_one())


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _event(eid: str, subject: int | None, minutes_ago: float = 1, **kw: Any) -> dict[str, Any]:
    t = _now() - timedelta(minutes=minutes_ago)
    body = {"id": eid, "type": "entry", "time": t.isoformat(), "room_id": "entry", **kw}
    if subject is not None:
        body["subject_id"] = subject
    return body


def _obs(oid: str, subject: int | None, minutes_ago: float = 1, **kw: Any) -> dict[str, Any]:
    t = _now() - timedelta(minutes=minutes_ago)
    body = {"id": oid, "room_id": "wait", "time": t.isoformat(), "source": "manual", **kw}
    if subject is not None:
        body["subject_id"] = subject
    return body


def _forbidden(resp: Any) -> None:
    assert resp.status_code == 403, resp.text
    assert resp.json()["error"]["code"] == "forbidden"


def test_officer_writes_only_into_own_cases(centre: Centre) -> None:
    c, li = centre.client, centre.li
    events_before, obs_before = _count(centre.engine, EVENTS), _count(centre.engine, OBSERVATIONS)
    # the attack of the issue: events and readings for case B's suspect
    _forbidden(c.post("/api/v1/events", json=_event("x1", centre.sb), headers=li))
    _forbidden(c.post("/api/v1/events", json=_event("x2", None, case_id=centre.case_b), headers=li))
    _forbidden(c.post("/api/v1/events", json=_event("x3", None), headers=li))  # no case at all
    _forbidden(c.post("/api/v1/observations", json=_obs("x4", centre.sb), headers=li))
    # another officer's location, without a subject
    _forbidden(
        c.post("/api/v1/observations", json=_obs("x5", None, officer_id=centre.wang_officer), headers=li)
    )
    # a batch with one item of case B: all or none
    batch = [_event("x6", centre.sa), _event("x7", centre.sb)]
    r = c.post("/api/v1/events/batch", json=batch, headers=li)
    _forbidden(r)
    assert r.json()["error"]["details"]["fields"][0]["field"] == "body.1.subject_id"
    assert (_count(centre.engine, EVENTS), _count(centre.engine, OBSERVATIONS)) == (events_before, obs_before)
    # case B's subjects and officers, and officer records
    _forbidden(
        c.post(f"/api/v1/cases/{centre.case_b}/subjects", json={"name": "假", "role": "witness"}, headers=li)
    )
    _forbidden(
        c.post(f"/api/v1/cases/{centre.case_b}/officers", json={"officer_id": centre.li_officer}, headers=li)
    )
    _forbidden(c.post("/api/v1/officers", json={"name": "假", "badge_number": "X-9"}, headers=li))
    # the same writes into case A are fine, and their own location
    assert c.post("/api/v1/events", json=_event("ok1", centre.sa), headers=li).status_code == 201
    assert c.post("/api/v1/observations", json=_obs("ok2", centre.sa), headers=li).status_code == 201
    mine = _obs("ok3", None, officer_id=centre.li_officer)
    assert c.post("/api/v1/observations", json=mine, headers=li).status_code == 201
    # a case they create is theirs (attached as lead); an existing number of someone else's is not
    made = c.post("/api/v1/cases", json={"case_number": "A-3", "title": "新案", "charge": "诈骗"}, headers=li)
    assert made.status_code == 201
    assert c.get(f"/api/v1/cases/{made.json()['id']}", headers=li).json()["officers"][0]["role"] == "lead"
    taken = c.post("/api/v1/cases", json={"case_number": "A-2", "title": "案", "charge": "盗窃"}, headers=li)
    _forbidden(taken)


def test_every_write_stores_its_author_and_is_audited(centre: Centre) -> None:
    c, li, sup = centre.client, centre.li, centre.sup
    first = _event("e1", centre.sa)
    ev = c.post("/api/v1/events", json=first, headers=li)
    assert ev.status_code == 201
    assert (ev.json()["entered_by"], ev.json()["late"]) == ("li", False)
    ob = c.post("/api/v1/observations", json=_obs("o1", centre.sb), headers=sup)
    assert ob.json()["entered_by"] == "sup"
    subject = c.post(
        f"/api/v1/cases/{centre.case_a}/subjects", json={"name": "证人", "role": "witness"}, headers=li
    )
    made = c.post("/api/v1/cases", json={"case_number": "A-7", "title": "t", "charge": "c"}, headers=li)
    li_id, sup_id = _user_id(centre.engine, "li"), _user_id(centre.engine, "sup")
    with centre.engine.connect() as conn:
        assert (
            conn.execute(select(EVENTS.c.created_by).where(EVENTS.c.client_id == "e1")).scalar_one() == li_id
        )
        assert (
            conn.execute(
                select(OBSERVATIONS.c.created_by).where(OBSERVATIONS.c.client_id == "o1")
            ).scalar_one()
            == sup_id
        )
        assert (
            conn.execute(
                select(SUBJECTS.c.created_by).where(SUBJECTS.c.id == subject.json()["id"])
            ).scalar_one()
            == li_id
        )
        assert (
            conn.execute(select(CASES.c.created_by).where(CASES.c.id == made.json()["id"])).scalar_one()
            == li_id
        )
    # a replay writes nothing and keeps the first author
    again = c.post("/api/v1/events", json=first, headers=centre.admin)
    assert again.status_code == 200 and again.json()["entered_by"] == "li"
    rows = [(r.user, r.action, r.object) for r in reversed(_audit(centre).rows(limit=1000))]
    for want in (
        ("admin", "case_create", "case:A-1"),
        ("admin", "officer_create", "officer:P-1"),
        ("admin", "case_officer_add", "case:A-1"),
        ("admin", "subject_create", "case:A-2"),
        ("li", "event_write", "case:A-1"),
        ("sup", "observation_write", "case:A-2"),
        ("li", "subject_create", "case:A-1"),
        ("li", "case_create", "case:A-7"),
    ):
        assert want in rows, want
    assert [r for r in rows if r[1] == "event_write"].count(("li", "event_write", "case:A-1")) == 1
    assert _audit(centre).verify().ok


def test_alert_handling_stores_the_user(centre: Centre) -> None:
    from indexer.alert_store import AlertStore, NewAlert

    store = AlertStore(centre.engine)
    rec, _ = store.raise_or_continue(
        NewAlert("unattended", "k1", "high", "m", _now(), case_id=centre.case_a), _now()
    )
    r = centre.client.post(
        f"/api/v1/alerts/{rec.id}/acknowledge", json={"note": "看到了"}, headers=centre.sup
    )
    assert r.status_code == 200 and r.json()["acknowledged_by"] == "sup"
    with centre.engine.connect() as conn:
        from indexer.alert_store import ALERTS

        got = conn.execute(select(ALERTS.c.acknowledged_by_id).where(ALERTS.c.id == rec.id)).scalar_one()
    assert got == _user_id(centre.engine, "sup")
    rows = _audit(centre).rows(action="alert_acknowledge")
    assert [(r.user, r.object) for r in rows] == [("sup", f"alert:{rec.id}")]


def test_bodycam_upload_scoped_to_own_cases(centre: Centre, tmp_path: Path) -> None:
    data = make_clip(tmp_path / "clip.mp4", seconds=1.0)
    headers = {**centre.li, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}

    def upload(**form: str) -> Any:
        return centre.client.post(
            "/api/v1/bodycam/clips", content=multipart(data, device_id="DSJ-01", **form), headers=headers
        )

    _forbidden(upload(subject_ids=str(centre.sb)))  # the clip filed under case B's suspect
    _forbidden(upload(subject_ids=str(centre.sa), officer_id=str(centre.wang_officer)))  # as someone else
    assert _count(centre.engine, IMPORTS) == 0
    assert not any(p.is_file() for p in centre.store_dir.rglob("*")), "a refused upload left a stored object"
    ok = upload(subject_ids=str(centre.sa), officer_id=str(centre.li_officer))
    assert ok.status_code == 201, ok.text
    with centre.engine.connect() as conn:
        assert conn.execute(select(IMPORTS.c.created_by)).scalar_one() == _user_id(centre.engine, "li")
    assert [r.user for r in _audit(centre).rows(action="bodycam_upload")] == ["li"]


def test_late_entries_need_a_supervisor_and_are_marked(centre: Centre) -> None:
    c = centre.client
    old = 25 * 60  # minutes: past the default 24 h window
    r = c.post("/api/v1/observations", json=_obs("late-o", centre.sa, minutes_ago=old), headers=centre.li)
    _forbidden(r)
    assert r.json()["error"]["details"]["fields"][0]["field"] == "body.time"
    _forbidden(c.post("/api/v1/events", json=_event("late-e", centre.sa, minutes_ago=old), headers=centre.li))
    assert (
        c.post(
            "/api/v1/events", json=_event("fresh", centre.sa, minutes_ago=60), headers=centre.li
        ).status_code
        == 201
    )
    ob = c.post("/api/v1/observations", json=_obs("late-o", centre.sa, minutes_ago=old), headers=centre.sup)
    ev = c.post("/api/v1/events", json=_event("late-e", centre.sa, minutes_ago=old), headers=centre.sup)
    assert ob.status_code == ev.status_code == 201
    assert ob.json()["late"] is True and ev.json()["late"] is True and ev.json()["entered_by"] == "sup"
    tl = c.get(f"/api/v1/cases/{centre.case_a}/timeline", headers=centre.li).json()
    marks = {e["id"]: (e["late"], e["entered_by"]) for e in tl["events"]}
    assert marks == {"late-e": (True, "sup"), "fresh": (False, "li")}
    subject = next(s for s in tl["subjects"] if s["subject"]["id"] == centre.sa)
    assert [(o["id"], o["entered_by"]) for o in subject["late_readings"]] == [("late-o", "sup")]
    assert subject["late_readings"][0]["entered_at"] is not None
    audit = [r for r in _audit(centre).rows(action="observation_write") if r.user == "sup"]
    assert audit[0].detail is not None and audit[0].detail["late"] == ["late-o"]


def test_readings_inside_an_exported_range_are_late(centre: Centre) -> None:
    c = centre.client
    now = _now()
    # case A's suspect's last hour went onto a disc (what ExportService.run records)
    CaseStore(centre.engine).record_export(centre.case_a, centre.sa, now - timedelta(hours=1), now, "exp1")
    inside = _event("in", centre.sa, minutes_ago=30)
    _forbidden(c.post("/api/v1/events", json=inside, headers=centre.li))
    # an event about no one subject of the case is inside it too
    _forbidden(
        c.post("/api/v1/events", json=_event("case-wide", None, 30, case_id=centre.case_a), headers=centre.li)
    )
    assert (
        c.post(
            "/api/v1/events", json=_event("before", centre.sa, minutes_ago=90), headers=centre.li
        ).status_code
        == 201
    )
    done = c.post("/api/v1/events", json=inside, headers=centre.sup)
    assert done.status_code == 201 and done.json()["late"] is True


@pytest.fixture
def short_window(engine: Engine, store: SegmentStore, tmp_path: Path) -> Iterator[Centre]:
    yield from _build(engine, store, tmp_path, late_entry_hours=0.5)


def test_late_entry_window_is_a_setting(short_window: Centre) -> None:
    c = short_window
    _forbidden(c.client.post("/api/v1/events", json=_event("e", c.sa, minutes_ago=45), headers=c.li))
    assert (
        c.client.post("/api/v1/events", json=_event("e", c.sa, minutes_ago=20), headers=c.li).status_code
        == 201
    )


def test_conflict_does_not_say_what_is_stored(centre: Centre) -> None:
    c = centre.client
    body = _event("dup", centre.sa, payload={"secret": "机密"})
    assert c.post("/api/v1/events", json=body, headers=centre.admin).status_code == 201
    clash = c.post("/api/v1/events", json={**body, "payload": {}}, headers=centre.admin)
    assert clash.status_code == 409
    err = clash.json()["error"]
    assert err["code"] == "conflict" and "reused with different content" in err["message"]
    assert "payload" not in err["message"] and "fields" not in err["details"]
    case = c.post(
        "/api/v1/cases", json={"case_number": "A-1", "title": "别的", "charge": "盗窃"}, headers=centre.admin
    )
    assert case.status_code == 409 and "title" not in case.json()["error"]["message"]


def test_officers_read_their_own_and_their_cases_officers_only(centre: Centre) -> None:
    c = centre.client
    assert c.get(f"/api/v1/officers/{centre.li_officer}", headers=centre.li).status_code == 200
    _forbidden(c.get(f"/api/v1/officers/{centre.wang_officer}", headers=centre.li))
    # once wang is on a case of li's, li may read his record
    assert (
        c.post(
            f"/api/v1/cases/{centre.case_a}/officers",
            json={"officer_id": centre.wang_officer},
            headers=centre.li,
        ).status_code
        == 201
    )
    assert c.get(f"/api/v1/officers/{centre.wang_officer}", headers=centre.li).status_code == 200
    assert c.get(f"/api/v1/officers/{centre.wang_officer}", headers=centre.sup).status_code == 200


def test_api_answers_are_not_cached(centre: Centre) -> None:
    c = centre.client
    for path in (
        f"/api/v1/cases/{centre.case_a}",
        f"/api/v1/cases/{centre.case_a}/timeline",
        f"/api/v1/subjects/{centre.sa}",
        f"/api/v1/subjects/{centre.sa}/trajectory",
        f"/api/v1/subjects/{centre.sa}/footage?start=2026-03-01T08:00:00Z&end=2026-03-01T09:00:00Z",
        "/api/v1/cases",
    ):
        r = c.get(path, headers=centre.li)
        assert r.status_code == 200, (path, r.text)
        assert r.headers["cache-control"] == "no-store", path
    assert c.get(f"/api/v1/cases/{centre.case_b}", headers=centre.li).headers["cache-control"] == "no-store"
