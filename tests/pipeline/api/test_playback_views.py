"""One audit row per camera per playback: the page's probe, the video's load and its Range requests
are one view; another camera, another range, another user or the same range after a pause is a
new view with its own row."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from domain.types import iso
from indexer.audit import AuditLog
from indexer.segment_store import SegmentStore
from pipeline.api.app import create_app
from pipeline.api.playback_views import PlaybackViews
from pipeline.settings import Settings
from pipeline.storage import LocalStorage
from tests.exporter.scenario import INDEX_ROOMS, Scenario, at, index_scenario
from tests.support.auth import add_user, bearer


@pytest.fixture
def client(engine: Engine, store: SegmentStore, scenario: Scenario, tmp_path: Path) -> Iterator[TestClient]:
    store.sync_rooms(INDEX_ROOMS)
    index_scenario(store, scenario)
    settings = Settings(api={"upload_tmp": tmp_path / "up"}, export={"out_dir": tmp_path / "exports"})
    app = create_app(settings, store, engine=engine, storage=LocalStorage(scenario.root))
    with TestClient(app) as c:
        add_user(engine, "sup", "supervisor")
        c.headers.update(bearer(c, "sup"))
        yield c


def _playbacks(engine: Engine) -> list[tuple[str, str | None]]:
    rows = [r for r in AuditLog(engine).rows(limit=1000) if r.action == "playback"]
    return sorted((r.object, (r.detail or {}).get("start")) for r in rows)


def test_probe_load_and_ranges_of_one_playback_leave_one_row(client: TestClient, engine: Engine) -> None:
    q = {"start": iso(at(12)), "end": iso(at(16))}
    mp4 = "/api/v1/playback/cam-int.mp4"
    for wanted in ("bytes=0-0", "bytes=0-", "bytes=100-200", None):  # what the page and Chromium ask
        headers = {"Range": wanted} if wanted else {}
        r = client.get(mp4, params=q, headers=headers)
        assert r.status_code in (200, 206), r.text
    assert _playbacks(engine) == [("camera:cam-int", iso(at(12)))]
    # the second camera of the same playback, and a seek to a new start: views of their own
    assert client.get(
        "/api/v1/playback/cam-wait.mp4", params={"start": iso(at(9)), "end": iso(at(11))}
    ).is_success
    assert client.get(mp4, params={**q, "start": iso(at(14))}).is_success
    assert _playbacks(engine) == [
        ("camera:cam-int", iso(at(12))),
        ("camera:cam-int", iso(at(14))),
        ("camera:cam-wait", iso(at(9))),
    ]


def test_a_view_ends_after_a_pause_and_belongs_to_its_user() -> None:
    now = [0.0]
    views = PlaybackViews(idle=60, clock=lambda: now[0])
    view = ("sup", "cam-int", "s", "e", None)
    assert views.starts_view(*view)
    now[0] = 30
    assert not views.starts_view(*view)
    now[0] = 80  # 50 s after the last request: still the same view
    assert not views.starts_view(*view)
    assert views.starts_view("other", "cam-int", "s", "e", None)
    assert views.starts_view("sup", "cam-int", "s", "e", 7)  # played for a case: its own view
    now[0] = 141  # 61 s of silence: watched again
    assert views.starts_view(*view)
    views.forget(*view)  # its audit row failed: the next request must try again
    assert views.starts_view(*view)
