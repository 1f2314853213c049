"""Recorder test helpers: a sink that collects what workers report, workers run in threads, and
a segment decoder (the proof a file plays). Used by tests/recorders and tests/faults."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import av
import pytest

from domain.types import GapRecord, SegmentRecord
from recorders.events import CameraStatus
from recorders.options import RecorderOptions
from recorders.worker import CameraWorker


class CollectingSink:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.segments: list[tuple[SegmentRecord, Path, Path]] = []
        self.gaps: list[tuple[GapRecord, Path]] = []
        self.statuses: list[CameraStatus] = []

    def segment_closed(self, record: SegmentRecord, media_path: Path, sidecar_path: Path) -> None:
        with self.lock:
            self.segments.append((record, media_path, sidecar_path))

    def gap_recorded(self, gap: GapRecord, sidecar_path: Path) -> None:
        with self.lock:
            self.gaps.append((gap, sidecar_path))

    def status(self, status: CameraStatus) -> None:
        with self.lock:
            self.statuses.append(status)

    def segs(self, camera_id: str) -> list[SegmentRecord]:
        with self.lock:
            return sorted((r for r, _, _ in self.segments if r.camera_id == camera_id), key=lambda r: r.seq)

    def gaps_of(self, camera_id: str) -> list[GapRecord]:
        with self.lock:
            return [g for g, _ in self.gaps if g.camera_id == camera_id]

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.05)
        return predicate()


TEST_OPTIONS = RecorderOptions(segment_seconds=2.0, stall_seconds=3.0)


@pytest.fixture
def sink() -> CollectingSink:
    return CollectingSink()


@pytest.fixture
def cameras() -> Iterator[Callable[..., Any]]:
    """Start simulated cameras (small pictures); every one is stopped at teardown."""
    from pipeline.simulator.camera import SimulatedCamera, free_port

    started: list[Any] = []

    def start(camera_id: str, tmp: Path, **kw: Any) -> Any:
        kw.setdefault("width", 320)
        kw.setdefault("height", 240)
        kw.setdefault("bitrate_kbps", 400)
        cam = SimulatedCamera(camera_id, free_port(), events_log=tmp / f"{camera_id}.events.jsonl", **kw)
        started.append(cam)
        cam.start()
        return cam

    try:
        yield start
    finally:
        for cam in started:
            cam.stop()


@contextmanager
def running(workers: list[CameraWorker]) -> Iterator[threading.Event]:
    stop = threading.Event()
    threads = [threading.Thread(target=w.run, args=(stop,), daemon=True) for w in workers]
    for t in threads:
        t.start()
    try:
        yield stop
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=15)
        assert not any(t.is_alive() for t in threads), "a worker did not stop"


def decode_segment(path: Path, declared_audio: str | None = None) -> dict[str, Any]:
    """Decode every packet (the test's proof the file plays); returns what was found.

    FFmpeg's MPEG-TS muxer stores G.711 A-law byte for byte as a private-data PES (stream type
    0x06) that its demuxer reports as a *data* stream: the codec is named by the sidecar
    (``StreamInfo.audio_codec``), so such a stream is decoded with that decoder explicitly.
    """
    out: dict[str, Any] = {"video_frames": 0, "audio_frames": 0, "audio_bytes": 0}
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        out["video_codec"] = v.codec_context.name
        out["width"], out["height"] = v.codec_context.width, v.codec_context.height
        audio_ctx = None
        audio_index = -1
        if c.streams.audio:
            a = c.streams.audio[0]
            audio_ctx, audio_index = a.codec_context, a.index
        elif declared_audio is not None and len(c.streams) > 1:
            audio_index = next(s.index for s in c.streams if s.type == "data")
            audio_ctx = av.CodecContext.create(declared_audio, "r")
            audio_ctx.sample_rate = 8000
            audio_ctx.layout = "mono"
        if audio_ctx is not None:
            out["audio_codec"] = audio_ctx.name
        for packet in c.demux():
            if packet.size == 0:
                continue
            if packet.stream_index == v.index:
                out["video_frames"] += len(packet.decode())
            elif packet.stream_index == audio_index and audio_ctx is not None:
                out["audio_bytes"] += packet.size
                frames = audio_ctx.decode(packet)
                out["audio_frames"] += len(frames)
                if frames:
                    out["audio_rate"] = frames[0].sample_rate
    return out


# A reconnecting recorder's footage starts at the first keyframe its new RTSP session delivers. The
# simulator encodes one keyframe when a session's DESCRIBE prepares the media (#0, before PLAY: never
# sent), one at PLAY (#1, ~40 ms later), then one per GOP. #1 is lost when it reaches the socket
# before the PLAY reply, which FFmpeg's RTSP client discards (docs/design/recorder.md, "Known limits"):
# then footage starts at #2, one GOP later.
SESSION_KEYFRAMES_ALLOWED = 3


def assert_resumed_at_session_keyframe(camera: Any, after: float, gap_end: float) -> tuple[int, float]:
    """Assert that ``gap_end`` is the capture time (±40 ms) of one of the first keyframes the camera
    sent after ``after`` (its own events log, not the test's clock: a loaded machine delays the
    camera's and the RTSP set-up); returns that keyframe's number and the first keyframe's time."""
    sent = [t for t in camera.keyframe_times() if t > after]
    assert sent, f"the camera logged no keyframe after {after}"
    nearest = min(range(len(sent)), key=lambda i: abs(sent[i] - gap_end))
    print(
        f"resumed at keyframe #{nearest} of the new session; keyframes at "
        f"{[round(t - after, 3) for t in sent[:4]]} s, gap end {gap_end - after:+.3f} s"
    )
    assert abs(gap_end - sent[nearest]) <= 0.04, (gap_end - after, [t - after for t in sent[:4]])
    assert nearest < SESSION_KEYFRAMES_ALLOWED, (nearest, [t - after for t in sent[:4]])
    return nearest, sent[0]
