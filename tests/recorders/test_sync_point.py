"""Asking the camera for a keyframe (ONVIF SetSynchronizationPoint) when a session starts mid-GOP."""

from __future__ import annotations

import base64
import hashlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import av
import pytest

from domain.types import GapCause
from pipeline.simulator.camera import ONVIF_PROFILE, free_port
from recorders.sync_point import (
    SyncPointClient,
    SyncPointError,
    SyncPointSpec,
    credentials_of,
    envelope,
    password_digest,
)
from recorders.worker import CameraWorker
from tests.support.loss import RECOVERY_SECONDS, assert_loss_bounded
from tests.support.recording import TEST_OPTIONS, CollectingSink, running
from tests.support.tcp_proxy import TcpProxy

LONG_GOP = 125  # 5 s at 25 fps: a session joining mid-GOP would wait seconds for a keyframe


# -- plain data ---------------------------------------------------------------------------------
def test_password_digest_is_the_ws_security_formula() -> None:
    nonce, created = bytes(range(16)), "2026-11-28T05:00:00.000Z"
    want = base64.b64encode(hashlib.sha1(nonce + created.encode() + b"pa55").digest()).decode()
    assert password_digest(nonce, created, "pa55") == want
    assert password_digest(nonce, created, "other") != want


def test_envelope_carries_profile_and_token_only_with_credentials() -> None:
    nonce = b"n" * 16
    signed = envelope("Profile_1", ("admin", "pa55"), nonce, "2026-11-28T05:00:00Z").decode()
    assert "<ProfileToken>Profile_1</ProfileToken>" in signed
    assert "<wsse:Username>admin</wsse:Username>" in signed
    assert password_digest(nonce, "2026-11-28T05:00:00Z", "pa55") in signed
    assert base64.b64encode(nonce).decode() in signed
    assert "pa55" not in signed  # the password itself never travels
    anonymous = envelope("Profile_1", None, nonce, "2026-11-28T05:00:00Z").decode()
    assert "Security" not in anonymous and "<ProfileToken>Profile_1</ProfileToken>" in anonymous
    # markup in a token or user name is escaped, not interpreted
    assert "<b>" not in envelope("Profile_1", ("<b>", "x"), nonce, "t").decode()


def test_spec_and_credentials() -> None:
    with pytest.raises(ValueError, match="not an http"):
        SyncPointSpec("rtsp://cam/onvif", "Profile_1")
    with pytest.raises(ValueError, match="profile token"):
        SyncPointSpec("http://cam/onvif/media_service", "")
    assert credentials_of("rtsp://ad%40min:p%3Ass@cam:554/s") == ("ad@min", "p:ss")
    assert credentials_of("rtsp://cam:554/s") is None


# -- a real camera ------------------------------------------------------------------------------
@pytest.mark.integration  # a simulated camera
def test_camera_grants_and_refuses(tmp_path: Path, cameras: Any) -> None:
    cam = cameras("sp", tmp_path, gop=LONG_GOP, onvif_port=free_port(), onvif_credentials=("admin", "pa55"))
    assert cam.onvif_url is not None
    spec = SyncPointSpec(cam.onvif_url, ONVIF_PROFILE)
    with viewer(cam.url):
        assert _wait(lambda: len(cam.keyframe_times()) >= 1, 10)
        SyncPointClient(spec, "sp", ("admin", "pa55")).request()
        assert _wait(lambda: any(e.get("forced") for e in cam.events()), 5), cam.events()
    with pytest.raises(SyncPointError, match="not authorized"):
        SyncPointClient(spec, "sp", ("admin", "wrong")).request()
    with pytest.raises(SyncPointError, match="no such profile"):
        SyncPointClient(SyncPointSpec(cam.onvif_url, "Profile_9"), "sp", ("admin", "pa55")).request()
    with pytest.raises(SyncPointError, match="unreachable"):
        SyncPointClient(
            SyncPointSpec(f"http://127.0.0.1:{free_port()}/onvif/media_service", "P"), "sp", None, timeout=1.0
        ).request()
    refused = [e["reason"] for e in cam.events() if e["event"] == "sync_point_refused"]
    assert refused == ["not authorised", "no such profile"]


@pytest.mark.integration
def test_session_missing_its_keyframe_resumes_at_the_requested_one(
    tmp_path: Path, sink: CollectingSink, cameras: Any
) -> None:
    """Two cameras with a 5 s GOP behind networks that lose each new session's first keyframe
    (the one a camera starts a session with, as FFmpeg's RTSP client loses it when it comes
    before the PLAY reply), then reset the recorder's connection. The recorder
    that asks for a keyframe resumes within the 1 s recovery point, at the keyframe it asked for;
    the one that cannot waits for the camera's next keyframe, ~5 s on."""
    asking = cameras("asking", tmp_path, gop=LONG_GOP, onvif_port=free_port())
    waiting = cameras("waiting", tmp_path, gop=LONG_GOP)
    spool = tmp_path / "spool"
    assert asking.onvif_url is not None
    drops: dict[str, float] = {}
    with (
        TcpProxy("127.0.0.1", asking.port, lose_first_keyframe=True) as net_a,
        TcpProxy("127.0.0.1", waiting.port, lose_first_keyframe=True) as net_w,
    ):
        workers = [
            CameraWorker(
                "asking",
                net_a.url_for(asking.path),
                spool,
                TEST_OPTIONS,
                sink,
                sync_point=SyncPointSpec(asking.onvif_url, ONVIF_PROFILE),
            ),
            CameraWorker("waiting", net_w.url_for(waiting.path), spool, TEST_OPTIONS, sink),
        ]
        with running(workers):
            # the first sessions miss their keyframes too (the control's first footage is ~5 s on)
            assert sink.wait_for(lambda: all(sink.segs(c) for c in ("asking", "waiting")), 25), [
                (w.status(), [e for e in c.events() if e["event"] != "keyframe"][:4], c.keyframe_times()[:4])
                for w, c in zip(workers, (asking, waiting), strict=True)
            ]
            for camera_id, net in (("asking", net_a), ("waiting", net_w)):
                drops[camera_id] = time.time()
                net.drop()
            # Segments close at keyframes, so the footage after the drop is written when the
            # workers stop (closing their open segments); the control's resumes ~5 s on.
            time.sleep(LONG_GOP / 25 + 1.5)
    drop = drops["asking"]
    holes = assert_loss_bounded(
        sink.segs("asking"), sink.gaps_of("asking"), (drop, drop), GapCause.DISCONNECT.value
    )
    assert len(holes) == 1
    forced = [float(e["wall"]) for e in asking.events() if e.get("forced") and e["wall"] > drop]
    assert forced and abs(holes[0].end - forced[0]) < 0.1, (holes, forced)
    status = workers[0].status()  # first session and the reconnect: both asked, both granted
    assert status.keyframe_requests >= 2 and status.keyframe_requests_failed == 0, status
    assert workers[1].status().keyframe_requests == 0
    # the control: no keyframe request, so the gap runs to the camera's next keyframe (~5 s on)
    drop = drops["waiting"]
    late = [g for g in sink.gaps_of("waiting") if g.start.timestamp() >= drop - RECOVERY_SECONDS]
    assert len(late) == 1 and late[0].end.timestamp() - drop > 3.0, (late, drops)


@contextmanager
def viewer(url: str) -> Iterator[None]:
    """Another client watching the camera (a monitor wall): keeps its shared encoder running."""
    stop = threading.Event()
    opened = threading.Event()

    def watch() -> None:
        with av.open(url, options={"rtsp_transport": "tcp"}, timeout=10) as container:
            opened.set()
            for _ in container.demux(container.streams.video[0]):
                if stop.is_set():
                    return

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    assert opened.wait(15), "the viewer could not open the camera"
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)


def _wait(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False
