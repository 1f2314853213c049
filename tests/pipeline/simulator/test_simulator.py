"""The camera simulator serves what it promises, checked with the client the recorder uses (PyAV)."""

from __future__ import annotations

import contextlib
import itertools
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from domain.errors import ConfigError
from pipeline.settings import CameraConfig, RoomConfig
from pipeline.simulator.camera import FileCameraServer, SimulatedCamera, free_port, make_clip
from pipeline.simulator.centre import camera_for
from pipeline.simulator.hostile import GarbageRtpServer, GarbageRtspServer

pytestmark = pytest.mark.integration

TCP = {"rtsp_transport": "tcp"}
CameraFactory = Callable[..., SimulatedCamera]


@pytest.fixture
def cameras(tmp_path: Path) -> Iterator[CameraFactory]:
    started: list[SimulatedCamera] = []

    def start(camera_id: str = "cam", **kw: Any) -> SimulatedCamera:
        kw.setdefault("width", 640)
        kw.setdefault("height", 360)
        kw.setdefault("bitrate_kbps", 600)
        cam = SimulatedCamera(camera_id, free_port(), events_log=tmp_path / f"{camera_id}.jsonl", **kw)
        started.append(cam)
        return cam.start()

    try:
        yield start
    finally:
        for cam in started:
            cam.stop()
            assert not cam.running


def _open(url: str, **options: str) -> Any:
    return av.open(url, options={**TCP, **options}, timeout=10)


def _keyframe_walls(container: Any, seconds: float, wanted: int = 3) -> list[float]:
    """Capture times of keyframes as a client computes them: RTCP anchor + pts."""
    video = container.streams.video[0]
    walls: list[float] = []
    deadline = time.monotonic() + seconds
    for packet in container.demux(video):
        if time.monotonic() > deadline or len(walls) >= wanted:
            break
        if packet.pts is not None and packet.is_keyframe and container.start_time_realtime:
            walls.append(container.start_time_realtime / 1e6 + float(packet.pts * video.time_base))
    return walls


@pytest.mark.parametrize(
    ("video", "audio", "size", "names"),
    [
        ("h264", "alaw", (768, 576), ("h264", "pcm_alaw", 8000)),
        ("h265", "aac", (640, 360), ("hevc", "aac", 16000)),
    ],
)
def test_codecs_resolution_and_rtcp_capture_time(
    cameras: CameraFactory, video: str, audio: str, size: tuple[int, int], names: tuple[str, str, int]
) -> None:
    cam = cameras(f"cam-{video}", video_codec=video, audio_codec=audio, width=size[0], height=size[1])
    with _open(cam.url) as c:
        assert [s.type for s in c.streams] == ["video", "audio"]
        v, a = c.streams.video[0].codec_context, c.streams.audio[0].codec_context
        assert (v.name, a.name, a.sample_rate) == names
        assert (v.width, v.height) == size
        walls = _keyframe_walls(c, seconds=8)
        assert c.start_time_realtime is not None, "no RTCP sender report reached the client"
    assert len(walls) >= 3
    assert abs(walls[-1] - time.time()) < 5, "the SR's NTP time is not the wall clock"
    logged = cam.keyframe_times()
    for wall in walls:
        assert min(abs(wall - t) for t in logged) < 0.040, f"keyframe at {wall} not in the events log"


def _luma(frame: Any) -> np.ndarray[Any, Any]:
    """The Y plane as sent (limited range: black is 16), not converted to full range."""
    plane = frame.planes[0]
    rows = np.frombuffer(plane, np.uint8).reshape(frame.height, plane.line_size)
    return rows[:, : frame.width].astype(np.int16)


def _frames(container: Any, count: int, skip_seconds: float) -> tuple[list[np.ndarray[Any, Any]], int]:
    """Decode ``count`` frames after ``skip_seconds`` of stream; also the video packets seen."""
    video = container.streams.video[0]
    frames: list[np.ndarray[Any, Any]] = []
    packets, first_pts = 0, None
    for packet in container.demux(video):
        if packet.pts is None:
            continue
        packets += 1
        first_pts = packet.pts if first_pts is None else first_pts
        for frame in packet.decode():
            if float((packet.pts - first_pts) * video.time_base) >= skip_seconds:
                frames.append(_luma(frame))
        if len(frames) >= count:
            break
    return frames, packets


def _mean_diffs(frames: list[np.ndarray[Any, Any]]) -> list[float]:
    return [float(np.abs(a - b).mean()) for a, b in itertools.pairwise(frames)]


def test_black_frozen_normal(cameras: CameraFactory) -> None:
    cam = cameras("cam-picture")
    with _open(cam.url) as c:
        normal, _ = _frames(c, 10, skip_seconds=0.0)
        assert min(_mean_diffs(normal)) > 0.5, "normal picture should move"
        assert float(np.mean(normal[-1])) > 60

        cam.set_picture("frozen")
        frozen, packets = _frames(c, 25, skip_seconds=0.5)
        assert max(_mean_diffs(frozen)) < 0.2, "frozen picture changed"
        assert packets >= 35, "packets must keep flowing while frozen"

        cam.set_picture("black")
        black, _ = _frames(c, 5, skip_seconds=0.5)
        assert all(float(np.mean(f)) <= 18 for f in black), [float(np.mean(f)) for f in black]

        cam.set_picture("normal")
        again, _ = _frames(c, 5, skip_seconds=0.5)
        assert float(np.mean(again[-1])) > 60
    modes = [e["mode"] for e in cam.events() if e["event"] == "mode"]
    assert modes == ["frozen", "black", "normal"]


def test_jump_backwards_is_seen_by_the_client(cameras: CameraFactory) -> None:
    # Video only: ffmpeg then takes pts straight from RTP timestamps (no SR re-anchoring).
    cam = cameras("cam-jump", audio_codec="none")
    with _open(cam.url) as c:
        video = c.streams.video[0]
        deltas: list[float] = []
        last = None
        started = time.monotonic()
        jumped = False
        for packet in c.demux(video):
            if packet.pts is None:
                continue
            if last is not None:
                deltas.append(float((packet.pts - last) * video.time_base))
            last = packet.pts
            if not jumped and time.monotonic() - started > 1.0:
                cam.jump_timestamps(-5)
                jumped = True
            if time.monotonic() - started > 2.5:
                break
    assert any(-5.1 < d < -4.8 for d in deltas), sorted(deltas)[:3]
    assert sum(d < 0 for d in deltas) == 1
    assert [e["seconds"] for e in cam.events() if e["event"] == "jump"] == [-5.0]


def test_kill_drops_clients_and_restart_serves_on_the_same_port(cameras: CameraFactory) -> None:
    cam = cameras("cam-outage", audio_codec="none")
    port, pid = cam.port, cam.pid
    assert pid is not None
    c = _open(cam.url)
    try:
        assert next(iter(c.demux(c.streams.video[0]))) is not None
        cam.kill()
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        ended = time.monotonic()
        with contextlib.suppress(av.FFmpegError):  # an error or end of stream: both are a drop
            for _ in c.demux(c.streams.video[0]):
                assert time.monotonic() - ended < 5, "client still gets packets after kill"
        # Not the client's own 10 s timeout: the kill closed the connection.
        assert time.monotonic() - ended < 5
    finally:
        c.close()
    with pytest.raises(av.FFmpegError):
        _open(cam.url)
    cam.restart()
    assert cam.port == port and cam.pid != pid
    with _open(cam.url) as c2:
        assert c2.streams.video[0].codec_context.width == 640
        assert next(iter(c2.demux(c2.streams.video[0]))) is not None


def test_garbage_server_makes_open_raise() -> None:
    with GarbageRtspServer() as server, pytest.raises(av.FFmpegError):
        _open(server.url)
    assert server.connections >= 1


def test_garbage_rtp_after_valid_sdp_gives_no_frames() -> None:
    decoded = 0
    with GarbageRtpServer(seed=7) as server:
        try:
            with av.open(server.url, options={**TCP, "analyzeduration": "1000000"}, timeout=3) as c:
                started = time.monotonic()
                for packet in c.demux():
                    with contextlib.suppress(av.FFmpegError):  # what a recorder must survive
                        decoded += len(packet.decode())
                    if time.monotonic() - started > 2:
                        break
        except av.FFmpegError:
            pass
        assert server.plays >= 1, "the client never reached PLAY: the garbage was not exercised"
    assert decoded == 0


def test_file_mode_serves_two_mounts_in_real_time(tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip", seconds=12, width=640, height=360, bitrate_kbps=500)
    assert make_clip(tmp_path / "clip", seconds=12, width=640, height=360, bitrate_kbps=500) == clip  # cached
    with FileCameraServer(clip, count=2) as server:
        assert len(server.urls) == 2
        for url in server.urls:
            with _open(url) as c:
                v, a = c.streams.video[0], c.streams.audio[0]
                vc = v.codec_context
                assert (vc.name, vc.width, vc.height) == ("h264", 640, 360)
                assert (a.codec_context.name, a.codec_context.sample_rate) == ("pcm_alaw", 8000)
                started, first, last = time.monotonic(), None, None
                for packet in c.demux(v):
                    if packet.pts is None:
                        continue
                    first = packet.pts if first is None else first
                    last = packet.pts
                    if time.monotonic() - started > 2.0:
                        break
                assert first is not None and last is not None
                served = float((last - first) * v.time_base)
                assert 1.0 < served < 3.5, f"{served:.1f} s of media in 2 s: not paced in real time"
                assert c.start_time_realtime is not None
    assert not server.running


def test_centre_cameras_serve_onvif_where_configured() -> None:
    room = RoomConfig(id="int-1", name="讯问室1", kind="interrogation", cameras=[])
    plain = CameraConfig(id="a", url="rtsp://127.0.0.1:18554/a")
    assert camera_for(room, plain).onvif_url is None
    onvif = CameraConfig(
        id="a",
        url="rtsp://127.0.0.1:18554/a",
        onvif_profile="Main",
        onvif_url="http://127.0.0.1:18654/onvif/media_service",
    )
    cam = camera_for(room, onvif)
    assert cam.onvif_url == onvif.onvif_url and cam.onvif_profile == "Main"
    assert cam._args()[cam._args().index("--onvif-port") + 1] == "18654"
    for url in (
        "http://192.0.2.1:18654/onvif/media_service",
        "http://127.0.0.1:80/onvif/media_service",
        "http://127.0.0.1:18654/elsewhere",
    ):
        with pytest.raises(ConfigError, match="serves ONVIF only at"):
            camera_for(room, CameraConfig(id="a", url="rtsp://127.0.0.1:18554/a", onvif_url=url))


def test_centre_cameras_demand_the_login_the_recorder_is_given() -> None:
    from domain.credentials import CameraLogin

    room = RoomConfig(id="int-1", name="讯问室1", kind="interrogation", cameras=[])
    cam = camera_for(
        room, CameraConfig(id="a", url="rtsp://127.0.0.1:18554/a"), login=CameraLogin("admin", "s3cret")
    )
    args = cam._args()
    assert (
        args[args.index("--rtsp-user") + 1] == "admin" and args[args.index("--rtsp-password") + 1] == "s3cret"
    )
    assert "--rtsp-user" not in camera_for(room, CameraConfig(id="a", url="rtsp://127.0.0.1:18554/a"))._args()
