"""Segment boundaries and per-stream timestamp continuity on plain numbers."""

from __future__ import annotations

import itertools

import pytest

from recorders.clock import MediaClockMapper, ReceiptAnchor
from recorders.segmenter import SegmentPlan, TimestampGuard, TimestampJump

V, A = 0, 1
TB = [1 / 90000, 1 / 8000]


def guard() -> TimestampGuard:
    return TimestampGuard(TB, max_forward_seconds=10.0)


def test_continuous_stream_passes_unchanged() -> None:
    g = guard()
    for i in range(100):
        assert g.check(V, i * 3600, 100.0 + i * 0.04) == i * 3600
        assert g.check(A, i * 320, 100.0 + i * 0.04) == i * 320
    assert g.last_delta_seconds(V) == pytest.approx(0.04)


def test_equal_or_slightly_backward_dts_is_nudged_not_split() -> None:
    g = guard()
    g.check(V, 90000, 1.0)
    assert g.check(V, 90000, 1.0) == 90001  # two packets of one frame
    assert g.check(V, 90000 - 900, 1.0) == 90002  # 10 ms back: re-anchoring noise


def test_backward_jump_splits() -> None:
    g = guard()
    g.check(V, 10 * 90000, 1.0)
    with pytest.raises(TimestampJump) as err:
        g.check(V, 5 * 90000, 1.04)
    assert err.value.delta_seconds == pytest.approx(-5.0)
    assert err.value.reason == "backward"


def test_forward_jump_beyond_limit_splits_even_if_wall_agrees() -> None:
    g = guard()
    g.check(A, 0, 0.0)
    with pytest.raises(TimestampJump):
        g.check(A, 11 * 8000, 11.0)


def test_forward_jump_ahead_of_receipt_splits() -> None:
    g = guard()
    g.check(V, 0, 0.0)
    with pytest.raises(TimestampJump) as err:
        g.check(V, 5 * 90000, 0.04)  # 5 s of media in 40 ms of wall time
    assert "receipt" in err.value.reason


def test_forward_gap_matching_receipt_is_continuous() -> None:
    g = guard()
    g.check(V, 0, 0.0)
    assert g.check(V, 3 * 90000, 3.0) == 3 * 90000  # camera paused 3 s: real time passed too


def plan(rtcp: float | None = 1000.0, seconds: float = 2.0) -> SegmentPlan:
    offset = rtcp if rtcp is not None else 1000.0
    return SegmentPlan(seconds, MediaClockMapper(0.0, offset), rtcp, ReceiptAnchor())


def test_first_keyframe_opens_then_cut_after_segment_seconds() -> None:
    p = plan()
    assert p.cut_due(0.4)
    start = p.boundary(0.4)
    assert start == pytest.approx(1000.4)
    assert not p.cut_due(1.4)  # keyframe 1 s in: too early
    assert p.cut_due(2.4 - 0.001)  # tick rounding on a GOP multiple still cuts
    end = p.boundary(2.4)
    assert end == pytest.approx(1002.4)
    assert p.start_wall == end  # segment N's end is segment N+1's start, the same float


def test_run_end_is_last_video_plus_one_frame() -> None:
    p = plan()
    p.boundary(0.0)
    assert p.end_wall(1.96, 0.04) == pytest.approx(1002.0)


def test_receipt_plan_slews_toward_window_minimum() -> None:
    p = plan(rtcp=None)
    p.boundary(0.0)
    for i in range(50):  # receipt says the mapping is 10 ms early
        p.anchor.add(1000.0 + i * 0.04 + 0.010, i * 0.04)
    p.boundary(2.0)
    # 10 ms over the 10 s horizon would be 1000 ppm: clamped to the 500 ppm limit
    assert p.mapper.rate == pytest.approx(1 + 500e-6)


def test_boundaries_are_monotonic_and_contiguous() -> None:
    p = plan(rtcp=None)
    walls = [p.boundary(0.0)]
    for k in range(1, 30):
        media = k * 2.0
        for i in range(50):
            p.anchor.add(1000.0 + media - 2.0 + i * 0.04 + 0.5, media - 2.0 + i * 0.04)  # far off
        walls.append(p.boundary(media))
    diffs = [b - a for a, b in itertools.pairwise(walls)]
    assert all(2.0 * (1 - 500e-6) - 1e-9 <= d <= 2.0 * (1 + 500e-6) + 1e-9 for d in diffs)


def test_a_camera_without_keyframes_is_cut_after_max_segment_seconds() -> None:
    p = SegmentPlan(10.0, MediaClockMapper(0.0, 1000.0), 1000.0, ReceiptAnchor(), max_segment_seconds=60.0)
    assert not p.overdue(5.0)  # no segment yet: the run waits for its first keyframe
    p.boundary(0.0)
    assert not p.overdue(59.96)
    assert p.overdue(60.0)
    p.boundary(60.0)
    assert not p.overdue(119.9) and p.overdue(120.0)
    short = SegmentPlan(10.0, MediaClockMapper(0.0, 1000.0), 1000.0, ReceiptAnchor(), max_segment_seconds=2.0)
    short.boundary(0.0)
    assert not short.overdue(9.9)  # never below segment_seconds
