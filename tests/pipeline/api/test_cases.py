"""The case API on SQLite and PostgreSQL: error shape, idempotency, out-of-order arrival,
concurrent writers, body limits, and the trajectory/footage/timeline/search read side."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from domain.types import GapCause
from indexer.case_store import EVENTS, OBSERVATIONS
from indexer.segment_store import SegmentStore
from tests.indexer.factories import at, chain, gap
from tests.support.auth import log_in
from tests.support.case_api import ROOMS, build_app, client, ev, people

__all__ = ["client"]  # the fixture, used by name


def count(engine: Engine, table: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def fields(resp: Any) -> set[str]:
    body = resp.json()
    assert set(body) == {"error"} and body["error"]["code"] == "validation_failed", body
    return {f["field"] for f in body["error"]["details"]["fields"]}


def test_case_create_is_idempotent_and_conflicts_with_409(client: TestClient) -> None:
    body = {"case_number": "A-9", "title": "t", "charge": "c"}
    first = client.post("/api/v1/cases", json=body)
    again = client.post("/api/v1/cases", json=body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    clash = client.post("/api/v1/cases", json={**body, "title": "other"})
    assert clash.status_code == 409 and clash.json()["error"]["code"] == "conflict"
    assert client.get("/api/v1/cases/999").json()["error"]["code"] == "not_found"


def test_case_read_with_subjects_and_officers(client: TestClient) -> None:
    cid, sid, oid = people(client)
    assert (
        client.post(f"/api/v1/cases/{cid}/officers", json={"officer_id": oid, "role": "lead"}).status_code
        == 201
    )
    doc = client.get(f"/api/v1/cases/{cid}").json()
    assert [s["id"] for s in doc["subjects"]] == [sid]
    assert doc["officers"][0]["role"] == "lead"
    assert client.get(f"/api/v1/subjects/{sid}").json()["name"] == "张三"
    assert client.get(f"/api/v1/officers/{oid}").json()["badge_number"] == "P-1"
    bad = client.post(f"/api/v1/cases/{cid}/officers", json={"officer_id": 777})
    assert fields(bad) == {"body.officer_id"}


def test_validation_errors_have_field_messages(client: TestClient) -> None:
    _, sid, _ = people(client)
    now = datetime.now(UTC)
    r = client.post("/api/v1/events", json=ev("x", now, sid, room_id="nowhere", officer_ids=[99]))
    assert r.status_code == 422 and fields(r) == {"body.room_id", "body.officer_ids"}
    r = client.post("/api/v1/events", json=ev("x", now + timedelta(hours=1), 4242))
    assert fields(r) == {"body.time", "body.subject_id"}
    r = client.post("/api/v1/events", json={**ev("x", now, sid), "time": "2026-03-01T08:00:00"})
    assert fields(r) == {"body.time"}  # no time zone
    r = client.post("/api/v1/events", json={**ev("x", now, sid), "colour": "red", "type": "dance"})
    assert fields(r) == {"body.colour", "body.type"}
    r = client.post("/api/v1/events/batch", json=[ev("a", now, sid), ev("b", now, sid, room_id="nowhere")])
    assert fields(r) == {"body.1.room_id"}
    r = client.post(
        "/api/v1/observations/batch",
        json=[{"id": "o", "room_id": "wait", "time": now.isoformat(), "source": "sonar", "subject_id": sid}],
    )
    assert fields(r) == {"body.0.source"}
    r = client.post(
        "/api/v1/observations", json={"id": "o", "room_id": "wait", "time": now.isoformat(), "source": "face"}
    )
    assert fields(r) == {"body.subject_id"}


def test_same_id_twice_is_one_row_and_different_content_is_409(client: TestClient, engine: Engine) -> None:
    _, sid, oid = people(client)
    e = ev("e-1", at(0), sid, "entry", room_id="entry", officer_ids=[oid], payload={"k": [1, 2]})
    assert client.post("/api/v1/events", json=e).status_code == 201
    again = client.post("/api/v1/events", json=e)
    assert again.status_code == 200 and again.json()["created"] is False
    batch = client.post("/api/v1/events/batch", json=[e, e])
    assert batch.status_code == 200 and batch.json()["existing"] == 2
    assert count(engine, EVENTS) == 1
    clash = client.post("/api/v1/events", json={**e, "payload": {"k": [2, 1]}})
    assert clash.status_code == 409
    o = {"id": "o-1", "room_id": "wait", "time": at(1).isoformat(), "source": "wristband", "subject_id": sid}
    assert [client.post("/api/v1/observations", json=o).status_code for _ in range(2)] == [201, 200]
    assert count(engine, OBSERVATIONS) == 1


def test_out_of_order_events_give_the_right_trajectory(client: TestClient) -> None:
    cid, sid, _ = people(client)
    later = [ev("e3", at(1200), sid, "exit"), ev("e2", at(600), sid, "interrogation_start", room_id="int-1")]
    assert client.post("/api/v1/events/batch", json=later).status_code == 201
    assert (
        client.post("/api/v1/events", json=ev("e1", at(0), sid, "entry", room_id="entry")).status_code == 201
    )
    obs = {"id": "o1", "room_id": "wait", "time": at(100).isoformat(), "source": "face", "subject_id": sid}
    assert client.post("/api/v1/observations", json=obs).status_code == 201
    stays = client.get(f"/api/v1/subjects/{sid}/trajectory").json()["stays"]
    assert [(s["room_id"], s["start"], s["end"]) for s in stays] == [
        ("entry", "2026-03-01T08:00:00.000000Z", "2026-03-01T08:01:40.000000Z"),
        ("wait", "2026-03-01T08:01:40.000000Z", "2026-03-01T08:10:00.000000Z"),
        ("int-1", "2026-03-01T08:10:00.000000Z", "2026-03-01T08:20:00.000000Z"),
    ]
    assert [e["id"] for e in client.get(f"/api/v1/cases/{cid}/events").json()["events"]] == ["e1", "e2", "e3"]
    assert client.get("/api/v1/subjects/999/trajectory").status_code == 404


def test_two_concurrent_writers(engine: Engine, store: SegmentStore, tmp_path: Path) -> None:
    store.sync_rooms(ROOMS)
    app = build_app(engine, tmp_path)
    with TestClient(app) as c:
        log_in(c, engine)
        token = dict(c.headers)["authorization"]
        _, sid, _ = people(c)
    statuses: list[int] = []
    barrier = threading.Barrier(2)

    def writer(lo: int, hi: int) -> None:
        with TestClient(app, headers={"Authorization": token}) as c:
            barrier.wait()
            for i in range(lo, hi, 25):
                batch = [ev(f"e-{j}", at(j), sid, room_id="wait") for j in range(i, min(i + 25, hi))]
                statuses.append(c.post("/api/v1/events/batch", json=batch).status_code)

    threads = [threading.Thread(target=writer, args=r) for r in ((0, 200), (100, 300))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert statuses and set(statuses) <= {200, 201}
    assert count(engine, EVENTS) == 300


def test_json_bodies_over_the_limit_are_413(engine: Engine, store: SegmentStore, tmp_path: Path) -> None:
    store.sync_rooms(ROOMS)
    with TestClient(build_app(engine, tmp_path, max_json_bytes=2000)) as c:
        log_in(c, engine)
        big = {"case_number": "A-2", "title": "x" * 3000, "charge": "c"}
        r = c.post("/api/v1/cases", json=big)
        assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
        data = json.dumps(big).encode()
        chunked = c.post(  # no Content-Length: the limit is enforced while the body streams in
            "/api/v1/cases",
            content=iter([data[:1000], data[1000:2500], data[2500:]]),
            headers={"content-type": "application/json"},
        )
        assert chunked.status_code == 413
        assert c.post("/api/v1/cases", json={**big, "title": "small"}).status_code == 201


def test_footage_reports_gaps_with_causes_and_unexplained(client: TestClient, store: SegmentStore) -> None:
    _, sid, _ = people(client)
    client.post(
        "/api/v1/observations/batch",
        json=[
            {
                "id": "o1",
                "room_id": "wait",
                "time": at(0).isoformat(),
                "source": "wristband",
                "subject_id": sid,
            },
            {
                "id": "o2",
                "room_id": "int-1",
                "time": at(120).isoformat(),
                "source": "face",
                "subject_id": sid,
            },
        ],
    )
    client.post("/api/v1/events", json=ev("x", at(240), sid, "exit"))
    store.add_segments(chain("w-a", 6, start=0))  # 0-60 s
    store.add_gap(gap("w-a", 60, 90, GapCause.DISCONNECT))  # 90-120 s: nothing at all
    store.add_segments(chain("i-a", 12, start=120))
    q = {"start": at(0).isoformat(), "end": at(3600).isoformat()}
    doc = client.get(f"/api/v1/subjects/{sid}/footage", params=q).json()
    wait, interrogation = doc["stays"]
    cam = wait["cameras"][0]
    assert [(g["cause"], g["start"], g["end"]) for g in cam["gaps"]] == [
        ("disconnect", "2026-03-01T08:01:00.000000Z", "2026-03-01T08:01:30.000000Z")
    ]
    assert wait["unexplained"] == [
        {"start": "2026-03-01T08:01:30.000000Z", "end": "2026-03-01T08:02:00.000000Z", "seconds": 30.0}
    ]
    assert cam["segment_count"] == 6 and cam["footage_seconds"] == 60.0 and len(cam["segments"]) == 6
    assert interrogation["unexplained_seconds"] == 0.0
    tl = client.get(
        f"/api/v1/cases/{client.get(f'/api/v1/subjects/{sid}').json()['case_id']}/timeline"
    ).json()
    assert tl["subjects"][0]["unexplained_seconds"] == 30.0
    assert "segments" not in tl["subjects"][0]["stays"][0]["cameras"][0]
    assert [e["type"] for e in tl["events"]] == ["exit"]
    naive = client.get(
        f"/api/v1/subjects/{sid}/footage", params={"start": "2026-03-01T08:00:00", "end": q["end"]}
    )
    assert fields(naive) == {"query.start"}


def test_search_is_paged_with_total(client: TestClient) -> None:
    _, sid, oid = people(client)
    for n in range(7):
        client.post("/api/v1/cases", json={"case_number": f"B-{n}", "title": "t", "charge": "c"})
    client.post("/api/v1/events", json=ev("e", at(0), sid, "search", room_id="entry", officer_ids=[oid]))
    page = client.get("/api/v1/cases", params={"case_number": "B-", "limit": 3, "offset": 3}).json()
    assert page["total"] == 7 and [c["case_number"] for c in page["items"]] == ["B-3", "B-2", "B-1"]
    hit = client.get(
        "/api/v1/cases", params={"officer_id": oid, "event_type": "search", "room_id": "entry"}
    ).json()
    assert hit["total"] == 1 and hit["items"][0]["subjects"][0]["name"] == "张三"
    assert fields(client.get("/api/v1/cases", params={"limit": 0})) == {"query.limit"}


def test_search_by_badge_number_room_name_and_stays(client: TestClient) -> None:
    """The search form's fields: the officer by 警号, the room by name, a stay through the range found
    though no reading falls inside it, an unknown room a field error."""
    cid, sid, oid = people(client)
    assert client.post(f"/api/v1/cases/{cid}/officers", json={"officer_id": oid}).status_code == 201
    obs = {"id": "w1", "room_id": "wait", "time": at(0).isoformat(), "source": "wristband", "subject_id": sid}
    assert client.post("/api/v1/observations", json=obs).status_code == 201
    numbers = lambda **q: [c["case_number"] for c in client.get("/api/v1/cases", params=q).json()["items"]]  # noqa: E731
    assert numbers(badge_number="P-1") == ["A-1"] and numbers(badge_number="P-2") == []
    window = {"start": at(60).isoformat(), "end": at(90).isoformat()}
    assert numbers(room_id="候问室", **window) == ["A-1"] == numbers(room_id="wait", **window)
    assert numbers(room_id="讯问室1", **window) == []
    assert fields(client.get("/api/v1/cases", params={"room_id": "讯问室9"})) == {"query.room_id"}


def test_openapi_documents_the_routes_and_forbids_extra_fields(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for path in (
        "/api/v1/cases",
        "/api/v1/events/batch",
        "/api/v1/observations",
        "/api/v1/subjects/{subject_id}/trajectory",
        "/api/v1/subjects/{subject_id}/footage",
        "/api/v1/cases/{case_id}/timeline",
        "/api/v1/bodycam/clips",
    ):
        assert path in spec["paths"], path
    assert spec["components"]["schemas"]["EventIn"]["additionalProperties"] is False
    upload = spec["paths"]["/api/v1/bodycam/clips"]["post"]["requestBody"]["content"]
    assert "file" in upload["multipart/form-data"]["schema"]["properties"]
