"""Hostile input: uploads that lie about their type or size, path tricks in every name that becomes
a path or a storage key, oversized JSON bodies. Each is refused in the one error shape, and the
directory listings show nothing written outside the storage root (and nothing left behind).

SQLite only: the refusals happen before the index is asked anything.
"""

from __future__ import annotations

import hashlib
import json
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from domain.errors import ConfigError, ValidationFailed
from exporter.job import export_dir_name
from indexer.database import create_engine_for, upgrade
from indexer.segment_store import SegmentStore
from pipeline.api.app import create_app
from pipeline.settings import ApiConfig, ExportConfig, Settings, load_settings
from pipeline.storage import LocalStorage
from tests.support.auth import add_user, bearer
from tests.support.live_server import live_server
from tests.support.media import make_clip

# Names a client or a configuration file might send where a name becomes a path or a key.
HOSTILE_NAMES = [
    "../evil",
    "../../../../tmp/evil",
    "/etc/passwd",
    "a/../../b",
    "a\x00b",
    "a\\..\\..\\b",
    "C:\\evil",
    "ｅｖｉｌ",  # full-width letters: look like ASCII, are not
    "evil\u202egpj.exe",  # right-to-left override
    "..",
    ".hidden",
    "a/b",
]
JSON_LIMIT = 4096


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def centre(tmp_path: Path) -> Iterator[tuple[FastAPI, Path]]:
    """The full app on SQLite, everything it writes under ``tmp_path/site`` (one directory level
    deeper than the test's own directory, so a ``..`` escape would show up in ``tmp_path``)."""
    site = tmp_path / "site"
    engine = create_engine_for(f"sqlite:///{site / 'index.db'}")
    upgrade(engine)
    store = SegmentStore(engine)
    store.sync_rooms([("int-1", "讯问室1", "interrogation", [("i-a", "a", "rtsp://10.0.0.2/a")])])
    add_user(engine, "admin", "admin")
    settings = Settings(
        api=ApiConfig(upload_tmp=site / "upload-tmp", max_json_bytes=JSON_LIMIT),
        export=ExportConfig(out_dir=site / "exports"),
    )
    app = create_app(settings, store, engine=engine, storage=LocalStorage(site / "store"))
    try:
        yield app, site
    finally:
        engine.dispose()


def refused(resp: Any, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, (resp.status_code, resp.text)
    body: dict[str, Any] = resp.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    assert set(body["error"]) == {"code", "message", "details"}
    return body


def test_uploads_lying_about_type_and_hostile_names_are_refused_and_nothing_escapes(
    centre: tuple[FastAPI, Path], tmp_path: Path
) -> None:
    app, _ = centre
    clip = make_clip(tmp_path / "clip.mp4")
    before = files_under(tmp_path)
    with TestClient(app) as client:
        client.headers.update(bearer(client, "admin"))

        def upload(data: bytes, filename: str, ctype: str = "video/mp4", device: str = "DSJ-01") -> Any:
            return client.post(
                "/api/v1/bodycam/clips",
                data={"device_id": device, "start_time": "2026-03-01T08:00:00Z"},
                files={"file": (filename, data, ctype)},
            )

        # claims to be a video (name, extension, Content-Type), is not: probed, refused
        for name in ("clip.mp4", "clip.MOV", "../../clip.ts"):
            refused(
                upload(b"\x00\x00\x00\x18ftypmp42" + b"not a video " * 500, name), 422, "validation_failed"
            )
        refused(upload(b"GIF89a" + bytes(2000), "clip.mkv", "video/x-matroska"), 422, "validation_failed")
        # hostile device ids (they become part of the storage key): refused by name
        for device in HOSTILE_NAMES:
            body = refused(upload(clip, "clip.mp4", device=device), 422, "validation_failed")
            assert {f["field"] for f in body["error"]["details"]["fields"]} == {"form.device_id"}, device
        # a hostile *file name* on a real video: the name is data, never a path; the key is ours
        stored = []
        for i, name in enumerate(
            ["../../../../evil.mp4", "/etc/cron.d/evil.mp4", "a\\..\\evil.mp4", "evil\u202e4pm.exe"]
        ):
            r = upload(clip, name, device=f"DSJ-{i}")
            assert r.status_code == 201, r.text
            assert r.json()["storage_key"].startswith(f"bodycam/DSJ-{i}/")
            stored.append(r.json()["storage_key"])
    # listing the directories: new files only inside the site (store, index), none in upload-tmp
    new = files_under(tmp_path) - before
    assert new, "nothing was stored at all"
    assert all(p.startswith("site/") for p in new), sorted(new)
    assert {p for p in new if p.startswith("site/store/")} == {f"site/store/{k}" for k in stored}
    assert not any(p.startswith("site/upload-tmp/") for p in new)
    assert not (tmp_path / "evil.mp4").exists() and not list(tmp_path.parent.glob("evil*"))


def _raw(port: int, head: str, body: bytes, wait: float = 5.0, close_after_send: bool = False) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as conn:
        conn.sendall(head.encode("latin-1") + body)
        if close_after_send:
            time.sleep(0.5)
            return b""
        chunks = []
        try:
            while chunk := conn.recv(65536):
                chunks.append(chunk)
        except TimeoutError:
            pass
        return b"".join(chunks)


@pytest.mark.integration  # uvicorn on a real socket
def test_declared_sizes_that_lie_over_real_http(centre: tuple[FastAPI, Path], tmp_path: Path) -> None:
    """Content-Length smaller or bigger than the body, against a real HTTP server (uvicorn): the
    test client cannot lie about lengths."""
    app, site = centre
    clip = make_clip(tmp_path / "clip.mp4")
    with live_server(app, log_level="warning", timeout_keep_alive=1) as server:
        port = server.port
        with TestClient(app) as client:
            token = bearer(client, "admin")["Authorization"]
        boundary = "b0undary"
        body = (
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="device_id"\r\n\r\nDSJ-9\r\n'
                f'--{boundary}\r\nContent-Disposition: form-data; name="start_time"\r\n\r\n'
                "2026-03-01T08:00:00Z\r\n"
                f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="c.mp4"\r\n'
                "Content-Type: video/mp4\r\n\r\n"
            ).encode()
            + clip
            + f"\r\n--{boundary}--\r\n".encode()
        )

        def head(length: int) -> str:
            return (
                f"POST /api/v1/bodycam/clips HTTP/1.1\r\nHost: x\r\nAuthorization: {token}\r\n"
                f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
                f"Content-Length: {length}\r\nConnection: close\r\n\r\n"
            )

        # declared smaller: the server reads only what was declared, a cut envelope: 4xx, no 5xx
        answer = _raw(port, head(len(body) // 2), body)
        status = int(answer.split(b" ", 2)[1])
        assert 400 <= status < 500, answer[:300]
        # declared bigger: the body never completes; the client gives up, nothing is kept
        _raw(port, head(len(body) * 2), body, close_after_send=True)
        time.sleep(1.0)
        # JSON declared bigger than the limit: refused from the header, before any byte is read
        answer = _raw(
            port,
            "POST /api/v1/auth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {10**12}\r\nConnection: close\r\n\r\n",
            b"{",
        )
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]["code"] == "payload_too_large"
    store = site / "store"
    assert not (store.exists() and files_under(store)), files_under(store)
    tmp = site / "upload-tmp"
    assert not (tmp.exists() and list(tmp.iterdir())), list(tmp.iterdir())


def test_oversized_json_is_413_on_every_route_before_it_is_read(centre: tuple[FastAPI, Path]) -> None:
    app, _ = centre
    big = json.dumps({"name": "x" * (JSON_LIMIT + 10), "password": "y"}).encode()
    with TestClient(app) as client:
        headers = bearer(client, "admin")
        for path in (
            "/api/v1/auth/token",
            "/api/v1/exports",
            "/api/v1/users",
            "/api/v1/cases",
            "/api/v1/events/batch",
        ):
            refused(
                client.post(path, content=big, headers={**headers, "content-type": "application/json"}),
                413,
                "payload_too_large",
            )

            def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams in
                for i in range(0, len(big), 1000):
                    yield big[i : i + 1000]

            refused(
                client.post(path, content=chunks(), headers={**headers, "content-type": "application/json"}),
                413,
                "payload_too_large",
            )
        # under the limit the same routes answer normally
        ok = client.post("/api/v1/auth/token", json={"name": "admin", "password": "wrong password"})
        refused(ok, 401, "unauthorized")


def test_hostile_camera_and_room_ids_in_the_configuration_are_refused(tmp_path: Path) -> None:
    for bad in HOSTILE_NAMES:
        for where in ("room", "camera"):
            room_id = bad if where == "room" else "int-1"
            cam_id = bad if where == "camera" else "int-1-a"
            toml = (
                f'[[rooms]]\nid = {json.dumps(room_id)}\nname = "r"\nkind = "interrogation"\n'
                f'  [[rooms.cameras]]\n  id = {json.dumps(cam_id)}\n  url = "rtsp://127.0.0.1:8554/a"\n'
            )
            path = tmp_path / "centre.toml"
            path.write_text(toml, encoding="utf-8")
            with pytest.raises(ConfigError) as err:
                load_settings(path)
            assert "id" in str(err.value), (bad, str(err.value))


def test_storage_keys_with_path_tricks_write_nothing_outside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "site" / "store"
    storage = LocalStorage(root)
    src = tmp_path / "src.bin"
    src.write_bytes(b"evidence")
    sha = hashlib.sha256(b"evidence").hexdigest()
    before = files_under(tmp_path)
    # "a/b" is a key like any other (a directory inside the root); every other hostile name is not
    for key in [*(n for n in HOSTILE_NAMES if n != "a/b"), "cams/../../../evil", "cams/a\x00/b"]:
        with pytest.raises(ValidationFailed):
            storage.put_file(key, src, sha)
        with pytest.raises(ValidationFailed):
            storage.exists(key)
    assert files_under(tmp_path) == before


def test_export_directory_names_from_hostile_case_numbers_stay_one_plain_directory(tmp_path: Path) -> None:
    out = tmp_path / "exports"
    ref = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    names = set()
    for case_number in [*HOSTILE_NAMES, "深公(刑)立字[2026]123号", "A2026/03/01"]:
        name = export_dir_name(case_number, 7, ref)
        assert (out / name).resolve().parent == out.resolve(), (case_number, name)
        assert all(c.isascii() and (c.isalnum() or c in "_-") for c in name), name
        names.add(name)
    assert len(names) > 1
