"""Body-camera upload on SQLite and PostgreSQL: a real H.264+AAC MP4 lands with the right SHA-256
and SM3 and shows on the subject's footage; truncated, non-video and oversized uploads are
refused and leave nothing in storage, in the index or in the temporary directory."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from starlette.requests import Request

from domain.errors import PayloadTooLarge
from indexer.footage import IMPORTS
from indexer.segment_store import SegmentStore
from pipeline.intake import bodycam as bodycam_import
from pipeline.storage import LocalStorage
from tests.indexer.factories import at
from tests.support.auth import log_in
from tests.support.case_api import ROOMS, build_app
from tests.support.media import BOUNDARY, make_clip, multipart


@pytest.fixture
def clip(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return make_clip(tmp_path_factory.mktemp("clip") / "clip.mp4")


def _chunked_request(body: bytes, size: int) -> Request:
    chunks = [body[i : i + size] for i in range(0, len(body), size)]

    async def receive() -> dict[str, Any]:
        chunk = chunks.pop(0) if chunks else b""
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    headers = [(b"content-type", f"multipart/form-data; boundary={BOUNDARY}".encode())]
    return Request({"type": "http", "method": "POST", "path": "/", "headers": headers}, receive)


class Env:
    def __init__(self, engine: Engine, tmp_path: Path, **api: Any) -> None:
        self.engine = engine
        self.tmp = tmp_path / "upload-tmp"
        self.storage = LocalStorage(tmp_path / "store")
        self.client = TestClient(build_app(engine, tmp_path, **api))
        self.client.__enter__()
        log_in(self.client, engine)
        case = self.client.post(
            "/api/v1/cases", json={"case_number": "A-1", "title": "t", "charge": "c"}
        ).json()
        self.subject = self.client.post(
            f"/api/v1/cases/{case['id']}/subjects", json={"name": "张三", "role": "suspect"}
        ).json()["id"]
        self.officer = self.client.post(
            "/api/v1/officers", json={"name": "李", "badge_number": "P-1"}
        ).json()["id"]

    def upload(self, data: bytes, **form: Any) -> Any:
        fields = {
            "device_id": "DSJ-01",
            "officer_id": str(self.officer),
            "subject_ids": str(self.subject),
            **form,
        }
        fields = {k: v for k, v in fields.items() if v is not None}
        return self.client.post(
            "/api/v1/bodycam/clips", data=fields, files={"file": ("clip.mp4", data, "video/mp4")}
        )

    def stored_keys(self) -> list[str]:
        return list(self.storage.list("bodycam/"))

    def rows(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(IMPORTS)).scalar_one())

    def leftovers(self) -> list[Path]:
        return list(self.tmp.iterdir()) if self.tmp.exists() else []

    def nothing_remains(self) -> None:
        assert self.stored_keys() == [] and self.rows() == 0 and self.leftovers() == []


@pytest.fixture
def env(engine: Engine, store: SegmentStore, tmp_path: Path) -> Iterator[Env]:
    store.sync_rooms(ROOMS)
    e = Env(engine, tmp_path)
    yield e
    e.client.__exit__(None, None, None)


def test_valid_clip_lands_with_correct_hashes_and_shows_on_footage(env: Env, clip: bytes) -> None:
    r = env.upload(clip, start_time="2026-03-01T16:00:00+08:00")
    assert r.status_code == 201, r.text
    doc = r.json()
    assert doc["sha256"] == hashlib.sha256(clip).hexdigest()
    assert doc["sm3"] == hashlib.new("sm3", clip).hexdigest()
    assert doc["size"] == len(clip)
    assert (doc["video_codec"], doc["audio_codec"], doc["width"], doc["height"]) == ("h264", "aac", 320, 240)
    assert doc["start"] == "2026-03-01T08:00:00.000000Z" and doc["end"].startswith("2026-03-01T08:00:02")
    assert env.stored_keys() == [doc["storage_key"]]
    with env.storage.open(doc["storage_key"]) as f:
        assert f.read() == clip
    assert env.leftovers() == []
    again = env.upload(clip, start_time="2026-03-01T08:00:00Z")
    assert again.status_code == 200 and again.json()["clip_id"] == doc["clip_id"] and env.rows() == 1
    # The subject was in the waiting room: the clip shows on that stay as body-camera footage.
    env.client.post(
        "/api/v1/observations",
        json={
            "id": "o",
            "room_id": "wait",
            "time": at(0).isoformat(),
            "source": "face",
            "subject_id": env.subject,
        },
    )
    env.client.post(
        "/api/v1/events",
        json={"id": "x", "type": "exit", "time": at(60).isoformat(), "subject_id": env.subject},
    )
    footage = env.client.get(
        f"/api/v1/subjects/{env.subject}/footage",
        params={"start": at(0).isoformat(), "end": at(60).isoformat()},
    ).json()
    assert [c["clip_id"] for c in footage["clips"]] == [doc["clip_id"]]
    stay = footage["stays"][0]
    assert stay["clips"][0]["source"] == "bodycam"
    assert stay["unexplained"][0]["start"].startswith("2026-03-01T08:00:02")  # covered by the clip until then


def test_start_time_defaults_to_the_files_creation_time(env: Env, clip: bytes) -> None:
    r = env.upload(clip)
    assert r.status_code == 201 and r.json()["start"] == "2026-03-01T08:05:00.000000Z"


def test_clip_without_creation_time_needs_start_time(env: Env, tmp_path: Path) -> None:
    bare = make_clip(tmp_path / "bare.mp4", seconds=0.5, creation=None)
    r = env.upload(bare)
    assert r.status_code == 422 and r.json()["error"]["details"]["fields"][0]["field"] == "form.start_time"
    env.nothing_remains()


def test_truncated_and_non_video_files_are_refused(env: Env, clip: bytes) -> None:
    r = env.upload(clip[: len(clip) // 2], start_time="2026-03-01T08:00:00Z")
    assert r.status_code == 422 and r.json()["error"]["details"]["fields"][0]["field"] == "form.file"
    env.nothing_remains()
    r = env.upload(b"this is not a video at all\n" * 100, start_time="2026-03-01T08:00:00Z")
    assert r.status_code == 422
    env.nothing_remains()


def test_bad_metadata_is_refused_with_fields(env: Env, clip: bytes) -> None:
    r = env.upload(clip, device_id="../etc", subject_ids="9999", start_time="2026-03-01T08:00:00")
    assert {f["field"] for f in r.json()["error"]["details"]["fields"]} == {
        "form.device_id",
        "form.start_time",
    }
    r = env.upload(clip, subject_ids="9999")
    assert r.status_code == 422 and r.json()["error"]["details"]["fields"] == [
        {"field": "form.subject_ids", "message": "unknown subject 9999"}
    ]
    r = env.upload(clip, colour="red")
    assert r.status_code == 422
    r = env.client.post("/api/v1/bodycam/clips", content=clip, headers={"content-type": "video/mp4"})
    assert r.status_code == 422
    env.nothing_remains()


def test_oversized_upload_is_refused_without_filling_the_disk(
    engine: Engine, store: SegmentStore, tmp_path: Path, clip: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.sync_rooms(ROOMS)
    limit = 8000
    assert len(clip) > 2 * limit
    biggest = [0]
    flush = bodycam_import._Spool.flush

    def watched(self: Any) -> None:
        flush(self)
        biggest[0] = max(biggest[0], self.path.stat().st_size)

    monkeypatch.setattr(bodycam_import._Spool, "flush", watched)
    monkeypatch.setattr(bodycam_import, "_WRITE_BATCH", 1024)  # flush often so growth is observable
    env = Env(engine, tmp_path, max_upload_bytes=limit)
    try:
        declared = env.client.post(
            "/api/v1/bodycam/clips",
            content=b"x" * (limit + bodycam_import.ENVELOPE_SLACK + 1),
            headers={"content-type": "multipart/form-data; boundary=b"},
        )
        assert declared.status_code == 413  # refused from Content-Length, before reading
        r = env.upload(clip, start_time="2026-03-01T08:00:00Z")  # streamed past the limit
        assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
        assert biggest[0] <= limit
        env.nothing_remains()
        # The same upload arriving in 1 KiB network chunks: the spool grows, then stops at the limit.
        body = multipart(clip, device_id="DSJ-01", start_time="2026-03-01T08:00:00Z")
        importer: bodycam_import.BodycamImporter = env.client.app.state.bodycam  # type: ignore[attr-defined]
        with pytest.raises(PayloadTooLarge):
            anyio.run(importer.import_request, _chunked_request(body, 1024))
        assert 0 < biggest[0] <= limit
        env.nothing_remains()
        small = env.upload(clip[:limit], start_time="2026-03-01T08:00:00Z")
        assert small.status_code == 422  # within the limit, but a cut file: refused for that reason
        env.nothing_remains()
    finally:
        env.client.__exit__(None, None, None)
