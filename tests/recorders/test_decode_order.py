"""Decoding times rebuilt from presentation times, on plain numbers."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recorders.decode_order import ReorderTooDeep, VideoTimeline, observed_depth
from recorders.segmenter import TimestampJump

F = 3600  # one frame at 25 fps in 90 kHz ticks
TB = 1 / 90000


def timeline(depth: int) -> VideoTimeline:
    return VideoTimeline(0, TB, depth, F, max_forward_seconds=10.0)


def gop(pattern: str, frames: int, start: int = 0) -> list[int]:
    """Presentation times in decoding order for an encoder's GOP pattern, e.g. x264 bframes=2
    'IPBB' (I0 P3 B1 B2 ...) or b-pyramid 'pyramid' (I0 P4 B2 b1 b3 ...)."""
    order: list[int] = [0]
    n = 1
    while len(order) < frames:
        if pattern == "IPBB":
            order += [n + 2, n, n + 1]
            n += 3
        elif pattern == "pyramid":
            order += [n + 3, n + 1, n, n + 2]
            n += 4
        else:
            order.append(n)
            n += 1
    return [start + p * F for p in order[:frames]]


def place_all(tl: VideoTimeline, pts_list: list[int]) -> list[tuple[int, int]]:
    return [tl.place(pts, 100.0 + i * 0.04) for i, pts in enumerate(pts_list)]


@pytest.mark.parametrize(("pattern", "depth"), [("IPBB", 1), ("pyramid", 2), ("IP", 0)])
def test_reordered_presentation_times_get_rising_decoding_times_and_stay_unchanged(
    pattern: str, depth: int
) -> None:
    pts_list = gop(pattern, 200, start=123_456)
    assert observed_depth(pts_list) == depth
    placed = place_all(timeline(depth), pts_list)
    assert [p for _, p in placed] == pts_list  # presentation order kept bit for bit
    dts = [d for d, _ in placed]
    assert all(b > a for a, b in itertools.pairwise(dts))
    assert all(d <= p for d, p in placed)
    # one frame apart from the start: the first D frames are placed as if the frames before the
    # keyframe had been there, then the smallest of the last D + 1 presentation times
    assert dts[:4] == [123_456 + (k - depth) * F for k in range(4)]


def test_a_deeper_declared_depth_still_works_and_only_delays_decoding_times() -> None:
    placed = place_all(timeline(4), gop("IPBB", 50))
    assert all(d <= p for d, p in placed)
    assert placed[10][0] == placed[10][1] - 3 * F or placed[10][0] < placed[10][1]


def test_reordering_deeper_than_declared_ends_the_run_naming_the_needed_depth() -> None:
    tl = timeline(1)
    with pytest.raises(ReorderTooDeep) as err:
        place_all(tl, gop("pyramid", 20))
    assert err.value.needed == 2
    assert "deeper than the 1 frame(s)" in str(err.value)


def test_undeclared_b_frames_on_a_depth_zero_stream_are_forgiven_once_then_end_the_run() -> None:
    tl = timeline(0)
    pts = gop("IPBB", 8)  # 0 3 1 2 6 4 5 ...
    tl.place(pts[0], 0.0)
    tl.place(pts[1], 0.04)
    assert tl.place(pts[2], 0.08) == (3 * F + 1, 3 * F + 1)  # first step back: nudged, as before
    with pytest.raises(ReorderTooDeep) as err:
        for i, p in enumerate(pts[3:], 3):
            tl.place(p, i * 0.04)
    assert err.value.needed == 1


def test_equal_times_and_small_noise_are_nudged_without_ending_the_run() -> None:
    tl = timeline(0)
    assert tl.place(9000, 0.0) == (9000, 9000)
    assert tl.place(9000, 0.0) == (9001, 9001)  # one frame in two packets
    assert tl.place(9000 + F - 10, 0.04) == (9000 + F - 10, 9000 + F - 10)
    b = timeline(2)
    placed = place_all(b, [0, 3 * F, F, F, 2 * F])  # a B-frame repeated in two packets
    dts = [d for d, _ in placed]
    assert all(y > x for x, y in itertools.pairwise(dts))
    assert [p for _, p in placed] == [0, 3 * F, F, F, 2 * F]


def test_clock_jumps_are_jumps_not_reordering() -> None:
    tl = timeline(2)
    place_all(tl, gop("pyramid", 10))
    with pytest.raises(TimestampJump) as back:
        tl.place(-5 * 90000, 1.0)
    assert not isinstance(back.value, ReorderTooDeep) and back.value.reason == "backward"
    tl = timeline(2)
    tl.place(0, 0.0)
    with pytest.raises(TimestampJump, match="ahead of receipt"):
        tl.place(5 * 90000, 0.04)
    tl = timeline(2)
    tl.place(0, 0.0)
    with pytest.raises(TimestampJump, match="beyond limit"):
        tl.place(11 * 90000, 11.0)


def test_frame_duration_and_latest_presentation_time() -> None:
    tl = timeline(2)
    place_all(tl, gop("pyramid", 9))  # I0 P4 B2 b1 b3 P8 B6 b5 b7
    assert tl.max_pts == 8 * F
    assert tl.frame_seconds() == pytest.approx(0.04)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=3), min_size=1, max_size=12),
    st.integers(min_value=0, max_value=2**33),
)
def test_any_gop_of_b_frame_runs_at_its_observed_depth_is_placed_validly(runs: list[int], start: int) -> None:
    """Mini-GOPs of 0-3 B-frames (each anchor sent before the B-frames it follows)."""
    order: list[int] = [0]
    n = 1
    for b in runs:
        order += [n + b, *range(n, n + b)]
        n += b + 1
    pts_list = [start + p * F for p in order]
    placed = place_all(timeline(observed_depth(pts_list)), pts_list)
    dts = [d for d, _ in placed]
    assert [p for _, p in placed] == pts_list
    assert all(y > x for x, y in itertools.pairwise(dts))
    assert all(d <= p for d, p in placed)


def test_a_frame_in_several_packets_takes_one_place_in_the_reorder_window() -> None:
    """x264 slices=4: libavformat hands an IDR picture's four slices out as four packets."""
    pts_list: list[int] = []
    for p in gop("pyramid", 40):
        pts_list += [p] * (4 if p % (20 * F) == 0 else 1)  # every 20th frame a sliced keyframe
    placed = place_all(timeline(2), pts_list)
    dts = [d for d, _ in placed]
    assert all(y > x for x, y in itertools.pairwise(dts))
    assert all(d <= p for d, p in placed)
    assert [p for _, p in placed] == pts_list  # the window leaves the slices room: no pts moves
    depth_zero = place_all(timeline(0), [0, 0, 0, F, 2 * F])  # without room, ticks as ffmpeg -c copy
    assert depth_zero == [(0, 0), (1, 1), (2, 2), (F, F), (2 * F, 2 * F)]
