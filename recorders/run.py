"""The state of one run (a stretch of continuous media time with one clock mapping) and of its
open segment file, and what a run knows how to answer from its own clock and streams: where an
audio outage began, where re-placed audio goes. The worker (worker.py) drives runs; nothing here
does I/O."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from domain.types import ClockSource, GapRecord
from recorders.audio_track import AudioTrack
from recorders.decode_order import VideoTimeline
from recorders.segmenter import SegmentPlan, TimestampGuard
from recorders.ts_writer import TsWriter


class Segment:
    """One open segment file of a run."""

    __slots__ = ("gap_before", "key", "media", "packets_at_open", "path", "prev", "seq", "start", "writer")

    def __init__(
        self,
        key: str,
        path: Path,
        seq: int,
        start: float,
        media: float,
        prev: str | None,
        writer: TsWriter,
        packets_at_open: int,
        gap_before: GapRecord | None,
    ) -> None:
        self.key, self.path, self.seq, self.start, self.media = key, path, seq, start, media
        self.prev, self.writer, self.packets_at_open = prev, writer, packets_at_open
        # The gap this run's first segment ends. Written just before the segment's own sidecar (and
        # kept in its partial marker), so an outage is recorded once footage has really resumed.
        self.gap_before = gap_before


class Run:
    """A stretch of continuous media time with one clock mapping."""

    __slots__ = (
        "audio",
        "audio_index",
        "audio_last",
        "clock_base",
        "clock_source",
        "codec",
        "first_media",
        "first_wall",
        "frame_ticks",
        "guard",
        "plan",
        "run_id",
        "skipped",
        "video",
        "video_index",
    )

    def __init__(
        self,
        clock_source: ClockSource,
        plan: SegmentPlan,
        guard: TimestampGuard,
        video_index: int,
        frame_ticks: int,
        codec: str,
    ) -> None:
        self.codec = codec
        self.audio_index = -1  # the session's audio stream, -1 without one
        self.audio: AudioTrack | None = None  # its outages (audio_track.py)
        self.audio_last: Any = None  # the last audio packet recorded in this run
        self.first_wall: float | None = None  # the run's first segment start
        self.first_media: float | None = None  # and its media time
        self.run_id = uuid.uuid4().hex[:16]
        self.video_index = video_index
        self.clock_source = clock_source
        self.plan = plan
        self.guard = guard  # audio (and any other recorded stream): continuity of decoding times
        self.frame_ticks = frame_ticks
        # Video timing from the run's first keyframe on (decode_order.py): built there, because an
        # SPS sent only in-band arrives with that keyframe.
        self.video: VideoTimeline | None = None
        self.skipped = 0  # leading packets before the first keyframe (not decodable; in the gap)
        # wall - monotonic when live reading began (None while the buffered packets are replayed,
        # whose receipt times are older than "now"); a keyframe that sees it moved ends the run.
        self.clock_base: float | None = None

    # -- audio (audio_track.py decides; these read the run's clock and streams) ------------------
    def audio_behind(self, media: float, gap_seconds: float) -> bool:
        """Whether the video's media time (``media``) is ``gap_seconds`` past the end of the run's
        last audio (or past the run's first frame, before any audio). Checked once no audio has
        arrived for that long: after a network stall video and audio arrive late together, and
        the video's media time is no further ahead than the audio's."""
        last = self.audio_last
        if last is None:
            since = self.plan.start_media if self.plan.start_media is not None else media
            first = self.first_media if self.first_media is not None else since
            return media - first > gap_seconds
        end: float = (last.pts + max(last.duration or 0, 0)) * tb_of(last)
        return media - end > gap_seconds

    def audio_outage_start(self, receipt: float) -> float:
        """Where an audio outage noticed at ``receipt`` began: the end of the run's last audio
        packet (muxed: its times are in the output stream's time base), else the run's start."""
        last = self.audio_last
        if last is not None:
            return self.plan.mapper.wall((last.pts + max(last.duration or 0, 0)) * tb_of(last))
        return self.first_wall if self.first_wall is not None else receipt

    def replace_audio(self, audio: AudioTrack, pkt: Any, raw: int, video_tb: float) -> int:
        """Re-place the audio at a discontinuity (audio_track.py); the stream's continuity starts
        afresh there. Returns the packet's timestamp."""
        mapper, video = self.plan.mapper, self.video
        wall = mapper.wall(raw * tb_of(pkt))
        video_wall = wall if video is None or video.max_pts is None else mapper.wall(video.max_pts * video_tb)
        audio.replace(raw, wall, video_wall, self.guard.last(pkt.stream_index))
        self.guard.forget(pkt.stream_index)
        return raw + audio.shift


def tb_of(pkt: Any) -> float:
    """A packet's time base as a float (seconds per tick)."""
    return float(pkt.time_base)
