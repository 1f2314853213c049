"""``GET /subjects/{id}/footage?segments=false``: the run-level answer (from ``segment_runs``) is the
default answer without the segment lists; every camera carries its coverage runs either way."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from domain.types import GapCause
from indexer.segment_store import SegmentStore
from tests.indexer.factories import at, chain, gap
from tests.support.case_api import client, ev, people

__all__ = ["client"]  # the fixture, used by name


def _without_segments(doc: Any) -> Any:
    if isinstance(doc, dict):
        return {k: _without_segments(v) for k, v in doc.items() if k != "segments"}
    if isinstance(doc, list):
        return [_without_segments(v) for v in doc]
    return doc


def test_run_level_footage_is_the_default_answer_without_segments(
    client: TestClient, store: SegmentStore
) -> None:
    _, sid, _ = people(client)
    client.post(
        "/api/v1/observations",
        json={
            "id": "o1",
            "room_id": "wait",
            "time": at(0).isoformat(),
            "source": "wristband",
            "subject_id": sid,
        },
    )
    client.post("/api/v1/events", json=ev("x", at(240), sid, "exit"))
    segs = chain("w-a", 24, start=0)  # 0-240 s, but two are missing: 50-70 s has a gap, 150-160 none
    store.add_segments([s for i, s in enumerate(segs) if i not in (5, 6, 15)])
    store.add_gap(gap("w-a", 50, 70, GapCause.DISCONNECT))
    q = {"start": at(0).isoformat(), "end": at(3600).isoformat()}
    full = client.get(f"/api/v1/subjects/{sid}/footage", params=q).json()
    runs = client.get(f"/api/v1/subjects/{sid}/footage", params={**q, "segments": "false"}).json()
    (stay,) = full["stays"]
    (cam,) = stay["cameras"]
    assert len(cam["segments"]) == 21 and cam["segment_count"] == 21 and cam["footage_seconds"] == 210.0
    assert [(r["start"][11:19], r["end"][11:19]) for r in cam["runs"]] == [
        ("08:00:00", "08:00:50"),
        ("08:01:10", "08:02:30"),
        ("08:02:40", "08:04:00"),
    ]
    assert stay["unexplained_seconds"] == 10.0
    assert "segments" not in runs["stays"][0]["cameras"][0]
    assert runs == _without_segments(full)
