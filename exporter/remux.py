"""One continuous MP4 per stage and camera, remuxed from the original segments.

Video packets are copied, never decoded, for H.264 (the court sees the camera's own bitstream);
H.265 footage is copied too and additionally transcoded to an H.264 rendition because Chromium
and a stock Windows PC cannot play HEVC. Timestamps are rebased to each segment's wall-clock
offset from the file start, so a recording gap stays a gap in media time (the picture holds, the
time code shows the gap's cause). Audio is always re-encoded to AAC (MP4 in this libav refuses
``pcm_alaw``; the bit-exact originals are in ``originals/``).

Memory is constant: packets are streamed from the source to the muxer one at a time, and files
are split at a keyframe before they reach ``max_file_bytes`` (default: just under 4 GiB).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any, BinaryIO
from zoneinfo import ZoneInfo

import av

from exporter.errors import MediaError
from exporter.lanes import AudioLane, Caption, Chapter, Mark, TextLane, chapters_for, write_chapters

log = logging.getLogger(__name__)

FOUR_GIB = 4 * 1024**3
VIDEO_TB = Fraction(1, 90000)
_ALAW_NAMES = {"pcm_alaw", "alaw", "g711a", "pcma"}
_MULAW_NAMES = {"pcm_mulaw", "mulaw", "g711u", "pcmu"}


@dataclass(frozen=True, slots=True)
class SourceMedia:
    """A stored segment or body-camera clip as the remuxer needs it."""

    key: str
    start: datetime  # wall clock of the first packet
    end: datetime
    size: int
    audio_codec: str | None = None  # from StreamInfo: decodes a raw TS data stream (G.711)
    audio_rate: int | None = None
    container: str = "mpegts"  # segments always; a body-camera clip says what it is


@dataclass(frozen=True, slots=True)
class RemuxOptions:
    max_file_bytes: int = FOUR_GIB - 32 * 1024 * 1024  # strictly below 4 GiB, with room for moov
    time_zone: str = "Asia/Shanghai"
    audio_rate: int = 16000
    audio_bit_rate: int = 48000
    x264_preset: str = "veryfast"
    x264_crf: int = 23


@dataclass(slots=True)
class RenderedFile:
    path: Path
    rendition: str  # "remux" (camera's own video) or "h264" (rendition of H.265)
    video_codec: str
    start: datetime
    end: datetime
    frames: int = 0
    sources: list[str] = field(default_factory=list)
    subtitles: Path | None = None
    chapters: Path | None = None
    chapter_list: list[Chapter] = field(default_factory=list)

    @property
    def duration(self) -> float:
        return (self.end - self.start).total_seconds()


def _us(delta: timedelta) -> int:
    return delta // timedelta(microseconds=1)


class _Part:
    """One open MP4 file: video stream (copied or encoded), AAC lane, text lane."""

    def __init__(self, family: _Family, index: int, start: datetime, template: Any) -> None:
        self.family = family
        name = family.stem if index == 1 else f"{family.stem}.part{index:02d}"
        self.path = family.out_dir / f"{name}.mp4"
        self.start = start
        self.oc: Any = av.open(str(self.path), "w", format="mp4")
        if family.transcode:
            vs = self.oc.add_stream("libx264", rate=template.average_rate or 25)
            vs.width, vs.height, vs.pix_fmt = template.width, template.height, "yuv420p"
            vs.time_base = VIDEO_TB
            vs.options = {"preset": family.options.x264_preset, "crf": str(family.options.x264_crf)}
            codec = "h264"
        else:
            vs = self.oc.add_stream_from_template(template)
            codec = template.codec_context.name
            if codec == "hevc":
                vs.codec_tag = "hvc1"  # the tag Apple/Windows players expect for HEVC in MP4
        self.video = vs
        self.audio = AudioLane(self.oc, family.options.audio_rate, family.options.audio_bit_rate)
        self.text = TextLane(self.oc, self.path.with_suffix(".vtt"), start, family.tz, family.captions)
        self.file = RenderedFile(
            self.path,
            "h264" if family.transcode else "remux",
            codec,
            start,
            start,
            subtitles=self.path.with_suffix(".vtt"),
            chapters=self.path.with_name(self.path.stem + ".chapters.vtt"),
        )
        self.last_dts = -1
        self.end_us = 0
        self.packets = 0
        self.gop_bytes = 0
        self.max_gop = 0
        self.video_bytes = 0

    def offset_us(self, wall: datetime) -> int:
        return _us(wall - self.start)

    def note_source(self, key: str) -> None:
        if key not in self.file.sources:
            self.file.sources.append(key)

    def wants_split(self) -> bool:
        """At a keyframe: would one more GOP (with margin) plus the index pass the size limit?"""
        self.max_gop = max(self.max_gop, self.gop_bytes)
        self.gop_bytes = 0
        # Count what we muxed: libav buffers writes, so the file's size lags by up to its buffer.
        written = self.video_bytes + self.audio.bytes + self.text.bytes + 4096
        index_estimate = 64 * 1024 + 32 * self.packets + 32 * self.text.cues
        log.debug(
            "split check %s: written=%d index=%d gop=%d",
            self.path.name,
            written,
            index_estimate,
            self.max_gop,
        )
        return written + index_estimate + 3 * self.max_gop >= self.family.options.max_file_bytes

    def write_video(self, packet: Any, dts_us: int, pts_us: int, duration_us: int) -> None:
        dts = dts_us * 9 // 100
        pts = max(pts_us * 9 // 100, dts)
        if dts <= self.last_dts:  # overlapping sources or clock jitter: keep dts strictly rising
            pts, dts = pts + self.last_dts + 1 - dts, self.last_dts + 1
        self.last_dts = dts
        self.text.advance(dts_us)
        self.audio.fill_to(dts_us - 500_000)  # keep audio within half a second of the video
        packet.stream = self.video
        packet.time_base = VIDEO_TB
        packet.dts, packet.pts = dts, pts
        packet.duration = max(duration_us * 9 // 100, 1)
        self.gop_bytes += packet.size
        self.video_bytes += packet.size
        self.packets += 1
        self.file.frames += 1
        self.end_us = max(self.end_us, pts_us + duration_us)
        self.oc.mux(packet)

    def write_frame(self, frame: Any, pts_us: int, duration_us: int) -> None:
        pts = pts_us * 9 // 100
        if pts <= self.last_dts:
            pts = self.last_dts + 1
        self.last_dts = pts
        self.text.advance(pts_us)
        self.audio.fill_to(pts_us - 500_000)
        frame.pts = pts
        frame.time_base = VIDEO_TB
        frame.pict_type = av.video.frame.PictureType.NONE
        for packet in self.video.encode(frame):
            self.gop_bytes += packet.size
            self.video_bytes += packet.size
            self.packets += 1
            self.oc.mux(packet)
        self.file.frames += 1
        self.end_us = max(self.end_us, pts_us + duration_us)

    def close(self, marks: Sequence[Mark]) -> RenderedFile:
        if self.family.transcode:
            for packet in self.video.encode(None):
                self.oc.mux(packet)
        end_us = max(self.end_us, self.audio.duration_us)
        self.audio.fill_to(end_us)
        self.audio.close()
        self.text.close(end_us)
        self.file.end = self.start + timedelta(microseconds=end_us)
        self.file.chapter_list = chapters_for(marks, self.start, self.file.end)
        assert self.file.chapters is not None
        write_chapters(self.oc, self.file.chapter_list, self.file.chapters)
        self.oc.close()
        size = os.path.getsize(self.path)
        if size >= self.family.options.max_file_bytes:
            raise MediaError(
                f"{self.path.name} is {size} bytes, over the {self.family.options.max_file_bytes} limit",
                path=str(self.path),
            )
        return self.file


class _Family:
    """The sequence of parts for one rendition of one camera in one stage."""

    def __init__(
        self,
        out_dir: Path,
        stem: str,
        transcode: bool,
        options: RemuxOptions,
        captions: Sequence[Caption],
        marks: Sequence[Mark],
    ) -> None:
        self.out_dir, self.stem, self.transcode, self.options = out_dir, stem, transcode, options
        self.tz = ZoneInfo(options.time_zone)
        self.captions, self.marks = captions, marks
        self.part: _Part | None = None
        self.template_key: tuple[Any, ...] | None = None
        self.files: list[RenderedFile] = []

    def ensure(self, start: datetime, template: Any, keyframe: bool) -> _Part:
        """The open part, rolling over at a keyframe when the size limit or the stream format demands."""
        key = (template.codec_context.name, template.width, template.height)
        part = self.part
        if part is not None and keyframe and (key != self.template_key or part.wants_split()):
            self.files.append(part.close(self.marks))
            part = self.part = None
        if part is None:
            self.template_key = key
            part = self.part = _Part(self, len(self.files) + 1, start, template)
        return part

    def finish(self) -> list[RenderedFile]:
        if self.part is not None:
            self.files.append(self.part.close(self.marks))
            self.part = None
        return self.files


def _audio_decoder(src: SourceMedia, stream: Any) -> Any | None:
    """A decoder for the source's audio; G.711 in MPEG-TS arrives as an untyped data stream."""
    if stream.type == "audio":
        return stream.codec_context
    name = (src.audio_codec or "").lower()
    codec = "pcm_alaw" if name in _ALAW_NAMES else "pcm_mulaw" if name in _MULAW_NAMES else None
    if codec is None:
        return None
    ctx: Any = av.CodecContext.create(codec, "r")
    ctx.sample_rate = src.audio_rate or 8000
    ctx.layout = "mono"
    return ctx


def _transcode(family: _Family, frames: Any, vin: Any, src: SourceMedia, anchor: int, frame_us: int) -> None:
    """Feed decoded H.265 frames to the H.264 rendition at their wall-clock offsets."""
    for frame in frames:
        if frame.pts is not None:
            rel = int(frame.pts * vin.time_base * 1_000_000) - anchor
            fwall = src.start + timedelta(microseconds=rel)
        elif family.part is not None:
            fwall = family.part.start + timedelta(microseconds=family.part.end_us)
        else:
            fwall = src.start
        part = family.ensure(fwall, vin, bool(frame.key_frame))
        part.note_source(src.key)
        part.write_frame(frame, part.offset_us(fwall), frame_us)


def render_camera(
    sources: Sequence[SourceMedia],
    open_source: Callable[[SourceMedia], BinaryIO | str],
    out_dir: Path,
    stem: str,
    captions: Sequence[Caption],
    marks: Sequence[Mark],
    options: RemuxOptions,
    tick: Callable[[int], None] = lambda _n: None,
) -> list[RenderedFile]:
    """Write ``stem.mp4`` (and ``stem.h264.mp4`` for H.265) from ``sources`` in time order.

    ``tick(bytes)`` is called after each source (progress) and is where the caller raises to cancel.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    copy = _Family(out_dir, stem, False, options, captions, marks)
    rendition: _Family | None = None
    for src in sorted(sources, key=lambda s: s.start):
        handle = open_source(src)
        try:
            # No long probe: the sidecar tells us the codecs, and libav's stream-info probing decodes
            # frames whose buffers this libav/PyAV keeps (~20 MB per opened file, measured).
            ic: Any = av.open(handle, "r", options={"analyzeduration": "0"})
        except av.FFmpegError as exc:
            raise MediaError(f"cannot open {src.key}: {exc}", key=src.key) from exc
        try:
            if not ic.streams.video:
                raise MediaError(f"{src.key} has no video stream", key=src.key)
            vin = ic.streams.video[0]
            if vin.codec_context.name == "hevc" and rendition is None:
                rendition = _Family(out_dir, f"{stem}.h264", True, options, captions, marks)
            others = [s for s in ic.streams if s.type in ("audio", "data")]
            ain = others[0] if others else None
            adec = _audio_decoder(src, ain) if ain is not None else None
            anchor = ic.start_time if ic.start_time is not None else 0  # µs, earliest stream start
            vdec = vin.codec_context if rendition is not None and vin.codec_context.name == "hevc" else None
            wanted = [vin] + ([ain] if adec is not None and ain is not None else [])
            fps = vin.average_rate or Fraction(25)
            frame_us = int(1_000_000 / fps)
            for packet in ic.demux(wanted):
                if packet.dts is None or packet.size == 0:
                    continue
                rel_us = int((packet.dts * packet.time_base) * 1_000_000) - anchor
                wall = src.start + timedelta(microseconds=rel_us)
                if packet.stream is vin:
                    pts_rel = (
                        int(
                            ((packet.pts if packet.pts is not None else packet.dts) * packet.time_base)
                            * 1_000_000
                        )
                        - anchor
                    )
                    dur = int(packet.duration * packet.time_base * 1_000_000) if packet.duration else frame_us
                    key = bool(packet.is_keyframe)
                    part = copy.ensure(wall, vin, key)
                    part.note_source(src.key)
                    if vdec is not None:
                        assert rendition is not None
                        _transcode(rendition, vdec.decode(packet), vin, src, anchor, frame_us)
                    part.write_video(
                        packet,
                        part.offset_us(wall),
                        part.offset_us(src.start + timedelta(microseconds=pts_rel)),
                        dur,
                    )
                elif adec is not None:
                    frames = adec.decode(av.Packet(bytes(packet)) if packet.stream.type == "data" else packet)
                    for frame in frames:
                        for fam in (copy, rendition):
                            if fam is not None and fam.part is not None:
                                fam.part.audio.feed(frame, fam.part.offset_us(wall))
            if vdec is not None:
                assert rendition is not None
                _transcode(rendition, vdec.decode(None), vin, src, anchor, frame_us)
        except av.FFmpegError as exc:
            raise MediaError(f"cannot remux {src.key}: {exc}", key=src.key) from exc
        finally:
            ic.close()
            if not isinstance(handle, str):
                handle.close()
        tick(src.size)
    files = copy.finish()
    if rendition is not None:
        files.extend(rendition.finish())
    return files
