"""One run's audio: noticing that it stopped while the video goes on, and placing it when it returns.

同步录音录像 is sound and picture. A camera whose microphone, cable or audio encoder fails goes on
sending video; the recorder then records an ``audio_lost`` gap with bounds (the worker writes it)
instead of footage that silently has no sound.

When the audio comes back, cameras differ in what its RTP timestamps say. Some jump by the time
lost (the payloader re-reads its clock): the packets are placed right. Others go on counting
samples as if nothing was missed, and FFmpeg re-anchors the stream only at the camera's next RTCP
sender report (up to ~5 s later) by jumping forward by the outage. Until then the packets would be
placed inside the outage, and the jump would look like a camera clock jump and split the run (a
video gap for an audio fault). :class:`AudioTrack` places such packets by the video received with
them (camera audio and video are sent in real time, so a packet read among frames was captured
with them) and drops the correction when the re-anchoring jump arrives, keeping what remains of
the difference so the audio never runs backwards. Pure code: numbers in, numbers out.
"""

from __future__ import annotations

# Resumed audio whose media time is this far behind the video it came with did not count the
# outage: it is placed by the video instead (a real capture offset between a camera's audio and
# video is tens of milliseconds).
BEHIND_SECONDS = 1.0


class AudioTrack:
    """The audio stream of one run, in the stream's own ticks and the run's wall seconds."""

    __slots__ = ("_gap", "_raw_last", "_tb", "last_receipt", "lost_since", "shift")

    def __init__(self, gap_seconds: float, time_base: float) -> None:
        self._gap = gap_seconds
        self._tb = time_base
        # when the last audio packet arrived (before any: the run's first keyframe); the worker
        # sets it for every audio packet it records
        self.last_receipt = 0.0
        self.lost_since: float | None = None  # wall start of an outage in progress
        self.shift = 0  # ticks added to the stream's timestamps while FFmpeg has not re-anchored it
        self._raw_last: int | None = None

    def silent(self, receipt: float) -> bool:
        """Whether an outage begins now: nothing for ``gap_seconds`` while video arrives."""
        return self.lost_since is None and receipt - self.last_receipt > self._gap

    def lose(self, start: float, receipt: float) -> float:
        """An outage begins at ``start`` (where the last audio packet ended, or the run's start if
        none came), never after the receipt that noticed it."""
        self.lost_since = min(start, receipt)
        return self.lost_since

    def resume(self, wall: float, video_wall: float) -> float:
        """The first packet after an outage, at ``wall`` by its own timestamp while the video read
        with it is at ``video_wall``: the outage's end. Sets :attr:`shift` when the packet's
        timestamp did not count the outage."""
        since = self.lost_since
        assert since is not None
        self.lost_since = None
        self._raw_last = None
        if wall < video_wall - BEHIND_SECONDS:
            self.shift = round((video_wall - wall) / self._tb)
            return max(since, video_wall)
        return max(since, wall)

    def adjust(self, raw_dts: int, last_placed: int | None) -> int:
        """The correction for a packet whose stream timestamp is ``raw_dts`` (while :attr:`shift` is
        set); ``last_placed`` is the previous packet's corrected timestamp. When FFmpeg re-anchors
        (the raw time jumps by about the shift) only what keeps the audio rising remains, and that
        melts away packet by packet."""
        raw_last, self._raw_last = self._raw_last, raw_dts
        if raw_last is not None and raw_dts - raw_last > self.shift // 2:
            self.shift = 0 if last_placed is None else max(0, last_placed + 1 - raw_dts)
        return self.shift
