"""Integration: outages, garbage, timestamp jumps and storage failure recorded as precise gaps."""

from __future__ import annotations

import itertools
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from domain.errors import SpoolError
from domain.types import GapCause, SegmentRecord
from pipeline.simulator.camera import ONVIF_PROFILE, free_port
from recorders import ts_writer
from recorders.options import RecorderOptions
from recorders.sync_point import SyncPointSpec
from recorders.worker import CameraWorker
from tests.recorders.conftest import TEST_OPTIONS, CollectingSink, decode_segment, running
from tests.support.recording import assert_resumed_at_session_keyframe

pytestmark = pytest.mark.integration


def assert_contiguous(segs: list[SegmentRecord]) -> None:
    for a, b in itertools.pairwise(segs):
        assert b.prev_sha256 == a.sha256
        assert abs((b.start - a.end).total_seconds()) < 0.001, f"{a.storage_key} -> {b.storage_key}"


def assert_no_overlap(segs: list[SegmentRecord]) -> None:
    ordered = sorted(segs, key=lambda r: r.start)
    for rec in ordered:
        assert rec.end > rec.start, f"{rec.storage_key} has a non-positive duration"
    for a, b in itertools.pairwise(ordered):
        assert b.start >= a.end, f"{a.storage_key} overlaps {b.storage_key}"


def test_camera_killed_and_restarted_one_disconnect_gap(
    tmp_path: Path, sink: CollectingSink, cameras: Any
) -> None:
    spool = tmp_path / "spool"
    # The gap ends at the first keyframe after reconnecting: the retry interval (capped at 0.25 s by
    # default) + RTSP open (~0.2 s); a restarted camera starts its stream with a keyframe (1 s GOP).
    # If the new session's first keyframe is lost (sent before the PLAY reply), the worker asks the
    # camera for another (ONVIF SetSynchronizationPoint) rather than wait a GOP for one.
    victim = cameras("victim", tmp_path, onvif_port=free_port())
    other = cameras("other", tmp_path, video_codec="h265", audio_codec="aac")
    opts = replace(TEST_OPTIONS, reconnect_max_seconds=RecorderOptions().reconnect_max_seconds)
    workers = [
        CameraWorker(
            victim.camera_id,
            victim.url,
            spool,
            opts,
            sink,
            sync_point=SyncPointSpec(victim.onvif_url, ONVIF_PROFILE),
        ),
        CameraWorker(other.camera_id, other.url, spool, opts, sink),
    ]
    with running(workers):
        assert sink.wait_for(lambda: len(sink.segs("victim")) >= 2, 15)
        killed = time.time()
        victim.kill()
        time.sleep(5)
        victim.start()
        ready = time.time()
        assert sink.wait_for(lambda: any(r.start.timestamp() > ready - 1 for r in sink.segs("victim")), 10)
        time.sleep(3)
    gaps = sink.gaps_of("victim")
    assert len(gaps) == 1, gaps
    gap = gaps[0]
    # a SIGKILLed camera closes its TCP connection: the read ends at once, so this is a disconnect
    # (a stall is an open connection without packets; that needs stall_seconds to be noticed)
    assert gap.cause is GapCause.DISCONNECT
    assert abs(gap.start.timestamp() - killed) <= 0.5, gap.start.timestamp() - killed
    # The gap ends at the first keyframe the restarted camera's new session delivered.
    _nearest, first_sent = assert_resumed_at_session_keyframe(victim, killed + 1.0, gap.end.timestamp())
    segs = sink.segs("victim")
    before = [r for r in segs if r.end <= gap.start]
    after = [r for r in segs if r.start >= gap.end]
    assert before and after and len(before) + len(after) == len(segs)
    assert before[-1].end == gap.start and after[0].start == gap.end
    assert after[0].start.timestamp() - first_sent <= 1.0  # within 1 s of the camera being back
    assert after[0].prev_sha256 == before[-1].sha256  # the chain crosses the outage
    assert after[0].run_id != before[-1].run_id
    assert_contiguous(before)
    assert_contiguous(after)
    assert decode_segment(spool / after[0].storage_key, after[0].stream.audio_codec)["video_frames"] > 0
    # the other camera never noticed
    assert sink.gaps_of("other") == []
    assert_contiguous(sink.segs("other"))
    assert len({r.run_id for r in sink.segs("other")}) == 1
    st = [s for s in sink.statuses if s.camera_id == "victim"]
    assert max(s.reconnects for s in st) >= 1
    assert any(s.last_error and "disconnect" in s.last_error for s in st)


def test_garbage_server_reported_other_camera_unaffected(
    tmp_path: Path, sink: CollectingSink, cameras: Any
) -> None:
    from pipeline.simulator.hostile import GarbageRtpServer, GarbageRtspServer

    spool = tmp_path / "spool"
    good = cameras("good", tmp_path)
    with GarbageRtspServer() as garbage, GarbageRtpServer(seed=7) as garbage_rtp:
        workers = [
            CameraWorker("good", good.url, spool, TEST_OPTIONS, sink),
            CameraWorker("junk", garbage.url, spool, TEST_OPTIONS, sink),
            CameraWorker("junkrtp", garbage_rtp.url, spool, TEST_OPTIONS, sink),
        ]
        with running(workers):
            time.sleep(9)
    for cam in ("junk", "junkrtp"):
        st = [s for s in sink.statuses if s.camera_id == cam]
        errors = [s.last_error for s in st if s.last_error]
        assert errors, f"{cam}: no error reported in status"
        assert all(s.packets == 0 or cam == "junkrtp" for s in st)
        assert max(s.reconnects for s in st) >= 1  # kept retrying, never crashed
        assert st[-1].state == "stopped"
        # nothing was ever recorded, so there is no gap to bound (gaps start at a segment's end)
        assert sink.gaps_of(cam) == [] or all(
            g.cause in (GapCause.STREAM_ERROR, GapCause.DISCONNECT) for g in sink.gaps_of(cam)
        )
    junk_errors = {s.last_error for s in sink.statuses if s.camera_id == "junk" and s.last_error}
    assert any("stream_error" in e or "disconnect" in e for e in junk_errors), junk_errors
    assert sink.gaps_of("good") == []
    assert len(sink.segs("good")) >= 3
    assert_contiguous(sink.segs("good"))


def test_backward_timestamp_jump_splits_run(tmp_path: Path, sink: CollectingSink, cameras: Any) -> None:
    spool = tmp_path / "spool"
    cam = cameras("jumpy", tmp_path)
    with running([CameraWorker("jumpy", cam.url, spool, TEST_OPTIONS, sink)]):
        assert sink.wait_for(lambda: len(sink.segs("jumpy")) >= 2, 15)
        jumped = time.time()
        cam.jump_timestamps(-5)
        time.sleep(7)
    segs = sink.segs("jumpy")
    assert len({r.run_id for r in segs}) >= 2, "the run did not split"
    gaps = sink.gaps_of("jumpy")
    assert gaps and all(g.cause is GapCause.TIMESTAMP_JUMP for g in gaps)
    assert abs(gaps[0].start.timestamp() - jumped) < 1.0
    assert_no_overlap(segs)
    for gap in gaps:
        assert gap.end >= gap.start
        assert not any(r.start < gap.end and gap.start < r.end for r in segs), "gap overlaps footage"
    for run_id in {r.run_id for r in segs}:
        assert_contiguous([r for r in segs if r.run_id == run_id])
    # the chain is unbroken across runs
    for a, b in itertools.pairwise(segs):
        assert b.prev_sha256 == a.sha256
    # wall time keeps tracking real time after the jump (the camera clock was not believed)
    assert abs(segs[-1].end.timestamp() - time.time()) < 3.0


def test_storage_failure_gap_and_retry(
    tmp_path: Path, sink: CollectingSink, cameras: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    spool = tmp_path / "spool"
    cam = cameras("disk", tmp_path)
    real_mux = ts_writer.TsWriter.mux
    failing = {"on": False, "at": 0.0}

    def mux(self: ts_writer.TsWriter, packet: Any) -> None:
        if failing["on"]:
            raise SpoolError("injected: No space left on device (ENOSPC)")
        real_mux(self, packet)

    monkeypatch.setattr(ts_writer.TsWriter, "mux", mux)
    with running([CameraWorker("disk", cam.url, spool, TEST_OPTIONS, sink)]):
        assert sink.wait_for(lambda: len(sink.segs("disk")) >= 2, 15)
        failing["on"], failing["at"] = True, time.time()
        time.sleep(2)
        failing["on"] = False
        healed = time.time()
        assert sink.wait_for(lambda: any(r.start.timestamp() > healed for r in sink.segs("disk")), 10)
    gaps = sink.gaps_of("disk")
    assert len(gaps) == 1 and gaps[0].cause is GapCause.STORAGE_FAILURE
    assert abs(gaps[0].start.timestamp() - failing["at"]) < 0.5
    assert gaps[0].end.timestamp() - healed < 1.5
    st = [s for s in sink.statuses if s.camera_id == "disk"]
    assert any(s.last_error and "storage_failure" in s.last_error for s in st)
    assert_no_overlap(sink.segs("disk"))
    assert not list((spool / "disk").rglob("*.partial.json"))
