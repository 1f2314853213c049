"""The case API on its own (the routes of pipeline/api/cases.py behind the auth gate, as create_app
wires them) for the case, footage and body-camera tests: the centre's rooms, the app, a logged-in
client and the request bodies they share."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from indexer.audit import AuditLog
from indexer.segment_store import SegmentStore
from pipeline.api import auth, cases
from pipeline.api.body_limit import BodyLimit
from pipeline.api.errors import install_error_handlers
from pipeline.settings import ApiConfig, Settings
from pipeline.storage import LocalStorage
from tests.support.auth import AUDIT_KEY, log_in

ROOMS = [
    ("entry", "入区登记", "entry", []),
    ("wait", "候问室", "waiting", [("w-a", "a", "rtsp://10.0.0.1/a")]),
    ("int-1", "讯问室1", "interrogation", [("i-a", "a", "rtsp://10.0.0.2/a")]),
]


def build_app(engine: Engine, tmp_path: Path, **api: Any) -> FastAPI:
    """The app as create_app wires it: one error handler, the body limit, the auth gate, state via
    cases.install."""
    settings = Settings(api=ApiConfig(**api))
    app = FastAPI()
    app.state.settings = settings
    install_error_handlers(app)
    app.add_middleware(BodyLimit, limit=settings.api.max_json_bytes)
    auth.install(app, engine, AuditLog(engine, AUDIT_KEY))
    cases.install(app, engine, LocalStorage(tmp_path / "store"), settings, tmp_dir=tmp_path / "upload-tmp")
    app.include_router(cases.router)
    return app


@pytest.fixture
def client(engine: Engine, store: SegmentStore, tmp_path: Path) -> Iterator[TestClient]:
    store.sync_rooms(ROOMS)
    with TestClient(build_app(engine, tmp_path)) as c:
        log_in(c, engine)
        yield c


def people(client: TestClient) -> tuple[int, int, int]:
    case = client.post("/api/v1/cases", json={"case_number": "A-1", "title": "盗窃案", "charge": "盗窃"})
    assert case.status_code == 201, case.text
    cid = case.json()["id"]
    subj = client.post(f"/api/v1/cases/{cid}/subjects", json={"name": "张三", "role": "suspect"})
    off = client.post("/api/v1/officers", json={"name": "李警官", "badge_number": "P-1"})
    assert subj.status_code == off.status_code == 201
    return cid, subj.json()["id"], off.json()["id"]


def ev(cid: str, t: datetime, subject: int, type_: str = "other", **kw: Any) -> dict[str, Any]:
    return {"id": cid, "type": type_, "time": t.isoformat(), "subject_id": subject, **kw}
