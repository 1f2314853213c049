"""One run's audio: noticing that it stopped while the video goes on, and keeping it placed with
the video across the jumps of its timestamps.

同步录音录像 is sound and picture. A camera whose microphone, cable or audio encoder fails goes on
sending video; the recorder then records an ``audio_lost`` gap with bounds (the worker writes it)
instead of footage that silently has no sound.

An audio stream's timestamps jump more often than a camera's video: FFmpeg re-anchors each stream
on that stream's first RTCP sender report (by the camera's latency between audio and video: 4 s
with x264enc's default look-ahead), a camera restarting its audio encoder starts a new timeline,
and audio coming back after an outage either jumps by the time lost or goes on counting samples
as if nothing was missed. None of that is a reason to split the run: it would cost the video up to
a GOP for a fault of the sound. So an audio discontinuity never ends a run. The audio goes on at
the time its own timestamps say when that agrees (within :data:`AGREE_SECONDS`) with the video it
arrives with, because camera audio and video are sent in real time, and otherwise at the video's
time; and never backwards (MPEG-TS wants rising timestamps per stream). :attr:`AudioTrack.shift` is
the correction in the stream's ticks, recomputed at every discontinuity. Pure code.
"""

from __future__ import annotations

# An audio timestamp whose wall time is this close to the video's read with it is believed; further
# off it did not follow the camera's clock (or the video's anchoring) and is placed by the video.
AGREE_SECONDS = 1.0


class AudioTrack:
    """The audio stream of one run, in the stream's own ticks and the run's wall seconds."""

    __slots__ = ("_gap", "_tb", "last_receipt", "lost_since", "shift")

    def __init__(self, gap_seconds: float, time_base: float) -> None:
        self._gap = gap_seconds
        self._tb = time_base
        # when the last audio packet arrived (before any: the run's first keyframe); the worker
        # sets it for every audio packet it records
        self.last_receipt = 0.0
        self.lost_since: float | None = None  # wall start of an outage in progress
        self.shift = 0  # ticks added to the stream's own timestamps (see the module's docstring)

    def silent(self, receipt: float) -> bool:
        """Whether an outage begins now: nothing for ``gap_seconds`` while video arrives."""
        return self.lost_since is None and receipt - self.last_receipt > self._gap

    def lose(self, start: float, receipt: float) -> float:
        """An outage begins at ``start`` (where the last audio packet ended, or the run's start if
        none came), never after the receipt that noticed it."""
        self.lost_since = min(start, receipt)
        return self.lost_since

    def resume(self) -> float:
        """The outage is over; returns when it began."""
        since = self.lost_since
        assert since is not None
        self.lost_since = None
        return since

    def replace(self, raw: int, wall: float, video_wall: float, last_placed: int | None) -> int:
        """A discontinuity at the packet whose own timestamp is ``raw`` (wall time ``wall`` by the
        run's mapping) while the video read with it is at ``video_wall``: sets and returns the new
        :attr:`shift`. ``last_placed`` is the stream's previous (shifted) timestamp."""
        shift = 0 if abs(wall - video_wall) <= AGREE_SECONDS else round((video_wall - wall) / self._tb)
        if last_placed is not None and raw + shift <= last_placed:
            shift = last_placed + 1 - raw
        self.shift = shift
        return shift
