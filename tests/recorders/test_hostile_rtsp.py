"""Integration: hostile RTSP servers recorded next to one normal camera.

Every hostile camera (malformed RTSP replies; a believable H.264 camera with truncated RTP,
absurd timestamps, wrong SPS/PPS, a codec change mid-stream, a 20,000×20,000 or 9,000×9,000
picture claim) must end in a clear error and/or a gap with its cause or a new run; its worker
keeps retrying (never dies, never hangs, stops when asked); the normal camera records on
without a gap.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from domain.types import GapCause, SegmentRecord
from pipeline.simulator.hostile import (
    MALFORMED_KINDS,
    MalformedReplyServer,
    ScriptedH264Camera,
    split_annexb,
)
from recorders.worker import CameraWorker
from tests.recorders.conftest import TEST_OPTIONS, CollectingSink

pytestmark = pytest.mark.integration

RECORD_SECONDS = 12.0


def h264_frames(width: int = 320, height: int = 240, count: int = 50, fps: int = 25) -> list[list[bytes]]:
    """Two seconds of real H.264 (Baseline, 1 s GOP, SPS/PPS before every keyframe) as NAL units."""
    cc: Any = av.CodecContext.create("libx264", "w")
    cc.width, cc.height, cc.pix_fmt = width, height, "yuv420p"
    cc.time_base, cc.framerate = Fraction(1, fps), Fraction(fps, 1)
    cc.options = {
        "preset": "ultrafast",
        "tune": "zerolatency",
        "profile": "baseline",
        "x264-params": f"keyint={fps}:min-keyint={fps}:scenecut=0:repeat-headers=1:bframes=0",
    }
    out: list[list[bytes]] = []
    for i in range(count):
        img = np.zeros((height, width, 3), np.uint8)
        img[:, (i * 4) % width] = 255  # a moving bar: frames differ
        frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        out += [split_annexb(bytes(p)) for p in cc.encode(frame)]
    out += [split_annexb(bytes(p)) for p in cc.encode(None)]
    return out


def contiguous(segs: list[SegmentRecord]) -> None:
    for a, b in itertools.pairwise(segs):
        assert b.prev_sha256 == a.sha256
        assert abs((b.start - a.end).total_seconds()) < 0.001, f"{a.storage_key} -> {b.storage_key}"


def no_overlap(segs: list[SegmentRecord]) -> None:
    ordered = sorted(segs, key=lambda r: r.start)
    for a, b in itertools.pairwise(ordered):
        assert b.start >= a.end, f"{a.storage_key} overlaps {b.storage_key}"


def errors(sink: CollectingSink, camera_id: str) -> list[str]:
    return [s.last_error for s in sink.statuses if s.camera_id == camera_id and s.last_error]


def test_hostile_cameras_give_clear_errors_gaps_or_new_runs_and_spare_the_others(
    tmp_path: Path, sink: CollectingSink, cameras: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="recorders")
    spool = tmp_path / "spool"
    good = cameras("good", tmp_path)
    frames = h264_frames()
    servers: dict[str, Any] = {f"bad-{k.replace('_', '-')}": MalformedReplyServer(k) for k in MALFORMED_KINDS}
    for fault in ("truncated_rtp", "absurd_timestamps", "wrong_sps", "codec_change", "huge_resolution"):
        # the codec change early: its watchdog needs stall_seconds + 2 s after the change (margin)
        after = 1.5 if fault == "codec_change" else 3.0
        servers[fault.replace("_", "-")] = ScriptedH264Camera(frames, fault, fault_after=after)
    servers["huge-9k"] = ScriptedH264Camera(frames, "huge_resolution", huge_size=(9000, 9000))
    workers = {"good": CameraWorker("good", good.url, spool, TEST_OPTIONS, sink)}
    workers.update(
        {cid: CameraWorker(cid, srv.url, spool, TEST_OPTIONS, sink) for cid, srv in servers.items()}
    )
    stop = threading.Event()
    threads = {cid: threading.Thread(target=w.run, args=(stop,), daemon=True) for cid, w in workers.items()}
    try:
        for t in threads.values():
            t.start()
        time.sleep(RECORD_SECONDS)
        # every worker is still at work: none died of its camera
        for cid, w in workers.items():
            assert threads[cid].is_alive(), cid
            assert w.status().state in ("connecting", "recording", "backoff"), (cid, w.status())
        finished = time.time()
    finally:
        stop.set()
        for t in threads.values():
            t.join(timeout=15)
        for srv in servers.values():
            srv.stop()
    assert not [cid for cid, t in threads.items() if t.is_alive()], "a worker did not stop (hung in a read?)"

    # the normal camera never noticed
    assert sink.gaps_of("good") == []
    assert len(sink.segs("good")) >= 3
    assert len({r.run_id for r in sink.segs("good")}) == 1
    contiguous(sink.segs("good"))

    # malformed replies: refused at connect with a clear error, retried, nothing recorded
    for kind in MALFORMED_KINDS:
        cid = f"bad-{kind.replace('_', '-')}"
        errs = errors(sink, cid)
        assert errs and all(e.startswith(("stream_error:", "disconnect:", "stall:")) for e in errs), (
            cid,
            errs,
        )
        assert sink.segs(cid) == [] and sink.gaps_of(cid) == []
        assert workers[cid].status().reconnects >= 1, cid
    assert any("audio:unknown" in e for e in errors(sink, "bad-bad-sdp"))  # named, not an AttributeError

    # truncated RTP: the session dies, each outage is one gap with bounds and cause, then a new run
    segs, gaps = sink.segs("truncated-rtp"), sink.gaps_of("truncated-rtp")
    assert len({r.run_id for r in segs}) >= 2 and gaps, (segs, gaps)
    assert all(g.cause in (GapCause.DISCONNECT, GapCause.STREAM_ERROR, GapCause.STALL) for g in gaps)
    for gap in gaps:
        assert gap.end > gap.start
        assert any(r.end == gap.start for r in segs) and any(r.start == gap.end for r in segs)
    no_overlap(segs)
    for a, b in itertools.pairwise(segs):
        assert b.prev_sha256 == a.sha256  # the chain crosses every outage

    # absurd timestamps: every leap splits the run with a timestamp_jump gap; wall time stays real
    segs, gaps = sink.segs("absurd-timestamps"), sink.gaps_of("absurd-timestamps")
    assert len({r.run_id for r in segs}) >= 3
    assert gaps and all(g.cause is GapCause.TIMESTAMP_JUMP for g in gaps)
    no_overlap(segs)
    assert abs(segs[-1].end.timestamp() - finished) < 3.0
    assert all(abs(r.start.timestamp() - finished) < RECORD_SECONDS + 3 for r in segs)

    # wrong SPS/PPS and a 20,000x20,000 SPS (which libavcodec refuses): no picture format, refused
    for cid in ("wrong-sps", "huge-resolution"):
        assert sink.segs(cid) == []
        assert any("no resolution" in e for e in errors(sink, cid)), errors(sink, cid)
    # 9,000x9,000 (libavcodec would accept it and the probe decode ~0.5 GB): refused by size
    assert sink.segs("huge-9k") == []
    assert any("claims a 9008x9008 picture" in e for e in errors(sink, "huge-9k")), errors(sink, "huge-9k")

    # codec change mid-stream: footage until the change; the data without packets is cut by the
    # watchdog (the worker would otherwise hang in the read); then the new offer is refused by name
    assert sink.segs("codec-change") and all(
        r.stream.video_codec == "h264" for r in sink.segs("codec-change")
    )
    assert any("shutting its socket down" in r.getMessage() for r in caplog.records)
    assert any("no recordable video stream" in e and "mjpeg" in e for e in errors(sink, "codec-change"))
