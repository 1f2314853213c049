"""Audio outages and audio discontinuities of one run on plain numbers: when an outage begins, and
where audio goes when its timestamps jump (never backwards, with the video it arrives with)."""

from __future__ import annotations

import pytest

from recorders.audio_track import AudioTrack

TB = 1 / 8000


def test_an_outage_begins_after_gap_seconds_without_audio_never_later_than_noticed() -> None:
    a = AudioTrack(1.0, TB)
    a.last_receipt = 100.0
    assert not a.silent(100.9)
    assert a.silent(101.01)
    assert a.lose(99.98, 101.01) == 99.98
    assert not a.silent(105.0)  # one outage at a time
    assert a.resume() == 99.98 and a.lost_since is None
    b = AudioTrack(1.0, TB)
    assert b.lose(200.0, 150.0) == 150.0


def test_timestamps_that_agree_with_the_video_are_believed() -> None:
    """FFmpeg re-anchoring on the stream's first sender report: +4 s, now in step with the video."""
    a = AudioTrack(1.0, TB)
    assert a.replace(raw=40_000, wall=104.02, video_wall=104.0, last_placed=8_000) == 0
    # a camera whose audio clock jumped but landed within a second of the video: believed too
    assert a.replace(raw=90_000, wall=110.6, video_wall=110.0, last_placed=50_000) == 0


def test_timestamps_that_did_not_follow_are_placed_by_the_video() -> None:
    """Audio back after an outage, its timestamps going on as if nothing was missed."""
    a = AudioTrack(1.0, TB)
    shift = a.replace(raw=16_160, wall=102.02, video_wall=114.0, last_placed=16_000)
    assert shift == pytest.approx((114.0 - 102.02) * 8000, abs=1)
    # then FFmpeg re-anchors (its raw time jumps by about the outage): believed again, nothing backwards
    raw = 16_160 + 40 * 160 + shift - 120  # 15 ms short of the video's estimate
    assert a.replace(raw=raw, wall=114.0 + 40 * 0.02 - 0.015, video_wall=114.8, last_placed=raw + 119) == 120


def test_audio_never_runs_backwards() -> None:
    a = AudioTrack(1.0, TB)
    # a camera restarting its audio encoder: timestamps back at zero, the video says now
    assert a.replace(raw=0, wall=90.0, video_wall=130.0, last_placed=319_000) == 40 * 8000
    assert a.replace(raw=0, wall=90.0, video_wall=130.0, last_placed=320_000) == 320_001
    # within a second of the video but behind what was already placed: just past it
    assert a.replace(raw=100, wall=129.9, video_wall=130.0, last_placed=500) == 401
