"""Officers play the footage of their own cases: a camera of a room their case's subject stayed
in, over a range inside that stay (padded) — anything else 403; the audit row names the case.
Runs on SQLite and PostgreSQL (the access check reads the case index)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from domain.types import iso
from indexer.audit import AuditLog, load_audit_key
from indexer.segment_store import SegmentStore
from pipeline.api.app import create_app
from pipeline.api.footage_access import STAY_PAD
from pipeline.settings import Settings
from pipeline.storage import LocalStorage
from tests.exporter.scenario import INDEX_ROOMS, Scenario, at, index_scenario
from tests.support.auth import add_user, bearer


@pytest.fixture
def client(engine: Engine, store: SegmentStore, scenario: Scenario, tmp_path: Path) -> Iterator[TestClient]:
    store.sync_rooms(INDEX_ROOMS)
    index_scenario(store, scenario)
    settings = Settings(
        api={"upload_tmp": tmp_path / "up"},
        export={"out_dir": tmp_path / "exports"},
        audit={"key_file": tmp_path / "audit.key"},
    )
    app = create_app(settings, store, engine=engine, storage=LocalStorage(scenario.root))
    with TestClient(app) as c:
        yield c


def _case(c: TestClient, admin: dict[str, str], n: int, badge: str, room: str, t0: float, t1: float) -> int:
    off = c.post("/api/v1/officers", json={"name": f"警官{n}", "badge_number": badge}, headers=admin)
    cid = int(
        c.post(
            "/api/v1/cases", json={"case_number": f"A-{n}", "title": "案", "charge": "盗窃"}, headers=admin
        ).json()["id"]
    )
    assert c.post(
        f"/api/v1/cases/{cid}/officers", json={"officer_id": off.json()["id"]}, headers=admin
    ).is_success
    sid = c.post(f"/api/v1/cases/{cid}/subjects", json={"name": f"张{n}", "role": "suspect"}, headers=admin)
    sid_ = sid.json()["id"]
    r = c.post(
        "/api/v1/observations",
        json={"id": f"o{n}", "room_id": room, "time": iso(at(t0)), "source": "wristband", "subject_id": sid_},
        headers=admin,
    )
    assert r.status_code == 201, r.text
    r = c.post(
        "/api/v1/events",
        json={"id": f"e{n}", "type": "exit", "time": iso(at(t1)), "subject_id": sid_},
        headers=admin,
    )
    assert r.status_code == 201, r.text
    return cid


def test_officer_plays_own_cases_stays_only(client: TestClient, engine: Engine, tmp_path: Path) -> None:
    add_user(engine, "admin", "admin")
    admin = bearer(client, "admin")
    mine = _case(client, admin, 1, "P-1", "R-INT1", 12, 23)  # li's suspect: interrogation room 12–23 s
    other = _case(client, admin, 2, "P-2", "R-WAIT", 9, 12)  # someone else's suspect: waiting room
    add_user(engine, "li", "officer", officer_badge="P-1")
    li = bearer(client, "li")
    mp4, vtt = "/api/v1/playback/cam-int.mp4", "/api/v1/playback/cam-int.vtt"
    inside = {"start": iso(at(12)), "end": iso(at(14))}

    ok = client.get(mp4, params={**inside, "case_id": mine}, headers=li)
    assert ok.status_code == 200, ok.text
    assert ok.content[4:8] == b"ftyp" and len(ok.content) > 10_000
    assert client.get(vtt, params={**inside, "case_id": mine}, headers=li).status_code == 200
    # without a case, or with a case that is not theirs: 403 in the one error shape
    bare = client.get(mp4, params=inside, headers=li)
    assert bare.status_code == 403 and bare.json()["error"]["code"] == "forbidden"
    assert client.get(mp4, params={**inside, "case_id": other}, headers=li).status_code == 403
    # another case's camera/range named under their own case: the waiting room is not in it
    wait = {"start": iso(at(9)), "end": iso(at(11)), "case_id": mine}
    assert client.get("/api/v1/playback/cam-wait.mp4", params=wait, headers=li).status_code == 403
    # a range of the right camera outside the stay (beyond the pad), or reaching out of it: 403
    pad = STAY_PAD.total_seconds()
    late = {"start": iso(at(23 + pad + 1)), "end": iso(at(23 + pad + 5)), "case_id": mine}
    assert client.get(mp4, params=late, headers=li).status_code == 403
    straddle = {"start": iso(at(12 - pad - 2)), "end": iso(at(14)), "case_id": mine}
    assert client.get(mp4, params=straddle, headers=li).status_code == 403
    assert client.get(vtt, params=late, headers=li).status_code == 403
    # the other case's footage (its subtitles: cheaper than the H.265 rendition) for its own officer
    add_user(engine, "wang", "officer", officer_badge="P-2")
    wang = bearer(client, "wang")
    own = {"start": iso(at(9)), "end": iso(at(11)), "case_id": other}
    assert client.get("/api/v1/playback/cam-wait.vtt", params=own, headers=wang).status_code == 200

    rows = [r for r in AuditLog(engine).rows(limit=1000) if r.action == "playback"]
    li_rows = [r for r in rows if r.user == "li"]
    assert len(li_rows) == 1 and li_rows[0].object == "camera:cam-int"
    assert li_rows[0].detail is not None and li_rows[0].detail["case"] == mine
    assert AuditLog(engine, load_audit_key(tmp_path / "audit.key")).verify().ok


@pytest.fixture
def wide_client(
    engine: Engine, store: SegmentStore, scenario: Scenario, tmp_path: Path
) -> Iterator[TestClient]:
    """The app with a late-entry window of ten years, so an officer's back-dated reading of the
    scenario's 2024 stays is accepted and only the footage rule stands between it and the footage."""
    store.sync_rooms(INDEX_ROOMS)
    index_scenario(store, scenario)
    settings = Settings(
        api={"upload_tmp": tmp_path / "up", "late_entry_hours": 24 * 3650},
        export={"out_dir": tmp_path / "exports"},
        audit={"key_file": tmp_path / "audit.key"},
    )
    app = create_app(settings, store, engine=engine, storage=LocalStorage(scenario.root))
    with TestClient(app) as c:
        yield c


def test_officer_cannot_widen_their_footage_window_with_own_readings(
    wide_client: TestClient, engine: Engine, tmp_path: Path
) -> None:
    """Issue 16 point 3: one reading of the officer's own putting their suspect in another room used
    to turn a 403 into 200. The window comes from readings not written by that officer alone."""
    c = wide_client
    add_user(engine, "admin", "admin")
    admin = bearer(c, "admin")
    mine = _case(c, admin, 1, "P-1", "R-INT1", 12, 23)  # li's suspect: interrogation room 12–23 s
    subject = c.get(f"/api/v1/cases/{mine}", headers=admin).json()["subjects"][0]["id"]
    add_user(engine, "li", "officer", officer_badge="P-1")
    add_user(engine, "sup", "supervisor")
    li, sup = bearer(c, "li"), bearer(c, "sup")
    wait = {"start": iso(at(9)), "end": iso(at(11)), "case_id": mine}
    vtt = "/api/v1/playback/cam-wait.vtt"
    assert c.get(vtt, params=wait, headers=li).status_code == 403
    reading = {
        "id": "li-o",
        "room_id": "R-WAIT",
        "time": iso(at(8)),
        "source": "manual",
        "subject_id": subject,
    }
    assert c.post("/api/v1/observations", json=reading, headers=li).status_code == 201
    # the trajectory everyone sees has the stay; the officer's footage window does not
    stays = c.get(f"/api/v1/subjects/{subject}/trajectory", headers=li).json()["stays"]
    assert [s["room_id"] for s in stays] == ["R-WAIT", "R-INT1"]
    denied = c.get(vtt, params=wait, headers=li)
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "forbidden"
    # an event of theirs does not do it either
    event = {
        "id": "li-e",
        "type": "waiting",
        "time": iso(at(8.5)),
        "room_id": "R-WAIT",
        "subject_id": subject,
    }
    assert c.post("/api/v1/events", json=event, headers=li).status_code == 201
    assert c.get(vtt, params=wait, headers=li).status_code == 403
    # officers cannot vouch for their own readings; a supervisor can, and then they count
    assert c.post("/api/v1/readings/confirm", json={"observations": ["li-o"]}, headers=li).status_code == 403
    done = c.post(
        "/api/v1/readings/confirm", json={"observations": ["li-o"], "events": ["li-e"]}, headers=sup
    )
    assert done.status_code == 200 and done.json()["confirmed"] == 2
    assert c.get(vtt, params=wait, headers=li).status_code == 200
    confirms = AuditLog(engine, load_audit_key(tmp_path / "audit.key")).rows(action="readings_confirm")
    assert [(r.user, r.detail and r.detail["confirmed"]) for r in confirms] == [("sup", 2)]
    unknown = c.post("/api/v1/readings/confirm", json={"events": ["nope"]}, headers=sup)
    assert unknown.status_code == 422


def test_back_dated_reading_by_an_officer_is_refused(client: TestClient, engine: Engine) -> None:
    """With the default 24 h window the issue's reading dated years back is a late entry: 403."""
    add_user(engine, "admin", "admin")
    admin = bearer(client, "admin")
    mine = _case(client, admin, 1, "P-1", "R-INT1", 12, 23)
    subject = client.get(f"/api/v1/cases/{mine}", headers=admin).json()["subjects"][0]["id"]
    add_user(engine, "li", "officer", officer_badge="P-1")
    li = bearer(client, "li")
    reading = {
        "id": "li-o",
        "room_id": "R-WAIT",
        "time": iso(at(8)),
        "source": "manual",
        "subject_id": subject,
    }
    r = client.post("/api/v1/observations", json=reading, headers=li)
    assert r.status_code == 403 and "late entry" in r.json()["error"]["message"]


@pytest.fixture
def rooms_client(
    engine: Engine, store: SegmentStore, scenario: Scenario, tmp_path: Path
) -> Iterator[TestClient]:
    """The app with the scenario's rooms configured (as a centre has them), names and all."""
    settings = Settings(
        rooms=[
            {
                "id": room,
                "name": name,
                "kind": kind,
                "cameras": [{"id": c, "name": n, "url": u} for c, n, u in cams],
            }
            for room, name, kind, cams in INDEX_ROOMS
        ],
        api={"upload_tmp": tmp_path / "up"},
        export={"out_dir": tmp_path / "exports"},
        audit={"key_file": tmp_path / "audit.key"},
    )
    store.sync_rooms(settings.room_rows())
    index_scenario(store, scenario)
    store.add_gap(scenario.gap)
    app = create_app(settings, store, engine=engine, storage=LocalStorage(scenario.root))
    with TestClient(app) as c:
        yield c


def test_officer_sees_segments_gaps_and_room_names_of_their_case(
    rooms_client: TestClient, engine: Engine
) -> None:
    """Issue 18 point 4: the scrubber's segments and gaps and the play form's camera names for an
    officer, under their case and within its stays; the camera list itself stays closed to them."""
    c = rooms_client
    add_user(engine, "admin", "admin")
    admin = bearer(c, "admin")
    mine = _case(c, admin, 1, "P-1", "R-INT1", 12, 23)
    other = _case(c, admin, 2, "P-2", "R-WAIT", 9, 12)
    add_user(engine, "li", "officer", officer_badge="P-1")
    li = bearer(c, "li")
    inside = {"start": iso(at(12)), "end": iso(at(23)), "case_id": mine}
    segs = c.get("/api/v1/cameras/cam-int/segments", params=inside, headers=li)
    assert segs.status_code == 200, segs.text
    assert len(segs.json()["segments"]) == 2
    gaps = c.get("/api/v1/cameras/cam-int/gaps", params=inside, headers=li)
    assert gaps.status_code == 200 and [g["cause"] for g in gaps.json()["gaps"]] == ["disconnect"]
    # no case, someone else's case, a room or a range outside their stays: 403 as for the video
    bare = {k: v for k, v in inside.items() if k != "case_id"}
    assert c.get("/api/v1/cameras/cam-int/gaps", params=bare, headers=li).status_code == 403
    assert (
        c.get("/api/v1/cameras/cam-int/gaps", params={**inside, "case_id": other}, headers=li).status_code
        == 403
    )
    wait = {"start": iso(at(9)), "end": iso(at(11)), "case_id": mine}
    assert c.get("/api/v1/cameras/cam-wait/segments", params=wait, headers=li).status_code == 403
    far = {"start": iso(at(100)), "end": iso(at(200)), "case_id": mine}
    assert c.get("/api/v1/cameras/cam-int/segments", params=far, headers=li).status_code == 403
    assert c.get("/api/v1/cameras", headers=li).status_code == 403
    # the cameras they may play, with names; a supervisor gets all of them, without a case
    cams = c.get("/api/v1/playback/cameras", params={"case_id": mine}, headers=li)
    assert cams.status_code == 200, cams.text
    assert [(x["id"], x["name"], x["room_name"]) for x in cams.json()["cameras"]] == [
        ("cam-int", "int", "讯问室1")
    ]
    assert c.get("/api/v1/playback/cameras", headers=li).status_code == 403
    assert c.get("/api/v1/playback/cameras", params={"case_id": other}, headers=li).status_code == 403
    every = c.get("/api/v1/playback/cameras", headers=admin).json()["cameras"]
    assert {x["id"] for x in every} == {"cam-int", "cam-wait"}
