"""The S3 endpoint is down for "10 minutes" under ``vaudit run``, time-scaled with settings.

Ten minutes of a real centre (10 s segments, upload retries capped at 10 s) is ~60 segments per
camera spooled and ~60 capped retries. The same in 10 s: retries capped at 1/6 s
(``upload.retry_max_seconds``), ~60 failed probes; 1 s segments (``segment_seconds``; the
simulator's GOP of 1 s is the floor), ~10 segments spooled. The endpoint
is moto's real server, frozen (SIGSTOP: connections accepted, never answered), then resumed.

Expected: recording never notices (no gap), everything closed during the outage is stored,
verified and indexed afterwards, the footage is continuous, a storage alert was raised and resolved.
"""

from __future__ import annotations

import hashlib
import itertools
import time
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from domain.types import UTC, iso, parse_iso
from pipeline.simulator.camera import SimulatedCamera, free_port
from pipeline.storage import S3Storage
from tests.support.centre_files import CamSpec, write_centre
from tests.support.s3server import S3Server
from tests.support.vaudit_proc import VauditRun

pytestmark = [pytest.mark.faults, pytest.mark.integration]

START_TIMEOUT = 120.0  # vaudit run start (and restart) under a loaded machine; not a speed check

SCALE = 60.0  # 600 s of a real centre in 10 s
OUTAGE_SECONDS = 600.0 / SCALE


def test_s3_down_ten_simulated_minutes(tmp_path: Path) -> None:
    bucket = f"ev-{uuid.uuid4().hex[:12]}"
    cam = SimulatedCamera("s3-1", free_port(), width=320, height=240, bitrate_kbps=400)
    with S3Server(log_path=tmp_path / "moto.log") as server, cam:
        # A frozen endpoint is noticed after the read timeout: scaled down like the rest (10 s -> 1 s).
        storage_toml = (
            f'kind = "s3"\nendpoint = "{server.endpoint}"\nbucket = "{bucket}"\nread_timeout_seconds = 1.0'
        )
        config = write_centre(
            tmp_path / "centre.toml",
            [CamSpec("s3-1", "wait-1", "waiting", cam.url)],
            f"sqlite:///{tmp_path / 'index.db'}",
            storage_toml=storage_toml,
            segment_seconds=1.0,
            extra=f"[upload]\nretry_max_seconds = {10.0 / SCALE:.4f}\nretry_initial_seconds = 0.05",
        )
        env = {
            "VAUDIT_STORAGE__ACCESS_KEY": server.access_key,
            "VAUDIT_STORAGE__SECRET_KEY": server.secret_key,
        }
        with VauditRun(config, tmp_path / "run.log", env=env, start_timeout=START_TIMEOUT) as run:
            time.sleep(4)
            server.pause()
            down = time.time()
            try:
                time.sleep(OUTAGE_SECONDS)
                pending = run.get("/healthz").json()["upload"]["pending_files"]
                alerts = run.get("/api/v1/alerts").json()["alerts"]
            finally:
                server.resume()
            up = time.time()
            assert pending >= OUTAGE_SECONDS / 2, pending  # the spool held what could not be stored
            assert any(a["kind"] == "storage_unavailable" and a["open"] for a in alerts), alerts
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and run.get("/healthz").json()["upload"]["pending_files"] > 0:
                time.sleep(0.5)
            time.sleep(2)
            now = datetime.now(UTC)
            window = {"start": iso(now - timedelta(minutes=5)), "end": iso(now + timedelta(minutes=1))}
            segs = run.get("/api/v1/cameras/s3-1/segments", **window).json()["segments"]
            gaps = run.get("/api/v1/cameras/s3-1/gaps", **window).json()["gaps"]
            alerts = run.get("/api/v1/alerts").json()["alerts"]
        s3 = S3Storage(server.endpoint, bucket, server.access_key, server.secret_key)
        assert gaps == [], gaps  # storage trouble never costs footage
        assert any(a["kind"] == "storage_unavailable" and not a["open"] for a in alerts), alerts
        for a, b in itertools.pairwise(segs):
            assert a["end"] == b["start"], (a, b)
        assert parse_iso(segs[0]["start"]).timestamp() < down and parse_iso(segs[-1]["end"]).timestamp() > up
        during = [s for s in segs if down <= parse_iso(s["start"]).timestamp() < up]
        assert len(during) >= OUTAGE_SECONDS / 2, len(during)
        for seg in segs:
            with s3.open(seg["storage_key"]) as fh:
                assert hashlib.sha256(fh.read()).hexdigest() == seg["sha256"]
