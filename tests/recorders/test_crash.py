"""Integration: ``python -m recorders`` SIGKILLed mid-segment, restarted, partial recovered."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from domain.types import GapCause, parse_iso
from tests.recorders.conftest import decode_segment
from tests.support.recorder_proc import Recorder
from tests.support.recording import assert_resumed_at_session_keyframe

pytestmark = pytest.mark.integration


def test_sigkill_mid_segment_recovered_and_gap_is_downtime(tmp_path: Path, cameras: Any) -> None:
    spool = tmp_path / "spool"
    cam = cameras("crashy", tmp_path)  # 1 s GOP: a new session starts with the keyframe we keep
    first = Recorder(spool, "crashy", cam.url)
    second: Recorder | None = None
    try:
        assert first.wait(lambda e: e["event"] == "segment_closed", 20)
        time.sleep(2.0)  # mid-way into the next 4 s segment
        killed = time.time()
        os.kill(first.proc.pid, signal.SIGKILL)
        first.proc.wait(timeout=5)
        partials = list((spool / "crashy").rglob("*.partial.json"))
        assert len(partials) == 1, "the open segment left its marker"
        time.sleep(1.0)
        second = Recorder(spool, "crashy", cam.url)
        restarted = second.started
        assert second.wait(lambda e: e["event"] == "status" and e["state"] == "recording", 15)
        recording = next(t for t, e in second.events if e["event"] == "status" and e["state"] == "recording")
        assert second.wait(lambda e: e["event"] == "gap_recorded", 15)
        assert second.stop() == 0  # SIGTERM: clean exit
    finally:
        first.stop(signal.SIGKILL)
        if second is not None:
            second.stop(signal.SIGKILL)
    before = first.segments()
    after = second.segments()
    recovered = [r for r in after if r["recovered"]]
    assert len(recovered) == 1
    rec = recovered[0]
    assert rec["seq"] == before[-1]["seq"] + 1
    assert rec["prev_sha256"] == before[-1]["sha256"]
    assert rec["start"] == before[-1]["end"]
    found = decode_segment(spool / rec["storage_key"], rec["stream"]["audio_codec"])
    assert found["video_frames"] >= 25  # ~2 s of 25 fps footage survived the SIGKILL
    assert not list((spool / "crashy").rglob("*.partial.json"))
    sidecar = json.loads((spool / rec["storage_key"]).with_suffix(".json").read_text())
    assert sidecar["recovered"] is True and sidecar["sha256"] == rec["sha256"]

    gaps = [e["gap"] for _, e in second.events if e["event"] == "gap_recorded"]
    assert len(gaps) == 1 and gaps[0]["cause"] == GapCause.RECORDER_RESTART.value
    gap = gaps[0]
    assert gap["start"] == rec["end"]  # the gap starts where the recovered footage ends
    new = [r for r in after if not r["recovered"]]
    assert new and gap["end"] == new[0]["start"]
    assert new[0]["prev_sha256"] == rec["sha256"]
    start, end = parse_iso(gap["start"]).timestamp(), parse_iso(gap["end"]).timestamp()
    assert abs(start - killed) <= 0.5, start - killed  # at most the packet being written is lost
    # the downtime ends when the new process's session delivers its first keyframe
    assert restarted < end < recording + 1.5, (end - recording, recording - restarted)
    assert_resumed_at_session_keyframe(cam, restarted, end)
