"""GET /api/v1/rooms: rooms with names and their cameras, for every logged-in role."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from indexer.segment_store import SegmentStore
from pipeline.api import rooms
from tests.support.auth import add_user, bearer
from tests.support.case_api import ROOMS, build_app


@pytest.mark.parametrize("role", ["officer", "court_viewer", "supervisor"])
def test_every_role_reads_the_rooms_with_names(
    engine: Engine, store: SegmentStore, tmp_path: Path, role: str
) -> None:
    store.sync_rooms(ROOMS)
    app = build_app(engine, tmp_path)
    app.state.store = store
    app.include_router(rooms.router)
    add_user(engine, "u", role)
    with TestClient(app) as c:
        assert c.get("/api/v1/rooms").status_code == 401
        c.headers.update(bearer(c, "u"))
        doc = c.get("/api/v1/rooms").json()
    by_id = {r["id"]: r for r in doc["rooms"]}
    assert by_id["int-1"]["name"] == "讯问室1" and by_id["int-1"]["kind"] == "interrogation"
    assert by_id["wait"]["cameras"] == [{"id": "w-a", "name": "a", "active": True}]
    assert "url" not in str(doc)  # camera addresses (which may carry a login) are not shown
