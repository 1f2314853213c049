"""``vaudit run`` with S3 storage (moto's server over HTTP, the minio SDK as client): the endpoint
hangs for 20 s while two cameras record; afterwards every segment is stored, verified and indexed,
the spool is empty, an alert was raised and resolved, and the footage has no hole."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from domain.types import UTC, iso
from pipeline.simulator.camera import SimulatedCamera, free_port
from pipeline.storage import S3Storage
from tests.support.centre_files import CamSpec, write_centre
from tests.support.s3server import S3Server
from tests.support.vaudit_proc import VauditRun

pytestmark = pytest.mark.integration


@pytest.fixture
def two_cameras() -> Iterator[list[SimulatedCamera]]:
    with contextlib.ExitStack() as started:  # a SimulatedCamera starts on enter, stops on exit
        yield [
            started.enter_context(SimulatedCamera("wait-1-a", free_port(), width=640, height=360)),
            started.enter_context(
                SimulatedCamera("wait-1-b", free_port(), width=640, height=360, audio_codec="aac")
            ),
        ]


def _spool_media(spool: Path) -> list[Path]:
    return [p for p in spool.rglob("*.ts") if "quarantine" not in p.parts]


def test_s3_down_20s_loses_nothing(
    tmp_path: Path, two_cameras: list[SimulatedCamera], s3_server_private: S3Server, db_url: str
) -> None:
    server = s3_server_private
    bucket = f"ev-{uuid.uuid4().hex[:12]}"
    storage_toml = f'kind = "s3"\nendpoint = "{server.endpoint}"\nbucket = "{bucket}"'
    specs = [CamSpec(c.camera_id, "wait-1", "waiting", c.url) for c in two_cameras]
    config = write_centre(
        tmp_path / "centre.toml", specs, db_url, storage_toml=storage_toml, segment_seconds=2.0
    )
    env = {"VAUDIT_STORAGE__ACCESS_KEY": server.access_key, "VAUDIT_STORAGE__SECRET_KEY": server.secret_key}
    spool = tmp_path / "spool"
    with VauditRun(config, tmp_path / "run.log", env=env) as run:
        time.sleep(6)
        server.pause()
        try:
            time.sleep(20)
            # the spool held what could not be stored
            assert len(_spool_media(spool)) >= 10
            alerts = run.get("/api/v1/alerts").json()["alerts"]
            assert any(a["kind"] == "storage_unavailable" and a["open"] for a in alerts), alerts
        finally:
            server.resume()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and run.get("/healthz").json()["upload"]["pending_files"] > 0:
            time.sleep(0.5)
        time.sleep(3)
        now = datetime.now(UTC)
        start, end = iso(now - timedelta(minutes=5)), iso(now + timedelta(minutes=1))
        per_camera = {
            cam.camera_id: run.get(f"/api/v1/cameras/{cam.camera_id}/segments", start=start, end=end).json()[
                "segments"
            ]
            for cam in two_cameras
        }
        gaps = {
            cam.camera_id: run.get(f"/api/v1/cameras/{cam.camera_id}/gaps", start=start, end=end).json()[
                "gaps"
            ]
            for cam in two_cameras
        }
        alerts = run.get("/api/v1/alerts").json()["alerts"]
    assert any(a["kind"] == "storage_unavailable" and not a["open"] for a in alerts), alerts

    s3 = S3Storage(server.endpoint, bucket, server.access_key, server.secret_key)
    stored = set(s3.list(""))
    for camera_id, segs in per_camera.items():
        assert len(segs) >= 12, (camera_id, len(segs))  # ~30 s of 2 s segments, outage included
        assert gaps[camera_id] == [], gaps  # storage trouble never cost footage
        for a, b in itertools.pairwise(segs):
            assert a["end"] == b["start"], (a, b)  # continuous: nothing lost during the outage
        for seg in segs:
            assert seg["storage_key"] in stored
            with s3.open(seg["storage_key"]) as fh:
                assert hashlib.sha256(fh.read()).hexdigest() == seg["sha256"]
            assert seg["storage_key"].rsplit(".", 1)[0] + ".json" in stored
    # everything closed was stored and removed from the spool (only files still open may remain)
    assert _spool_media(spool) == [] or all(
        p.with_suffix(".partial.json").exists() for p in _spool_media(spool)
    )
