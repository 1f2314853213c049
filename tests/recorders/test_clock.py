"""MediaClockMapper, ReceiptAnchor and the RTCP/receipt cross-check on plain numbers."""

from __future__ import annotations

import pytest

from recorders.clock import MediaClockMapper, ReceiptAnchor, rtcp_agrees

PPM = 1e-6


def test_mapper_starts_at_anchor_with_unit_rate() -> None:
    m = MediaClockMapper(10.0, 1_700_000_000.0)
    assert m.wall(10.0) == 1_700_000_000.0
    assert m.wall(12.5) == pytest.approx(1_700_000_002.5, abs=1e-9)


def test_slew_never_exceeds_limit_and_never_steps() -> None:
    m = MediaClockMapper(0.0, 1000.0, max_slew_ppm=500.0)
    media = 0.0
    for step in range(2000):
        before = m.wall(media)
        # a reference far ahead, then far behind: the rate may move, the mapping may not step
        reference = media + 1000.0 + (5.0 if step < 1000 else -5.0)
        m.observe(media, reference)
        assert m.wall(media) == pytest.approx(before, abs=1e-9), "observe must not step the mapping"
        assert abs(m.rate - 1.0) <= 500.0 * PPM + 1e-15
        nxt = media + 2.0
        assert (m.wall(nxt) - m.wall(media)) / 2.0 == pytest.approx(m.rate, abs=1e-9)
        media = nxt


def test_slew_converges_on_small_offset() -> None:
    m = MediaClockMapper(0.0, 1000.0, max_slew_ppm=500.0)
    media = 0.0
    for _ in range(200):  # 400 s of media: 500 ppm can absorb 0.2 s, we ask 10 ms
        m.observe(media, 1000.0 + media + 0.010)
        media += 2.0
    assert m.wall(media) - (1000.0 + media) == pytest.approx(0.010, abs=0.001)


def test_zero_slew_keeps_rate_one() -> None:
    m = MediaClockMapper(0.0, 0.0, max_slew_ppm=0.0)
    m.observe(1.0, 5.0)
    assert m.rate == 1.0
    assert m.wall(2.0) == 2.0


def test_older_observation_is_ignored() -> None:
    m = MediaClockMapper(5.0, 100.0)
    m.observe(3.0, 200.0)
    assert m.rate == 1.0
    assert m.wall(5.0) == 100.0


def test_shift_moves_whole_mapping() -> None:
    m = MediaClockMapper(0.0, 100.0)
    m.shift(0.25)
    assert m.wall(1.0) == pytest.approx(101.25)


def test_receipt_anchor_uses_minimum_offset() -> None:
    a = ReceiptAnchor()
    assert not a.known
    # receipt = capture + variable delay; the least delayed packet (20 ms) wins
    for media, delay in [(0.0, 0.5), (0.04, 0.3), (0.08, 0.02), (0.12, 0.1)]:
        a.add(1000.0 + media + delay, media)
    assert a.known
    assert a.overall_min == pytest.approx(1000.02)
    assert a.restart_window() == pytest.approx(1000.02)
    a.add(1000.2 + 0.05, 0.2)  # next window: only this packet
    assert a.window_min == pytest.approx(1000.05)
    assert a.overall_min == pytest.approx(1000.02)


def test_rtcp_agreement() -> None:
    assert rtcp_agrees(1000.0, 1000.05, 1.5)  # 50 ms delivery delay
    assert not rtcp_agrees(1000.0, 1005.0, 1.5)  # camera clock 5 s behind (e.g. RTP jumped back)
    assert not rtcp_agrees(1000.0, 999.0, 1.5)  # packet "arrived" before capture: camera ahead
