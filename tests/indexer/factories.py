"""Plain-data builders for index tests: rooms, chained segment records, gaps."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

from domain.types import ClockSource, GapCause, GapRecord, SegmentRecord, StreamInfo, segment_key

T0 = datetime(2026, 3, 1, 8, 0, 0, tzinfo=UTC)
STREAM = StreamInfo("h264", 1920, 1080, "pcm_alaw", 8000, 1)


def at(seconds: float) -> datetime:
    """T0 plus ``seconds`` (microsecond exact for the values tests use)."""
    return T0 + timedelta(microseconds=round(seconds * 1_000_000))


def rooms(*camera_ids: str) -> list[tuple[str, str, str, list[tuple[str, str, str]]]]:
    """One interrogation room holding the given cameras."""
    cams = [(cid, f"camera {cid}", f"rtsp://10.0.0.{i + 1}:554/stream") for i, cid in enumerate(camera_ids)]
    return [("r1", "讯问室 1", "interrogation", cams)]


def chain(
    camera_id: str,
    count: int,
    start: float = 0.0,
    seconds: float = 10.0,
    first_seq: int = 0,
    prev: str | None = None,
    run_id: str = "run-1",
) -> list[SegmentRecord]:
    """``count`` back-to-back segments of ``seconds`` each whose prev_sha256 links form a chain."""
    out: list[SegmentRecord] = []
    for i in range(count):
        seq = first_seq + i
        s, e = at(start + i * seconds), at(start + (i + 1) * seconds)
        sha = hashlib.sha256(f"{camera_id}:{seq}:{run_id}".encode()).hexdigest()
        out.append(
            SegmentRecord(
                camera_id=camera_id,
                run_id=run_id,
                seq=seq,
                start=s,
                end=e,
                storage_key=segment_key(camera_id, s, seq),
                size=1000 + seq,
                sha256=sha,
                prev_sha256=prev,
                clock_source=ClockSource.RTCP,
                stream=STREAM,
                packets=250,
            )
        )
        prev = sha
    return out


def gap(camera_id: str, start: float, end: float, cause: GapCause = GapCause.DISCONNECT) -> GapRecord:
    return GapRecord(camera_id, at(start), at(end), cause, detail="connection refused")
