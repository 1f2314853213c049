"""Integration: real simulated cameras, real spool (requirements 1, 2, 4 and clean stop)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Any

import av
import pytest

import recorders.worker as worker_module
from domain.types import ClockSource, SegmentRecord, sidecar_key
from recorders.ts_writer import TsWriter, buffer_bytes_for
from recorders.worker import CameraWorker
from tests.recorders.conftest import TEST_OPTIONS, CollectingSink, decode_segment, running

pytestmark = pytest.mark.integration


def check_camera(sink: CollectingSink, cam: Any, spool: Path, codec: str, audio: str, rate: int) -> None:
    segs = sink.segs(cam.camera_id)
    assert len(segs) >= 6, f"{cam.camera_id}: only {len(segs)} segments"
    keyframes = cam.keyframe_times()
    for i, rec in enumerate(segs):
        media = spool / rec.storage_key
        assert rec.end > rec.start
        assert rec.seq == segs[0].seq + i
        # integrity: sidecar = record, hash = file, chain links
        side = json.loads((spool / sidecar_key(rec.storage_key)).read_text())
        assert SegmentRecord.from_json(side) == rec
        assert hashlib.sha256(media.read_bytes()).hexdigest() == rec.sha256
        assert media.stat().st_size == rec.size
        if i:
            assert rec.prev_sha256 == segs[i - 1].sha256
            assert abs((rec.start - segs[i - 1].end).total_seconds()) < 0.001
        # no transcoding: what the camera sent is what the file holds, and it decodes
        found = decode_segment(media, rec.stream.audio_codec)
        assert found["video_codec"] == codec and (found["width"], found["height"]) == (320, 240)
        where = f"{cam.camera_id} segment {i + 1}/{len(segs)} ({rec.range.seconds:.3f} s, {rec.packets} packets): {found}"
        assert found["audio_codec"] == audio, where
        # The segment the stop cut after a last keyframe can be shorter than one audio frame (AAC at
        # 16 kHz: 64 ms), so it may hold no sound; every other segment has it, at the camera's rate.
        if i < len(segs) - 1 or rec.range.seconds >= 0.1:
            assert found.get("audio_rate") == rate and found["audio_frames"] > 0, where
        if audio == "pcm_alaw":  # 8000 one-byte samples a second: A-law as sent, not re-encoded
            # within 0.2 s: audio and video packets of a segment's edges interleave by ~0.1 s
            assert abs(found["audio_bytes"] / 8000 - rec.range.seconds) < 0.2
        assert found["video_frames"] >= 25 or i == len(segs) - 1
        assert rec.stream.video_codec == codec and rec.stream.audio_codec == audio
        # the camera's own clock: a segment starts at one of its keyframes (RTCP NTP time)
        nearest = min(abs(k - rec.start.timestamp()) for k in keyframes)
        assert nearest < 0.040, f"{rec.storage_key} starts {nearest * 1000:.1f} ms from any keyframe"
        assert 1.9 <= rec.range.seconds <= 2.6 or i == len(segs) - 1
    assert segs[0].prev_sha256 is None
    assert {r.clock_source for r in segs} == {ClockSource.RTCP}
    assert not list((spool / cam.camera_id).rglob("*.partial.json"))


def test_two_cameras_h264_alaw_and_h265_aac(tmp_path: Path, sink: CollectingSink, cameras: Any) -> None:
    spool = tmp_path / "spool"
    cam1 = cameras("cam264", tmp_path, video_codec="h264", audio_codec="alaw")
    cam2 = cameras("cam265", tmp_path, video_codec="h265", audio_codec="aac")
    workers = [CameraWorker(c.camera_id, c.url, spool, TEST_OPTIONS, sink) for c in (cam1, cam2)]
    with running(workers):
        time.sleep(20)
    check_camera(sink, cam1, spool, "h264", "pcm_alaw", 8000)
    check_camera(sink, cam2, spool, "hevc", "aac", 16000)
    assert sink.gaps == []
    last = [s for s in sink.statuses if s.camera_id == "cam264"][-1]
    assert last.state == "stopped" and last.packets > 0 and last.video_frames > 400
    state = json.loads((spool / "cam264" / "state.json").read_text())
    assert state["last_sha256"] == sink.segs("cam264")[-1].sha256


def test_write_buffer_sized_from_the_first_keyframe_then_from_closed_segments(
    tmp_path: Path, sink: CollectingSink, cameras: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before any segment has closed the buffer comes from the first keyframe's size (not the
    2 KiB floor for a whole segment); afterwards from the last closed segment's byte rate."""
    buffers: list[int] = []

    class SpyWriter(TsWriter):
        def __init__(self, path: Path, streams: list[Any], buffer_bytes: int = 0, sm3: bool = False) -> None:
            buffers.append(buffer_bytes)
            super().__init__(path, streams, buffer_bytes, sm3)

    monkeypatch.setattr(worker_module, "TsWriter", SpyWriter)
    spool = tmp_path / "spool"
    cam = cameras("bufcam", tmp_path, video_codec="h264", audio_codec="alaw", bitrate_kbps=1500)
    # 2 s of media per buffer: the test camera's small pictures make small keyframes, and the
    # estimate must show above the 2 KiB floor
    opts = dataclasses.replace(TEST_OPTIONS, write_buffer_seconds=2.0)
    with running([CameraWorker(cam.camera_id, cam.url, spool, opts, sink)]):
        time.sleep(7)
    segs = sink.segs("bufcam")
    assert len(segs) >= 2 and len(buffers) >= 3
    with av.open(str(spool / segs[0].storage_key)) as first:
        keyframe = next(p for p in first.demux(first.streams.video[0]) if p.size).size
    seconds = opts.write_buffer_seconds
    # the keyframe as read back from the file may differ from the one received by a few bytes (an
    # access unit delimiter the TS muxer adds when missing): within 16 bytes either way
    lo, hi = (
        buffer_bytes_for((keyframe + d) / worker_module.KEYFRAME_RATE_DIVISOR, seconds) for d in (-16, 16)
    )
    assert lo <= buffers[0] <= hi
    assert buffers[0] > buffer_bytes_for(0.0, seconds)
    rate = segs[0].size / segs[0].range.seconds
    assert buffers[1] == buffer_bytes_for(rate, seconds)
