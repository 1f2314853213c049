"""The spool's disk fills up under ``vaudit run`` (a 32 MB tmpfs kept full for 6 s), then space returns.

Expected: recording stops cleanly (the open segment is closed or recovered as far as written), a
``spool_failure`` alert is open while the disk is full (API), nothing already recorded is damaged
(every indexed segment's stored bytes match the hash in its sidecar and in the index), recording
resumes when space returns, and the lost interval is one ``storage_failure`` gap within 1 s of the
outage; the alert is then resolved.
"""

from __future__ import annotations

import hashlib
import json
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from domain.types import UTC, GapCause, iso, parse_iso
from pipeline.simulator.camera import SimulatedCamera, free_port
from recorders.spool import media_span
from tests.support.centre_files import CamSpec, write_centre
from tests.support.loss import assert_loss_bounded
from tests.support.tmpfs import DiskFiller, small_tmpfs
from tests.support.vaudit_proc import VauditRun

pytestmark = [pytest.mark.faults, pytest.mark.integration]

START_TIMEOUT = 120.0  # vaudit run start (and restart) under a loaded machine; not a speed check

FULL_SECONDS = 6.0


def _alerts(run: VauditRun) -> list[dict[str, object]]:
    return list(run.get("/api/v1/alerts").json()["alerts"])


def test_spool_disk_full_then_space_returns(tmp_path: Path) -> None:
    cam = SimulatedCamera("disk-1", free_port(), width=320, height=240, bitrate_kbps=400)
    spool = tmp_path / "spool"
    config = write_centre(
        tmp_path / "centre.toml",
        [CamSpec("disk-1", "wait-1", "waiting", cam.url)],
        f"sqlite:///{tmp_path / 'index.db'}",
        segment_seconds=2.0,
    )
    with small_tmpfs(spool, "32m"), cam:
        with VauditRun(config, tmp_path / "run.log", start_timeout=START_TIMEOUT) as run:
            time.sleep(6)
            with DiskFiller(spool):
                full_at = time.time()
                deadline = time.monotonic() + FULL_SECONDS
                seen_open = False
                while time.monotonic() < deadline:
                    seen_open = seen_open or any(
                        a["kind"] == "spool_failure" and a["open"] for a in _alerts(run)
                    )
                    time.sleep(0.25)
            freed_at = time.time()
            assert seen_open, f"no open spool_failure alert while the disk was full: {_alerts(run)}"
            deadline = time.monotonic() + 30
            now = datetime.now(UTC)
            window = {"start": iso(now - timedelta(minutes=5)), "end": iso(now + timedelta(minutes=1))}
            while time.monotonic() < deadline:
                segs = run.get("/api/v1/cameras/disk-1/segments", **window).json()["segments"]
                if any(parse_iso(s["start"]).timestamp() > freed_at + 2 for s in segs):
                    break
                time.sleep(0.5)
            time.sleep(2.5)
            segs = run.get("/api/v1/cameras/disk-1/segments", **window).json()["segments"]
            gaps = run.get("/api/v1/cameras/disk-1/gaps", **window).json()["gaps"]
            alerts = _alerts(run)
            metrics = run.get("/metrics").text
        quarantined = [p for p in spool.rglob("*") if "quarantine" in p.parts and p.is_file()]
        set_aside = {p.name: (p.stat().st_size, media_span(p)) for p in quarantined if p.suffix == ".ts"}

    # The worker keeps the camera connection and the packets since the last keyframe while the spool
    # is full, so footage resumes at the keyframe before space returned, not at the camera's next one.
    holes = assert_loss_bounded(segs, gaps, (full_at, freed_at), GapCause.STORAGE_FAILURE.value)
    assert len(holes) == 1, holes
    assert any(a["kind"] == "spool_failure" and not a["open"] for a in alerts), alerts
    assert not any(a["kind"] == "camera_lost" for a in alerts), alerts  # the camera was never lost
    assert 'cause="storage_failure"' in metrics
    # A segment whose first chunk filled the disk is removed (zero bytes); one cut inside its first
    # keyframe is kept aside, but nothing playable is: every recorded frame was recovered or stored.
    assert all(span is None for _size, span in set_aside.values()), set_aside
    for seg in segs:  # nothing already recorded is damaged
        stored = tmp_path / "store" / seg["storage_key"]
        assert hashlib.sha256(stored.read_bytes()).hexdigest() == seg["sha256"], seg["storage_key"]
        sidecar = json.loads(stored.with_suffix(".json").read_text())
        assert sidecar["sha256"] == seg["sha256"] and sidecar["size"] == stored.stat().st_size
