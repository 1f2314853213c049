"""Live video over a WebSocket: a real simulated camera (RTSP) recorded by the real recorder into
a spool; the route tails the growing segment and sends an init segment then moof/mdat
fragments that PyAV decodes, across segment boundaries; one producer for many viewers; a slow
viewer is dropped while the producer runs on; H.265 gets an H.264 rendition; roles and audit."""

from __future__ import annotations

import asyncio
import io
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import av
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from starlette.websockets import WebSocketDisconnect

from indexer.audit import AuditLog
from indexer.database import create_engine_for, upgrade
from indexer.segment_store import SegmentStore
from pipeline.api.app import create_app
from pipeline.settings import Settings
from pipeline.simulator.camera import SimulatedCamera, free_port
from pipeline.viewing.live_video import FragmentMuxer, LiveVideo, Viewer, codec_string
from recorders.options import RecorderOptions
from recorders.worker import CameraWorker
from tests.support.auth import add_user, bearer
from tests.support.recording import CollectingSink, running

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
SEGMENT_SECONDS = 2.0
ROOMS = [
    {
        "id": "R-INT1",
        "name": "讯问室1",
        "kind": "interrogation",
        "cameras": [{"id": "cam-a", "url": "rtsp://x/a"}, {"id": "cam-b", "url": "rtsp://x/b"}],
    }
]


@dataclass
class Live:
    client: TestClient
    engine: Engine
    hub: LiveVideo
    sink: CollectingSink
    sup: dict[str, str]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    root = tmp_path_factory.mktemp("live")
    cams = [
        SimulatedCamera("cam-a", free_port(), video_codec="h264", audio_codec="alaw", width=320, height=240),
        SimulatedCamera("cam-b", free_port(), video_codec="h265", audio_codec="aac", width=320, height=240),
    ]
    sink = CollectingSink()
    opts = RecorderOptions(segment_seconds=SEGMENT_SECONDS, stall_seconds=3.0)
    engine = create_engine_for(f"sqlite:///{root / 'index.db'}")
    upgrade(engine)
    try:
        for cam in cams:
            cam.start()
        workers = [CameraWorker(c.camera_id, c.url, root / "spool", opts, sink) for c in cams]
        with running(workers):
            settings = Settings(rooms=ROOMS, api={"upload_tmp": root / "up"})
            app = create_app(settings, SegmentStore(engine), engine=engine)
            hub = LiveVideo(root / "spool")
            app.state.live_video = hub
            with TestClient(app) as client:
                add_user(engine, "sup", "supervisor")
                add_user(engine, "cop", "officer")
                yield Live(client, engine, hub, sink, bearer(client, "sup"))
            hub.stop()
    finally:
        for cam in cams:
            cam.stop()
        engine.dispose()


def _watch(live: Live, camera: str, seconds: float) -> dict[str, Any]:
    """Read the camera's live WebSocket for ``seconds``: hello, init, fragments, arrival times."""
    out: dict[str, Any] = {"hello": None, "init": None, "frags": [], "arrived": [], "clocks": 0}
    with live.client.websocket_connect(f"/api/v1/live/{camera}/video", headers=live.sup) as ws:
        t0 = time.monotonic()
        while time.monotonic() - t0 < seconds:
            msg = ws.receive()
            if msg.get("text") is not None:
                doc = json.loads(msg["text"])
                if doc["type"] == "hello":
                    out["hello"] = doc
                else:
                    out["clocks"] += 1
            elif msg.get("bytes") is not None:
                data = msg["bytes"]
                if out["init"] is None:
                    out["init"] = data
                else:
                    out["frags"].append(data)
                    out["arrived"].append(time.time())
    return out


def _decode(init: bytes, frags: list[bytes]) -> list[tuple[float, str]]:
    ic: Any = av.open(io.BytesIO(init + b"".join(frags)))
    try:
        return [(float(f.time), ic.streams.video[0].codec_context.name) for f in ic.decode(video=0)]
    finally:
        ic.close()


def test_live_websocket_sends_decodable_fmp4_across_segments(live: Live) -> None:
    closed_before = len(live.sink.segs("cam-a"))
    got = _watch(live, "cam-a", 1.75 * SEGMENT_SECONDS)
    assert len(live.sink.segs("cam-a")) >= closed_before + 1  # the stream crossed a segment end
    hello, init, frags = got["hello"], got["init"], got["frags"]
    assert hello is not None and hello["rendition"] == "copy"
    assert 0 <= hello["edge_lag_ms"] < 3000  # the recording is not behind: at the edge, frames are fresh
    assert hello["mime"] == f'video/mp4; codecs="{codec_string(init)}"' and "avc1." in hello["mime"]
    assert init[4:8] == b"ftyp" and b"moov" in init and b"moof" not in init
    assert all(f[4:8] == b"moof" and b"mdat" in f for f in frags)
    frames = _decode(init, frags)
    assert len(frames) == len(frags) >= 25 * 1.75 * SEGMENT_SECONDS * 0.7
    times = [t for t, _ in frames]
    assert (
        times == sorted(times) and times[-1] - times[0] >= 1.2 * SEGMENT_SECONDS
    )  # longer than a segment: no reset at the join
    assert {c for _, c in frames} == {"h264"}
    # media time is wall time since the origin (the recorder's clock): each fragment's frame
    # reached us soon after the camera took it
    origin = datetime.fromisoformat(hello["origin"]).timestamp()
    lags = sorted(arr - (origin + t) for arr, (t, _) in zip(got["arrived"], frames, strict=True))
    assert lags[len(lags) // 2] < 3.0, lags
    print(f"live lag camera->websocket: p50 {lags[len(lags) // 2]:.3f} s, max {lags[-1]:.3f} s")
    assert got["clocks"] >= 2
    rows = [r for r in AuditLog(live.engine).rows(limit=200) if r.action == "live_view"]
    assert any(r.user == "sup" and r.object == "camera:cam-a" and (r.detail or {}).get("via") for r in rows)


def test_h265_camera_gets_an_h264_rendition(live: Live) -> None:
    got = _watch(live, "cam-b", 2.0)
    assert got["hello"]["rendition"] == "h264" and got["init"] is not None
    frames = _decode(got["init"], got["frags"])
    assert len(frames) >= 10 and {c for _, c in frames} == {"h264"}


def test_one_producer_for_many_viewers_and_a_slow_one_is_dropped(live: Live) -> None:
    channel = live.hub.channel("cam-a")
    loop = asyncio.new_event_loop()
    spin = threading.Thread(target=loop.run_forever, daemon=True)
    spin.start()
    try:
        fast, slow = Viewer(loop), Viewer(loop, maxsize=10)
        started = channel.producers_started
        channel.subscribe(fast)
        channel.subscribe(slow)  # nobody reads it: its queue overflows
        got = _watch(live, "cam-a", 2.0)  # a third viewer, over the WebSocket, meanwhile
        assert slow.dropped and fast.dropped is False
        assert channel.producers_started - started <= 1  # one producer served all three
        before = channel.fragments
        deadline = time.monotonic() + 5
        while channel.fragments == before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert channel.fragments > before  # the producer did not wait for the slow viewer
        assert len(got["frags"]) >= 25 and fast.queue.qsize() >= 25
        channel.unsubscribe(fast)
        channel.unsubscribe(slow)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        spin.join(5)
        loop.close()


def test_a_producer_that_falls_behind_skips_to_the_edge(live: Live, monkeypatch: pytest.MonkeyPatch) -> None:
    hub = LiveVideo(live.hub.spool)  # a channel of its own on the same recording spool
    slow_packet = FragmentMuxer.packet

    def starved(self: FragmentMuxer, *args: Any) -> Any:
        time.sleep(0.2)  # 5 packets a second of a 25 fps camera: a starved producer
        return slow_packet(self, *args)

    monkeypatch.setattr(FragmentMuxer, "packet", starved)
    loop = asyncio.new_event_loop()
    channel = hub.channel("cam-a")
    viewer = Viewer(loop, maxsize=10_000)
    try:
        channel.subscribe(viewer)
        deadline = time.monotonic() + 15
        while channel.skips == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert channel.skips >= 1  # it jumped ahead instead of falling ever further behind
    finally:
        channel.unsubscribe(viewer)
        hub.stop()
        loop.close()


def test_live_video_needs_a_live_role(live: Live) -> None:
    cop = bearer(live.client, "cop")
    for headers in ({}, cop):
        with (
            pytest.raises(WebSocketDisconnect) as closed,
            live.client.websocket_connect("/api/v1/live/cam-a/video", headers=headers) as ws,
        ):
            ws.receive()
        assert closed.value.code == 1008
    evil = {**live.sup, "Origin": "http://evil.example"}
    with (
        pytest.raises(WebSocketDisconnect) as cross,
        live.client.websocket_connect("/api/v1/live/cam-a/video", headers=evil) as ws,
    ):
        ws.receive()
    assert cross.value.code == 1008
    with (
        pytest.raises(WebSocketDisconnect) as unknown,
        live.client.websocket_connect("/api/v1/live/nope/video", headers=live.sup) as ws,
    ):
        ws.receive()
    assert unknown.value.code == 1011
