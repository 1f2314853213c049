"""Decoding timestamps for one run's video, rebuilt from presentation timestamps.

RTP carries a presentation time per frame and nothing else. A stream with B-frames sends frames
in decoding order, which is not presentation order, so the presentation times run backwards at
every B-frame; a muxer needs decoding times that rise strictly and never pass the presentation
time (MPEG-TS refuses the packet otherwise: the "could not mux packet ... Invalid argument" of a
camera with B-frames). libavformat rebuilds them with a small buffer of presentation times
(``pts_buffer``): with a reorder depth of D frames, a frame's decoding time is the smallest of the
last D + 1 presentation times. :class:`VideoTimeline` does the same, starting at the run's first
keyframe, and keeps the checks the recorder makes on every stream (no backward jump, no forward
jump beyond the limit or ahead of the wall clock) on the presentation times, where a camera's
clock jump shows at once.

Presentation times are never changed when D > 0; the first D frames of a run get decoding times
one frame apart before the keyframe's (as if the frames before it had been there). With D = 0 the
decoding time is the presentation time, and a step back of less than the tolerance is nudged one
tick past its predecessor as before (two packets of one frame, RTCP re-anchoring noise); a second
step back of half a frame or more in one run is taken for B-frames the SPS does not declare.

A stream that reorders deeper than its depth (an SPS that understates it) cannot be placed without
moving a presentation time: :class:`ReorderTooDeep` ends the run, naming the depth it needs, and the
worker starts the next run with that depth. Pure code: integers in, integers out.
"""

from __future__ import annotations

import heapq

from recorders.segmenter import (
    BACKWARD_TOLERANCE_SECONDS,
    RECEIPT_SLACK_SECONDS,
    TimestampJump,
    receipt_run_ahead,
)


class ReorderTooDeep(TimestampJump):
    """A frame arrived later (in decoding order) than the reorder depth allows."""

    def __init__(self, stream_index: int, behind_seconds: float, depth: int, needed: int) -> None:
        super().__init__(
            stream_index,
            -behind_seconds,
            f"video frames reordered deeper than the {depth} frame(s) the stream "
            f"declares; the next run assumes {needed}",
        )
        self.needed = needed


class VideoTimeline:
    """Per-run video timing: checks on presentation times, decoding times rebuilt from them."""

    __slots__ = (
        "_back",
        "_depth",
        "_forward",
        "_frame",
        "_heap",
        "_index",
        "_last_delta",
        "_last_dts",
        "_last_pts",
        "_receipt",
        "_slack",
        "_stepped_back",
        "_tb",
        "max_pts",
    )

    def __init__(
        self, index: int, time_base: float, depth: int, frame_ticks: int, max_forward_seconds: float
    ) -> None:
        self._index = index
        self._tb = time_base
        self._depth = depth
        self._frame = max(1, frame_ticks)
        self._forward = int(max_forward_seconds / time_base)
        self._back = int(BACKWARD_TOLERANCE_SECONDS / time_base)
        self._slack = int(RECEIPT_SLACK_SECONDS / time_base)
        self._heap: list[int] = []
        self._last_dts: int | None = None
        self._last_pts: int | None = None  # of the previous packet, as received
        self._last_delta = 0
        self._receipt = 0.0
        self._stepped_back = False
        self.max_pts: int | None = None  # the latest presentation time placed

    @property
    def depth(self) -> int:
        return self._depth

    def place(self, pts: int, receipt: float) -> tuple[int, int]:
        """(dts, pts) for the next video packet in decoding order; raises :class:`TimestampJump`."""
        if pts == self._last_pts and self._last_dts is not None:
            # The same frame again: libavformat hands a frame's slices out as packets of their own
            # (seen with the slices of x264's IDR pictures). They follow the frame's first packet
            # one tick apart and take no place in the reorder window.
            dts = self._last_dts = self._last_dts + 1
            return dts, max(pts, dts)
        self._last_pts = pts
        top = self.max_pts
        if top is None:
            self.max_pts = pts
            self._receipt = receipt
            # the frames "before" the keyframe, one frame apart, so the first D decoding times exist
            self._heap = [pts - k * self._frame for k in range(self._depth, 0, -1)]
        else:
            ahead = pts - top
            if ahead > self._slack:
                seconds = ahead * self._tb
                if ahead > self._forward:
                    raise TimestampJump(self._index, seconds, "forward beyond limit")
                if receipt_run_ahead(seconds, receipt - self._receipt):
                    raise TimestampJump(self._index, seconds, "forward, ahead of receipt time")
            elif -ahead > self._back + self._depth * self._frame:
                raise TimestampJump(self._index, ahead * self._tb, "backward")
            if ahead > 0:
                self.max_pts = pts
                self._receipt = receipt
        if self._depth == 0:
            dts = pts
            last = self._last_dts
            if last is not None and dts <= last:
                if last - dts >= self._frame // 2:
                    # A frame shown half a frame or more before one already sent. Once per run it
                    # is taken for a re-anchored clock (FFmpeg aligns the streams on the first
                    # RTCP report) and nudged; twice, it is B-frames the SPS does not declare.
                    if self._stepped_back:
                        raise ReorderTooDeep(self._index, (last - dts) * self._tb, 0, 1)
                    self._stepped_back = True
                dts = pts = last + 1  # one frame in two packets, or clock noise: nudged as ffmpeg does
            return self._advance(dts), pts
        dts = heapq.heappushpop(self._heap, pts)
        last = self._last_dts
        if last is not None and dts <= last:
            if last + 1 > pts:
                raise ReorderTooDeep(self._index, (last - pts) * self._tb, self._depth, self._depth + 1)
            dts = last + 1  # equal times or RTCP re-anchoring noise: the decoding time moves, not pts
        return self._advance(dts), pts

    def _advance(self, dts: int) -> int:
        last = self._last_dts
        if last is not None:
            self._last_delta = dts - last
        self._last_dts = dts
        return dts

    def frame_seconds(self) -> float:
        """The most recent decoding-time step (a frame duration), 0 if unknown."""
        return self._last_delta * self._tb


def observed_depth(pts_in_decoding_order: list[int]) -> int:
    """The reorder depth a sequence of presentation times needs: for each frame, how many frames
    before it (in decoding order) are shown after it; the largest such count."""
    depth = 0
    for i, pts in enumerate(pts_in_decoding_order):
        later = sum(1 for earlier in pts_in_decoding_order[:i] if earlier > pts)
        depth = max(depth, later)
    return depth
