"""Gap maths and record round-trips on plain data."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from domain.types import (
    UTC,
    ClockSource,
    GapCause,
    GapRecord,
    SegmentRecord,
    StreamInfo,
    TimeRange,
    gap_key,
    parse_iso,
    segment_key,
    sidecar_key,
    subtract_ranges,
)

T0 = datetime(2026, 11, 27, 6, 0, 0, tzinfo=UTC)


def r(a: float, b: float) -> TimeRange:
    return TimeRange(T0 + timedelta(seconds=a), T0 + timedelta(seconds=b))


def test_subtract_ranges_finds_holes_in_order() -> None:
    holes = subtract_ranges(r(0, 100), [r(10, 20), r(15, 30), r(50, 60), r(95, 120)])
    assert holes == [r(0, 10), r(30, 50), r(60, 95)]


def test_subtract_ranges_full_and_empty_cover() -> None:
    assert subtract_ranges(r(0, 10), [r(-5, 15)]) == []
    assert subtract_ranges(r(0, 10), []) == [r(0, 10)]
    assert subtract_ranges(r(0, 10), [r(10, 20)]) == [r(0, 10)]  # half-open: touching is not covering


def test_range_refuses_reversed_and_clips() -> None:
    with pytest.raises(ValueError):
        r(5, 1)
    assert r(0, 10).clip(r(5, 20)) == r(5, 10)
    assert r(0, 10).clip(r(10, 20)) is None
    assert not r(0, 10).overlaps(r(10, 11))


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        parse_iso("2026-11-27T06:00:00")
    assert parse_iso("2026-11-27T14:00:00+08:00") == T0 + timedelta(hours=0)


def test_segment_record_round_trip_and_keys() -> None:
    rec = SegmentRecord(
        camera_id="int-1-a",
        run_id="run1",
        seq=7,
        start=T0 + timedelta(microseconds=123456),
        end=T0 + timedelta(seconds=10, microseconds=123456),
        storage_key=segment_key("int-1-a", T0, 7),
        size=1000,
        sha256="ab" * 32,
        prev_sha256=None,
        clock_source=ClockSource.RTCP,
        stream=StreamInfo("h264", 1280, 720, "pcm_alaw", 8000, 1),
    )
    assert SegmentRecord.from_json(rec.to_json()) == rec
    assert rec.storage_key == "int-1-a/2026/11/27/20261127T060000000000Z_00000007.ts"
    assert sidecar_key(rec.storage_key).endswith("_00000007.json")


def test_gap_record_round_trip_and_id() -> None:
    gap = GapRecord("int-1-a", T0, T0 + timedelta(seconds=5), GapCause.DISCONNECT, "connection refused")
    again = GapRecord.from_json(gap.to_json())
    assert again == gap and gap.seconds == 5.0
    assert gap_key(gap).startswith("int-1-a/gaps/2026/11/27/")
    with pytest.raises(ValueError):
        GapRecord("c", T0, T0 - timedelta(seconds=1), GapCause.STALL)
