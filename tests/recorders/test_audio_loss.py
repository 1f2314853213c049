"""A camera whose audio stops while its video goes on: the interval is an ``audio_lost`` gap with
bounds, the video stays one continuous run, and the outage survives a crash."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from domain.types import GapCause, to_unix
from recorders.worker import CameraWorker
from tests.support.recording import TEST_OPTIONS, CollectingSink, decode_segment, running

pytestmark = pytest.mark.integration


def _audio_switches(camera: Any) -> list[tuple[bool, float]]:
    return [(bool(e["on"]), float(e["wall"])) for e in camera.events() if e.get("event") == "audio"]


def test_audio_stopping_for_twelve_seconds_is_one_bounded_gap_and_video_runs_on(
    tmp_path: Path, cameras: Callable[..., Any], sink: CollectingSink
) -> None:
    cam = cameras("mic", tmp_path, audio_codec="alaw")
    worker = CameraWorker("mic", cam.url, tmp_path / "spool", TEST_OPTIONS, sink)
    with running([worker]):
        assert sink.wait_for(lambda: len(sink.segs("mic")) >= 1, 15)
        cam.set_audio(False)
        # longer than max_forward_jump_seconds: the audio timestamps jump 12 s when it returns
        assert sink.wait_for(lambda: worker.status().audio_lost_since is not None, 5)
        time.sleep(12)
        cam.set_audio(True)
        assert sink.wait_for(lambda: any(g.cause is GapCause.AUDIO_LOST for g in sink.gaps_of("mic")), 5)
        time.sleep(3)
    (off, off_at), (on, on_at) = _audio_switches(cam)
    assert (off, on) == (False, True)
    gaps = sink.gaps_of("mic")
    assert [g.cause for g in gaps] == [GapCause.AUDIO_LOST], gaps
    gap = gaps[0]
    print(
        f"audio gap {to_unix(gap.start) - off_at:+.3f} s .. {to_unix(gap.end) - on_at:+.3f} s "
        "from the camera's switches"
    )
    # bounds from the media clock: the last audio before the switch, the first after it
    assert abs(to_unix(gap.start) - off_at) <= 0.3
    assert abs(to_unix(gap.end) - on_at) <= 0.3
    assert "no audio" in gap.detail
    segs = sink.segs("mic")
    assert len({s.run_id for s in segs}) == 1, "the audio's return split the run"
    assert all(a.end == b.start for a, b in itertools.pairwise(segs)), "video has a hole"
    inside = [s for s in segs if to_unix(s.start) > off_at + 0.5 and to_unix(s.end) < on_at - 0.5]
    after = [s for s in segs if to_unix(s.start) > on_at + 0.5]
    assert inside and after
    media = {r.storage_key: p for r, p, _ in sink.segments}
    for seg in inside:
        assert decode_segment(media[seg.storage_key], "pcm_alaw")["audio_bytes"] == 0
    # sound again after the outage: as much as the time it covers (short last segments vary)
    got = sum(decode_segment(media[seg.storage_key], "pcm_alaw")["audio_bytes"] for seg in after)
    assert got >= 0.9 * 8000 * sum(to_unix(seg.end) - to_unix(seg.start) for seg in after), got


def test_audio_missing_when_the_recorder_stops_is_closed_at_the_footage_end(
    tmp_path: Path, cameras: Callable[..., Any], sink: CollectingSink
) -> None:
    cam = cameras("mic2", tmp_path, audio_codec="aac")
    worker = CameraWorker("mic2", cam.url, tmp_path / "spool", TEST_OPTIONS, sink)
    with running([worker]):
        assert sink.wait_for(lambda: len(sink.segs("mic2")) >= 1, 15)
        cam.set_audio(False)
        assert sink.wait_for(lambda: worker.status().audio_lost_since is not None, 5)
        time.sleep(2)
    gaps = sink.gaps_of("mic2")
    assert [g.cause for g in gaps] == [GapCause.AUDIO_LOST]
    assert gaps[0].end == sink.segs("mic2")[-1].end  # the run's end: nothing after it is claimed
    assert not worker.spool.audio_outage_path.exists()
