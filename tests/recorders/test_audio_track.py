"""Audio outages of one run on plain numbers: when they begin, where they end, and how audio whose
timestamps did not count the outage is placed until FFmpeg re-anchors it."""

from __future__ import annotations

import itertools

import pytest

from recorders.audio_track import AudioTrack

TB = 1 / 8000
PKT = 160  # 20 ms of G.711


def test_an_outage_begins_after_gap_seconds_without_audio_never_later_than_noticed() -> None:
    a = AudioTrack(1.0, TB)
    a.last_receipt = 100.0
    assert not a.silent(100.9)
    assert a.silent(101.01)
    assert a.lose(99.98, 101.01) == 99.98
    assert not a.silent(105.0)  # one outage at a time
    b = AudioTrack(1.0, TB)
    assert b.lose(200.0, 150.0) == 150.0


def test_audio_whose_timestamps_jumped_with_the_outage_ends_it_at_its_own_time() -> None:
    a = AudioTrack(1.0, TB)
    a.lose(100.0, 101.0)
    assert a.resume(wall=112.02, video_wall=112.05) == pytest.approx(112.02)
    assert a.shift == 0 and a.lost_since is None


def test_audio_that_went_on_counting_samples_is_placed_by_the_video_until_re_anchored() -> None:
    a = AudioTrack(1.0, TB)
    a.lose(100.0, 101.0)
    # the first packet back says 100.0 (right after the old audio); the video read with it says 112
    assert a.resume(wall=100.0, video_wall=112.0) == pytest.approx(112.0)
    assert a.shift == 12 * 8000
    raw = 800_000
    placed: list[int] = []
    for i in range(40):  # about one RTCP interval of packets with the old timeline
        dts = raw + i * PKT
        placed.append(dts + a.adjust(dts, placed[-1] if placed else None))
    # FFmpeg's next sender report: the raw time jumps by the outage (here 15 ms short of the video's
    # estimate), after which the correction melts away without the audio ever running backwards
    jumped = raw + 40 * PKT + 12 * 8000 - 120
    for i in range(10):
        dts = jumped + i * PKT
        placed.append(dts + a.adjust(dts, placed[-1]))
    assert all(y > x for x, y in itertools.pairwise(placed))
    assert a.shift == 0
    assert placed[-1] == jumped + 9 * PKT  # the stream's own timestamps again


def test_the_correction_is_not_mistaken_for_a_re_anchoring_by_ordinary_packets() -> None:
    a = AudioTrack(1.0, TB)
    a.lose(0.0, 1.0)
    a.resume(wall=0.0, video_wall=5.0)
    first = a.adjust(1000, None)
    assert first == 5 * 8000
    assert all(a.adjust(1000 + i * 1024, None) == 5 * 8000 for i in range(1, 50))  # AAC, 64 ms packets
