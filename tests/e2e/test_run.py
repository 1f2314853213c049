"""``vaudit run`` end to end: real simulated RTSP cameras, the real recorder process, local
storage, the index on SQLite and PostgreSQL, and the HTTP API."""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import av
import pytest

from domain.types import UTC, iso, parse_iso
from pipeline.simulator.camera import SimulatedCamera, free_port
from tests.support.centre_files import CamSpec, write_centre
from tests.support.vaudit_proc import VauditRun

pytestmark = pytest.mark.integration


@pytest.fixture
def cameras() -> Iterator[list[SimulatedCamera]]:
    with contextlib.ExitStack() as started:  # a SimulatedCamera starts on enter, stops on exit
        yield [
            started.enter_context(
                SimulatedCamera(
                    "int-1-a", free_port(), video_codec="h264", audio_codec="alaw", width=640, height=360
                )
            ),
            started.enter_context(
                SimulatedCamera(
                    "int-1-b", free_port(), video_codec="h265", audio_codec="aac", width=640, height=360
                )
            ),
        ]


def _config(tmp_path: Path, cams: list[SimulatedCamera], db_url: str) -> Path:
    specs = [CamSpec(c.camera_id, "int-1", "interrogation", c.url) for c in cams]
    return write_centre(tmp_path / "centre.toml", specs, db_url, segment_seconds=3.0)


def _window() -> tuple[str, str]:
    now = datetime.now(UTC)
    return iso(now - timedelta(minutes=5)), iso(now + timedelta(minutes=1))


def test_records_indexes_and_serves(tmp_path: Path, cameras: list[SimulatedCamera], db_url: str) -> None:
    config = _config(tmp_path, cameras, db_url)
    with VauditRun(config, tmp_path / "run.log") as run:
        time.sleep(14)
        listing = run.get("/api/v1/cameras").json()["cameras"]
        assert {c["id"] for c in listing} == {"int-1-a", "int-1-b"}
        assert all(c["connected"] and c["room_kind"] == "interrogation" for c in listing), listing

        start, end = _window()
        for cam in cameras:
            body = run.get(f"/api/v1/cameras/{cam.camera_id}/segments", start=start, end=end).json()
            segs = body["segments"]
            assert len(segs) >= 2, body
            for seg in segs:
                assert {"start", "end", "storage_key", "size", "sha256"} <= seg.keys()
                stored = tmp_path / "store" / seg["storage_key"]
                assert stored.stat().st_size == seg["size"]
                assert hashlib.sha256(stored.read_bytes()).hexdigest() == seg["sha256"]
            for a, b in itertools.pairwise(segs):
                if a["end"] != b["start"]:
                    # only a recorded gap may separate two segments
                    gaps = run.get(
                        f"/api/v1/cameras/{cam.camera_id}/gaps", start=a["end"], end=b["start"]
                    ).json()
                    assert gaps["gaps"], (a, b)
            # no transcoding: the stored file carries the camera's codecs. FFmpeg's MPEG-TS demuxer
            # reads A-law (a private-data PES) back as a data stream; the sidecar names the codec.
            with av.open(str(tmp_path / "store" / segs[0]["storage_key"])) as f:
                kinds = {s.type: (s.codec_context.name if s.codec_context else None) for s in f.streams}
            expected_video = "h264" if cam.video_codec == "h264" else "hevc"
            assert kinds["video"] == expected_video and segs[0]["video_codec"] == expected_video
            assert (segs[0]["width"], segs[0]["height"]) == (640, 360)
            if cam.audio_codec == "alaw":
                assert segs[0]["audio_codec"] == "pcm_alaw" and "data" in kinds
            else:
                assert segs[0]["audio_codec"] == "aac" and kinds["audio"] == "aac"

        metrics = run.get("/metrics").text
        assert 'vaudit_camera_bitrate_bps{camera="int-1-a"}' in metrics
        rate = float(metrics.split('vaudit_camera_bitrate_bps{camera="int-1-a"} ')[1].split()[0])
        assert rate > 10_000
        assert 'vaudit_camera_spool_bytes{camera="int-1-b"}' in metrics
        assert "vaudit_camera_last_segment_age_seconds" in metrics
        # no onvif_url here: never asked, never failed (the counter is there for dashboards)
        assert 'vaudit_camera_keyframe_requests_total{camera="int-1-a",result="granted"} 0.0' in metrics
        assert 'vaudit_camera_keyframe_requests_total{camera="int-1-b",result="failed"} 0.0' in metrics

        health = run.get("/healthz").json()
        assert health["status"] == "ok" and set(health["workers"]) == {"int-1-a", "int-1-b"}

        # the API's one error shape
        missing = run.get("/api/v1/cameras/nope/segments", start=start, end=end)
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
        naive = run.get("/api/v1/cameras/int-1-a/gaps", start="2026-01-01T00:00:00", end=end)
        assert naive.status_code == 422
        assert naive.json()["error"]["details"]["fields"][0]["field"] == "query.start"
        garbage = run.get("/api/v1/cameras/int-1-a/gaps", start="yesterday", end=end)
        assert garbage.status_code == 422 and garbage.json()["error"]["code"] == "validation_failed"
    assert run.proc is not None and run.proc.returncode == 0


def test_sigkill_recovers_partial_and_gap_covers_downtime(
    tmp_path: Path, cameras: list[SimulatedCamera], db_url: str
) -> None:
    config = _config(tmp_path, cameras[:1], db_url)
    cam = cameras[0]
    run = VauditRun(config, tmp_path / "run.log")
    run.start()
    try:
        time.sleep(7.5)  # mid-segment (3 s segments, keyframe every second)
        run.kill()
        killed_at = time.time()
        time.sleep(3)
        restarted_at = time.time()
        run.start()
        time.sleep(8)
        start, end = _window()
        segs = run.get(f"/api/v1/cameras/{cam.camera_id}/segments", start=start, end=end).json()["segments"]
        gaps = run.get(f"/api/v1/cameras/{cam.camera_id}/gaps", start=start, end=end).json()["gaps"]
    finally:
        run.stop()
    recovered = [s for s in segs if s["recovered"]]
    assert len(recovered) == 1, segs
    with av.open(str(tmp_path / "store" / recovered[0]["storage_key"])) as f:
        frames = sum(1 for _ in f.decode(video=0))
    assert frames > 0
    restart_gaps = [g for g in gaps if g["cause"] == "recorder_restart"]
    assert len(restart_gaps) == 1, gaps
    gap = restart_gaps[0]
    assert gap["start"] == recovered[0]["end"]
    # the gap covers the downtime and only it: from the last flushed data to the first new packet
    assert abs(parse_iso(gap["start"]).timestamp() - killed_at) < 1.0
    # ... to the first packet after the restart: after the new process began and no later than its
    # recorder logged the run that packet starts (process start-up time is the machine's, not ours)
    gap_end = parse_iso(gap["end"]).timestamp()
    runs = [
        parse_iso(str(r["ts"])).timestamp()
        for r in run.log_records("run started")
        if r.get("camera_id") == cam.camera_id
    ]
    resumed = [t for t in runs if t > restarted_at]
    assert resumed, runs
    assert restarted_at < gap_end <= resumed[0] + 0.002, (gap_end - restarted_at, resumed[0] - restarted_at)
    after = [s for s in segs if s["start"] >= gap["end"]]
    assert after and after[0]["start"] == gap["end"]


def test_reindex_rebuilds_lost_database(tmp_path: Path, cameras: list[SimulatedCamera], db_url: str) -> None:
    import subprocess
    import sys

    from indexer.database import create_engine_for, downgrade, upgrade
    from indexer.segment_store import SegmentStore

    config = _config(tmp_path, cameras[:1], db_url)
    cam = cameras[0]
    lo, hi = datetime.now(UTC) - timedelta(minutes=5), datetime.now(UTC) + timedelta(minutes=5)
    with VauditRun(config, tmp_path / "run.log"):
        time.sleep(8)
        cam.kill()  # an outage, so there is a gap to rebuild as well
        time.sleep(2)
        cam.restart()
        time.sleep(6)

    engine = create_engine_for(db_url)
    store = SegmentStore(engine)
    before = (store.segments(cam.camera_id, lo, hi), store.gaps(cam.camera_id, lo, hi))
    assert len(before[0]) >= 3 and before[1]
    downgrade(engine)  # the database is lost: every table dropped
    vaudit = str(Path(sys.executable).with_name("vaudit"))
    done = subprocess.run(
        [vaudit, "reindex", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"segments: {len(before[0])} added" in done.stderr
    upgrade(engine)  # no-op: reindex migrated it
    after = (store.segments(cam.camera_id, lo, hi), store.gaps(cam.camera_id, lo, hi))
    engine.dispose()
    assert after == before  # every row back exactly as it was, hash chain included
