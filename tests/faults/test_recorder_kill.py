"""The recorder process SIGKILLed three times in a row (``python -m recorders``, restarted each time).

Each kill leaves an open segment that recovery closes (``recovered: true``); each restart records
one ``recorder_restart`` gap from the recovered footage's end to the new run's first keyframe; the
chain of hashes runs unbroken through all of it.
"""

from __future__ import annotations

import itertools
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from domain.types import GapCause
from pipeline.simulator.camera import ONVIF_PROFILE, free_port
from recorders.sync_point import SyncPointSpec, sync_points_json
from tests.support.loss import assert_loss_bounded, span
from tests.support.recorder_proc import Recorder, spool_records

pytestmark = [pytest.mark.faults, pytest.mark.integration]

KILLS = 3


def test_recorder_sigkilled_repeatedly(tmp_path: Path, cameras: Any) -> None:
    spool = tmp_path / "spool"
    cam = cameras("victim", tmp_path, onvif_port=free_port())
    # each new process may ask the camera for a keyframe if its session starts without one
    asks = ("--sync-points-json", sync_points_json({"victim": SyncPointSpec(cam.onvif_url, ONVIF_PROFILE)}))
    outages: list[tuple[float, float]] = []
    rec = Recorder(spool, "victim", cam.url, segment_seconds=2.0, extra=asks)
    try:
        assert rec.wait(lambda e: e["event"] == "segment_closed", 20)
        for _ in range(KILLS):
            time.sleep(1.3)  # mid-segment
            killed = time.time()
            os.kill(rec.proc.pid, signal.SIGKILL)
            rec.proc.wait(timeout=5)
            rec = Recorder(spool, "victim", cam.url, segment_seconds=2.0, extra=asks)
            assert rec.wait(lambda e: e["event"] == "status" and e["state"] == "recording", 20)
            # the outage ends when the new process is recording again (interpreter start + connect)
            recording = next(t for t, e in rec.events if e["event"] == "status" and e["state"] == "recording")
            outages.append((killed, recording))
            assert rec.wait(lambda e: e["event"] == "segment_closed" and not e["record"]["recovered"], 20)
        time.sleep(1.0)
        assert rec.stop() == 0
    finally:
        rec.stop(signal.SIGKILL)

    segments, gaps = spool_records(spool, "victim")
    assert not list((spool / "victim").rglob("*.partial.json"))
    assert sum(1 for s in segments if s["recovered"]) == KILLS  # every killed segment was kept
    for a, b in itertools.pairwise(segments):
        assert b["prev_sha256"] == a["sha256"] and b["seq"] == a["seq"] + 1
    assert len(gaps) == KILLS, gaps
    ordered = sorted(gaps, key=lambda g: g["start"])
    for i, (outage, gap) in enumerate(zip(outages, ordered, strict=True)):
        # each gap against its own kill, with the footage between the previous and the next kill
        lo = outages[i - 1][1] if i else 0.0
        hi = outages[i + 1][0] if i + 1 < len(outages) else float("inf")
        near = [s for s in segments if span(s).start >= lo and span(s).end <= hi]
        assert_loss_bounded(near, [gap], outage, GapCause.RECORDER_RESTART.value)
