"""Segment boundaries and timestamp sanity within one run. Pure code: plain numbers in, decisions out.

A *run* is a stretch of packets whose media timestamps are continuous. Its wall times come from one
:class:`~recorders.clock.MediaClockMapper`, so within a run segment N's end is *the same float* as
segment N+1's start (both are the wall time of the keyframe where the cut happens).

The per-packet checks are written for cost: integer ticks compared with precomputed thresholds,
no allocation, no logging.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from recorders.clock import MediaClockMapper, ReceiptAnchor

# A backward step smaller than this (seconds) is timestamp noise (FFmpeg re-anchoring a stream on
# its first RTCP SR, two NAL units of one frame in two packets): the packet is nudged one tick past
# its predecessor, as ``ffmpeg -c copy`` does, instead of splitting the run.
BACKWARD_TOLERANCE_SECONDS = 0.1
# Media time may not run ahead of receipt time by more than this between two video packets: a
# camera that jumps its RTP clock forward by a few seconds is caught even under the 10 s limit.
RECEIPT_SLACK_SECONDS = 1.0
# Keyframes land on exact multiples of the GOP only up to tick rounding.
CUT_TOLERANCE_SECONDS = 0.005


class TimestampJump(Exception):
    """Consecutive packets of one stream are not continuous: the run must end here."""

    def __init__(self, stream_index: int, delta_seconds: float, reason: str) -> None:
        super().__init__(f"stream {stream_index}: media time jumped {delta_seconds:+.3f} s ({reason})")
        self.stream_index = stream_index
        self.delta_seconds = delta_seconds
        self.reason = reason


class ClockStep(TimestampJump):
    """The recorder's wall clock stepped (NTP step, operator, VM resume): wall minus monotonic time
    changed by more than the step limit since the run began. The run must end here, because its
    mapping from media time to wall time belongs to the old clock."""

    def __init__(self, stream_index: int, step_seconds: float) -> None:
        super().__init__(stream_index, step_seconds, "recorder wall clock stepped")
        self.args = (f"recorder wall clock stepped {step_seconds:+.3f} s",)


class TimestampGuard:
    """Per-stream continuity of decode timestamps (in the stream's own ticks)."""

    __slots__ = ("_back", "_forward", "_last", "_last_delta", "_receipt", "_slack", "_tb")

    def __init__(self, time_bases: list[float], max_forward_seconds: float) -> None:
        self._tb = time_bases
        self._forward = [int(max_forward_seconds / tb) for tb in time_bases]
        self._back = [-int(BACKWARD_TOLERANCE_SECONDS / tb) for tb in time_bases]
        self._slack = [int(RECEIPT_SLACK_SECONDS / tb) for tb in time_bases]
        self._last: list[int | None] = [None] * len(time_bases)
        self._last_delta = [0] * len(time_bases)
        self._receipt = [0.0] * len(time_bases)

    def check(self, index: int, dts: int, receipt: float) -> int:
        """Return the dts to use (``dts`` or last + 1), or raise :class:`TimestampJump`.

        ``receipt`` is the packet's local receipt time: media time may not run ahead of it by more
        than :data:`RECEIPT_SLACK_SECONDS` between two packets (never trust one clock alone).
        """
        last = self._last[index]
        if last is None:
            self._last[index] = dts
            self._receipt[index] = receipt
            return dts
        delta = dts - last
        if delta <= 0:
            if delta < self._back[index]:
                raise TimestampJump(index, delta * self._tb[index], "backward")
            dts = last + 1
            delta = 1
        elif delta > self._slack[index]:
            seconds = delta * self._tb[index]
            if delta > self._forward[index]:
                raise TimestampJump(index, seconds, "forward beyond limit")
            if receipt_run_ahead(seconds, receipt - self._receipt[index]):
                raise TimestampJump(index, seconds, "forward, ahead of receipt time")
        self._last[index] = dts
        self._last_delta[index] = delta
        self._receipt[index] = receipt
        return dts

    def last(self, index: int) -> int | None:
        """The stream's last decoding time (None before its first packet)."""
        return self._last[index]

    def forget(self, index: int) -> None:
        """Start the stream's continuity afresh (its packets resume after an outage of their own)."""
        self._last[index] = None

    def last_delta_seconds(self, index: int) -> float:
        """The most recent dts step of a stream (a frame duration for video), 0 if unknown."""
        return self._last_delta[index] * self._tb[index]


class SegmentPlan:
    """Where a run's segments start and end: cut at the first keyframe at least ``segment_seconds``
    of media time after the current segment's start; wall times from one mapper.

    Receipt-anchored runs observe the minimum (receipt - media) offset of each segment at its end,
    so the mapping slews toward the receipt clock at most ``max_slew_ppm``; RTCP-anchored runs
    observe the camera's NTP mapping (their offset is fixed; FFmpeg's pts already follow each SR).
    """

    __slots__ = (
        "anchor",
        "mapper",
        "max_seconds",
        "rtcp_offset",
        "segment_seconds",
        "start_media",
        "start_wall",
    )

    def __init__(
        self,
        segment_seconds: float,
        mapper: MediaClockMapper,
        rtcp_offset: float | None,
        anchor: ReceiptAnchor,
        max_segment_seconds: float = float("inf"),
    ) -> None:
        self.segment_seconds = segment_seconds - CUT_TOLERANCE_SECONDS
        self.max_seconds = max(max_segment_seconds, segment_seconds)
        self.mapper = mapper
        self.rtcp_offset = rtcp_offset
        self.anchor = anchor
        self.start_media: float | None = None
        self.start_wall: float | None = None

    def cut_due(self, keyframe_media: float) -> bool:
        start = self.start_media
        return start is None or keyframe_media - start >= self.segment_seconds

    def overdue(self, media: float) -> bool:
        """A segment with no keyframe to cut at for ``max_segment_seconds``: cut at any frame. H.264
        periodic intra refresh has no IDR after the first, but libavformat marks its recovery
        points as keyframes, so this is for cameras that send neither (the segment that starts
        here decodes only after the one before it)."""
        start = self.start_media
        return start is not None and media - start >= self.max_seconds

    def boundary(self, media: float) -> float:
        """Begin a segment at ``media``; the returned wall time also ends the previous segment."""
        wall = self.mapper.wall(media)
        if self.start_media is not None:
            if self.rtcp_offset is not None:
                self.mapper.observe(media, self.rtcp_offset + media)
            else:
                window = self.anchor.restart_window()
                if window != float("inf"):
                    self.mapper.observe(media, media + window)
        self.start_media = media
        self.start_wall = wall
        return wall

    def end_wall(self, last_media: float, frame_seconds: float) -> float:
        """Wall end of the run's last segment: its last video packet plus one frame."""
        return self.mapper.wall(last_media + frame_seconds)


def receipt_run_ahead(media_delta: float, receipt_delta: float) -> bool:
    """Whether media time advanced much further than the wall clock between two packets."""
    return media_delta - receipt_delta > RECEIPT_SLACK_SECONDS


# -- the first packets of a run ---------------------------------------------------------------
def frame_ticks(streams: list[Any], video_index: int) -> int:
    """One frame's duration in the video stream's time base (90 kHz, 25 fps: 3600)."""
    for stream in streams:
        if stream.index == video_index:
            rate = stream.guessed_rate or stream.average_rate
            if rate and stream.time_base:
                return max(1, round(1 / (float(rate) * float(stream.time_base))))
    return 3600


# A session's untimed first frame is timed from the frames after it: the earliest presentation time
# among this many timed successors, minus one frame. With B-frames the next frame in decoding order
# is a P-frame shown several frames later; the B-frames shown right after the keyframe follow it
# within the reorder depth (x264's pyramid: I0 P4 B2 b1 b3), so four successors cover depth 3.
UNTIMED_SUCCESSORS = 4


def needs_successor(buffered: deque[tuple[Any, float]], video_index: int) -> bool:
    """True while the first video packet has no timestamp and fewer than
    :data:`UNTIMED_SUCCESSORS` timed video packets follow it."""
    untimed = False
    timed = 0
    for pkt, _ in buffered:
        if pkt.stream_index != video_index:
            continue
        if pkt.pts is not None or pkt.dts is not None:
            if not untimed:
                return False  # the first video packet is timed
            timed += 1
            if timed >= UNTIMED_SUCCESSORS:
                return False
        else:
            untimed = True
    return untimed


def time_untimed_video(buffered: deque[tuple[Any, float]], video_index: int, step: int) -> None:
    """FFmpeg's RTSP demuxer can hand out a session's first video frame (the keyframe the camera
    starts with) without a timestamp. Give it the earliest presentation time of the timed frames
    after it minus one frame, so recording starts at that keyframe instead of waiting a whole GOP
    for the next one."""
    earliest: int | None = None
    for pkt, _ in reversed(buffered):
        if pkt.stream_index != video_index:
            continue
        ts = pkt.pts if pkt.pts is not None else pkt.dts
        if ts is not None:
            earliest = ts if earliest is None else min(earliest, ts)
        elif earliest is not None:
            earliest -= step
            pkt.pts = earliest
            pkt.dts = None  # decoding times are rebuilt from presentation times (decode_order.py)
