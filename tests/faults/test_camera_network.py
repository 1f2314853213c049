"""Camera drop, camera reboot and a 30 s network stall, three cameras recorded side by side.

The three faults are independent (own camera, own worker, own spool directory) and each needs a
wait, so they run in parallel in one test: the stall's 30 s bounds the whole case.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from domain.types import GapCause
from pipeline.simulator.camera import ONVIF_PROFILE, free_port
from recorders.sync_point import SyncPointSpec
from recorders.worker import CameraWorker
from tests.support.loss import RECOVERY_SECONDS, assert_loss_bounded
from tests.support.recording import TEST_OPTIONS, CollectingSink, decode_segment, running
from tests.support.tcp_proxy import TcpProxy

pytestmark = [pytest.mark.faults, pytest.mark.integration]

STALL_SECONDS = 30.0


def test_camera_drop_reboot_and_network_stall(tmp_path: Path, sink: CollectingSink, cameras: Any) -> None:
    spool = tmp_path / "spool"
    # Each camera serves ONVIF SetSynchronizationPoint and each worker may ask it for a keyframe
    # when a new session starts without one (recorders/sync_point.py).
    dropped = cameras("drop", tmp_path, onvif_port=free_port())
    rebooted = cameras("reboot", tmp_path, onvif_port=free_port())
    stalled = cameras("stall", tmp_path, onvif_port=free_port())
    opts = replace(TEST_OPTIONS, segment_seconds=2.0, stall_seconds=3.0)

    def asks(cam: Any) -> SyncPointSpec:
        return SyncPointSpec(cam.onvif_url, ONVIF_PROFILE)

    with TcpProxy("127.0.0.1", dropped.port) as drop_net, TcpProxy("127.0.0.1", stalled.port) as stall_net:
        workers = [
            CameraWorker("drop", drop_net.url_for(dropped.path), spool, opts, sink, sync_point=asks(dropped)),
            CameraWorker("reboot", rebooted.url, spool, opts, sink, sync_point=asks(rebooted)),
            CameraWorker(
                "stall", stall_net.url_for(stalled.path), spool, opts, sink, sync_point=asks(stalled)
            ),
        ]
        outages: dict[str, tuple[float, float]] = {}
        with running(workers):
            assert sink.wait_for(lambda: all(len(sink.segs(c)) >= 2 for c in ("drop", "reboot", "stall")), 20)

            stall_at = time.time()
            stall_net.stall()  # both TCP connections stay open; nothing moves for 30 s

            def reboot() -> None:
                time.sleep(2)
                down = time.time()
                rebooted.kill()  # power loss: the connection goes with it
                time.sleep(4)
                rebooted.start()  # a new RTSP session, new RTP timestamp base
                outages["reboot"] = (down, time.time())  # refined below to its first keyframe

            def drop() -> None:
                time.sleep(12)
                at = time.time()
                drop_net.drop()  # the network resets the connection; the camera keeps running
                outages["drop"] = (at, at)

            helpers = [threading.Thread(target=f) for f in (reboot, drop)]
            for t in helpers:
                t.start()
            time.sleep(STALL_SECONDS)
            stall_net.resume()
            outages["stall"] = (stall_at, time.time())
            for t in helpers:
                t.join()
            resumed = outages["stall"][1]
            assert sink.wait_for(lambda: any(r.start.timestamp() > resumed for r in sink.segs("stall")), 15)
            time.sleep(2.5)

    # A rebooted camera has footage again when it sends its first keyframe (it starts encoding when
    # the recorder's new session asks for it; on a loaded machine that alone takes a second or more).
    # So does a dropped connection: the camera had no other viewer, so it stopped encoding and starts
    # again, with a keyframe, when the recorder's new session (backoff <= 0.25 s + RTSP set-up) asks.
    for camera_id, camera in (("reboot", rebooted), ("drop", dropped)):
        down, back = outages[camera_id]
        sent = [t for t in camera.keyframe_times() if t > down]
        outages[camera_id] = (down, max(back, min(sent)))
        print(
            f"{camera_id} keyframes after the fault:",
            [round(t - down, 3) for t in sent[:4]],
            "gap:",
            [
                (round(g.start.timestamp() - down, 3), round(g.end.timestamp() - down, 3))
                for g in sink.gaps_of(camera_id)
            ],
        )
    expected = {"drop": GapCause.DISCONNECT, "reboot": GapCause.DISCONNECT, "stall": GapCause.STALL}
    for camera_id, cause in expected.items():
        gaps = sink.gaps_of(camera_id)
        # Each case ends in a new RTSP session. If its first video is not a keyframe (FFmpeg's RTSP
        # client discards a keyframe sent before the PLAY reply; a session may join an encoder
        # mid-GOP) the worker asks the camera for one instead of waiting a GOP: the plain 1 s holds.
        holes = assert_loss_bounded(
            sink.segs(camera_id), gaps, outages[camera_id], cause.value, recovery=RECOVERY_SECONDS
        )
        assert len(holes) == 1, (camera_id, holes)  # retries during the outage do not add gaps
        segs = sink.segs(camera_id)
        # the hash chain crosses the outage and the first segment after it plays
        after = [r for r in segs if r.start.timestamp() >= holes[0].end - 1e-6]
        before = [r for r in segs if r.end.timestamp() <= holes[0].start + 1e-6]
        assert after and before and after[0].prev_sha256 == before[-1].sha256
        assert decode_segment(spool / after[0].storage_key, after[0].stream.audio_codec)["video_frames"] > 0
    asked = {w.camera_id: (w.sync.granted, w.sync.failed) for w in workers if w.sync is not None}
    print("keyframe requests (granted, failed):", asked)
    assert all(failed == 0 for _granted, failed in asked.values()), asked
    # the stall was noticed as a stall (open connection, no data), not as a disconnect
    assert any(
        s.last_error and s.last_error.startswith("stall") for s in sink.statuses if s.camera_id == "stall"
    )
    assert stall_net.connections >= 2  # it reconnected through the same (stalled, then healed) network
