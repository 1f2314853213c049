"""Risk alerts end to end on SQLite and PostgreSQL, through a real HTTP server.

Case events posted through the API feed the engine; the engine (on a clock the test steps)
raises, deduplicates and stores alerts; the list, snapshot, acknowledge and resolve routes
serve them (audited, role-checked); the SSE stream delivers them live; a real local HTTP
server receives them through the webhook (after a refused first attempt); and a new engine
on the same database continues the open alerts without raising any twice.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from sqlalchemy import Engine, func, select

from domain.types import GapCause, GapRecord, PictureFault, PictureObservation, iso
from indexer.alert_store import ALERTS
from indexer.audit import AuditLog
from indexer.segment_store import SegmentStore
from pipeline.api.app import create_app
from pipeline.risk.engine import RiskEngine, rooms_of
from pipeline.settings import Settings
from pipeline.storage import LocalStorage
from tests.support.auth import add_user, bearer
from tests.support.clock import StepClock
from tests.support.live_server import live_server

pytestmark = pytest.mark.integration  # uvicorn on a real socket and a webhook receiver

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
ROOMS = [
    {
        "id": "wait",
        "name": "候问室",
        "kind": "waiting",
        "cameras": [{"id": "wait-a", "url": "rtsp://127.0.0.1:1/w"}],
    },
    {
        "id": "int-1",
        "name": "讯问室1",
        "kind": "interrogation",
        "cameras": [{"id": "int-a", "url": "rtsp://127.0.0.1:1/i"}],
    },
]
JPEG = b"\xff\xd8\xff\xe0" + b"snapshot" * 10 + b"\xff\xd9"


class Hook(BaseHTTPRequestHandler):
    """Webhook receiver: refuses the very first POST (500) to exercise the retry, keeps the rest."""

    received: ClassVar[list[dict[str, Any]]] = []
    refused: ClassVar[int] = 0

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if Hook.refused == 0:
            Hook.refused += 1
            self.send_response(500)
        else:
            Hook.received.append(json.loads(body))
            self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@dataclass
class Centre:
    settings: Settings
    engine: Engine
    clock: StepClock
    risk: RiskEngine
    base: str


def settings_for(url: str, hook_port: int) -> Settings:
    return Settings.model_validate(
        {
            "database": {"url": url},
            "rooms": ROOMS,
            "risk": {
                "webhook_url": f"http://127.0.0.1:{hook_port}/hook",
                "webhook_retry_initial_seconds": 0.05,
                "unattended": {"seconds": 60},
                "stay": {"silent_minutes": 0},
            },
        }
    )


@pytest.fixture
def centre(engine: Engine, db_url: str, tmp_path: Path) -> Iterator[Centre]:
    Hook.received, Hook.refused = [], 0
    hook = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    settings = settings_for(db_url, hook.server_address[1])
    store = SegmentStore(engine)
    store.sync_rooms(settings.room_rows())
    clock = StepClock(T0)
    risk = RiskEngine(settings.risk, rooms_of(settings), engine, clock)
    risk.load()
    assert risk.webhook is not None
    risk.webhook.start()
    app = create_app(settings, store, engine=engine, storage=LocalStorage(tmp_path / "store"))
    app.state.risk = risk
    try:
        with live_server(app) as server:
            try:
                yield Centre(settings, engine, clock, risk, server.base)
            finally:
                risk.stop()  # ends the SSE streams, so the server stops at once
    finally:
        hook.shutdown()
        hook.server_close()


def alert_rows(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(ALERTS)).scalar_one())


def read_sse(
    base: str, headers: dict[str, str], want: int, into: list[dict[str, Any]], ready: threading.Event
) -> None:
    with (
        httpx.Client(base_url=base, headers=headers, timeout=30) as c,
        c.stream("GET", "/api/v1/alerts/stream") as r,
    ):
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line == ": connected":
                ready.set()
            if line.startswith("data: "):
                into.append(json.loads(line[6:]))
                if len(into) >= want:
                    return


def test_alerts_stored_deduplicated_pushed_handled_and_kept_over_a_restart(centre: Centre) -> None:
    add_user(centre.engine, "admin", "admin")
    add_user(centre.engine, "li", "legal")
    add_user(centre.engine, "wang", "officer")
    with httpx.Client(base_url=centre.base, timeout=30) as c:
        admin = bearer(c, "admin")
        c.headers.update(admin)
        cid = c.post("/api/v1/cases", json={"case_number": "A1", "title": "盗窃", "charge": "盗窃"}).json()[
            "id"
        ]
        a = c.post(f"/api/v1/cases/{cid}/subjects", json={"name": "甲", "role": "suspect"}).json()["id"]
        b = c.post(f"/api/v1/cases/{cid}/subjects", json={"name": "乙", "role": "suspect"}).json()["id"]
        officer = c.post("/api/v1/officers", json={"name": "王", "badge_number": "001"}).json()["id"]

        # the live stream is open before anything happens
        got: list[dict[str, Any]] = []
        ready = threading.Event()
        reader = threading.Thread(target=read_sse, args=(centre.base, admin, 2, got, ready), daemon=True)
        reader.start()
        assert ready.wait(10)

        def event(eid: str, type_: str, t: datetime, room: str, subject: int, officers: list[int]) -> None:
            body = {
                "id": eid,
                "type": type_,
                "time": iso(t),
                "room_id": room,
                "subject_id": subject,
                "officer_ids": officers,
            }
            assert c.post("/api/v1/events", json=body).status_code == 201

        centre.clock.to(T0)
        event("e1", "entry", T0, "wait", a, [officer])
        event("e2", "entry", T0, "wait", b, [officer])  # co-suspects together: raised at once
        replay = {"id": "e2", "type": "entry", "time": iso(T0), "room_id": "wait", "subject_id": b}
        assert c.post("/api/v1/events", json={**replay, "officer_ids": [officer]}).status_code == 200
        items = c.get("/api/v1/alerts", params={"state": "open"}).json()["items"]
        assert [(i["rule"], i["case_id"], i["room_id"]) for i in items] == [("co_suspects", cid, "wait")]
        co = items[0]

        # the picture watcher's input: covered while occupied → alert with the sampled JPEG
        centre.clock.to(T0 + timedelta(seconds=5))
        centre.risk.observe_picture(
            PictureObservation(
                "wait-a", T0 + timedelta(seconds=5), frozenset({PictureFault.COVERED}), 2, JPEG
            )
        )
        reader.join(10)
        assert [(d["event"], d["alert"]["rule"]) for d in got] == [
            ("raised", "co_suspects"),
            ("raised", "picture_covered"),
        ]
        cover = got[1]["alert"]
        assert cover["snapshot"] == f"/api/v1/alerts/{cover['id']}/snapshot.jpg"
        snap = c.get(cover["snapshot"])
        assert (
            snap.status_code == 200 and snap.headers["content-type"] == "image/jpeg" and snap.content == JPEG
        )

        # ticks while the conditions hold: no new rows; the officer leaves: unattended after > 60 s
        for sec in (6, 7, 8):
            centre.clock.to(T0 + timedelta(seconds=sec))
            centre.risk.tick()
        assert alert_rows(centre.engine) == 2
        obs = {
            "id": "o1",
            "room_id": "int-1",
            "time": iso(T0 + timedelta(seconds=10)),
            "source": "face",
            "officer_id": officer,
        }
        assert c.post("/api/v1/observations", json=obs).status_code == 201
        centre.clock.to(T0 + timedelta(seconds=70))
        centre.risk.tick()
        assert alert_rows(centre.engine) == 2
        centre.clock.to(T0 + timedelta(seconds=70.5))
        centre.risk.tick()
        rules = sorted(i["rule"] for i in c.get("/api/v1/alerts", params={"state": "active"}).json()["items"])
        assert rules == ["co_suspects", "picture_covered", "unattended", "unattended"]

        # filters
        assert c.get("/api/v1/alerts", params={"room_id": "int-1"}).json()["items"] == []
        assert len(c.get("/api/v1/alerts", params={"case_id": cid}).json()["items"]) == 4
        bad = c.get("/api/v1/alerts", params={"state": "nope"})
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "validation_failed"
        assert c.get("/api/v1/alerts/999999").json()["error"]["code"] == "not_found"

        # acknowledge and resolve: officers may not; legal may; both audited
        wang = bearer(c, "wang")
        assert c.post(f"/api/v1/alerts/{co['id']}/acknowledge", headers=wang).status_code == 403
        li = bearer(c, "li")
        ack = c.post(f"/api/v1/alerts/{co['id']}/acknowledge", headers=li, json={"note": "已通知看管民警"})
        assert (
            ack.status_code == 200
            and ack.json()["state"] == "acknowledged"
            and ack.json()["acknowledged_by"] == "li"
        )
        again = c.post(f"/api/v1/alerts/{co['id']}/acknowledge", headers=li)
        assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"
        res = c.post(f"/api/v1/alerts/{cover['id']}/resolve", headers=li, json={"note": "镜头已清理"})
        assert res.json()["state"] == "resolved" and res.json()["resolved_by"] == "li"
        actions = [(r.action, r.object, r.user) for r in AuditLog(centre.engine).rows(object_prefix="alert:")]
        assert ("alert_acknowledge", f"alert:{co['id']}", "li") in actions
        assert ("alert_resolve", f"alert:{cover['id']}", "li") in actions

        # a resolved alert whose condition still holds is not raised again
        centre.clock.to(T0 + timedelta(seconds=71))
        centre.risk.tick()
        assert alert_rows(centre.engine) == 4

        # recording health: a closed gap of the occupied room's camera
        centre.risk.observe_gap(
            GapRecord("wait-a", T0 + timedelta(seconds=20), T0 + timedelta(seconds=25), GapCause.STALL)
        )
        rec = c.get("/api/v1/alerts", params={"state": "open", "room_id": "wait"}).json()["items"]
        gap_alert = next(i for i in rec if i["rule"] == "recording_lost")
        assert gap_alert["end"] == iso(T0 + timedelta(seconds=25))

    # the webhook received every change, in order, after its first attempt was refused
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(
        d["alert"]["rule"] == "recording_lost" for d in Hook.received
    ):
        time.sleep(0.05)
    assert Hook.refused == 1
    events = [(d["event"], d["alert"]["rule"]) for d in Hook.received]
    assert events[:2] == [("raised", "co_suspects"), ("raised", "picture_covered")]
    assert ("acknowledged", "co_suspects") in events and ("resolved", "picture_covered") in events
    assert ("raised", "recording_lost") in events

    # restart: a new engine on the same database continues the open alerts, raises none twice
    open_before = {(i.rule, i.dedup_key, i.id) for i in centre.risk.alerts.open_alerts()}
    centre.risk.stop()
    rows_before = alert_rows(centre.engine)
    clock = StepClock(T0 + timedelta(seconds=80))
    restarted = RiskEngine(centre.settings.risk, rooms_of(centre.settings), centre.engine, clock)
    restarted.load()
    for sec in (80, 81, 120):
        clock.to(T0 + timedelta(seconds=sec))
        restarted.tick()
    assert alert_rows(centre.engine) == rows_before
    assert {(i.rule, i.dedup_key, i.id) for i in restarted.alerts.open_alerts()} == open_before
    assert {"co_suspects", "unattended", "recording_lost"} <= {r for r, _k, _i in open_before}
