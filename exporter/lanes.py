"""Per-output-file tracks that are generated rather than copied: AAC audio and the time-code text.

``AudioLane`` turns decoded source audio (G.711 A-law, AAC, anything libav decodes) into one
continuous AAC-LC track placed on the wall clock: silence is inserted where the sources have a
hole, so audio and video stay in step across gaps and players do not stretch a sample.

``TextLane`` writes the wall-clock time once per second (and the events and gap causes active at
that second) both as an MP4 ``mov_text`` track and as a WebVTT file beside the MP4, because
browsers do not render in-band ``mov_text`` but do render ``<track>`` WebVTT.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

import av

log = logging.getLogger(__name__)

# mov_text's encoder refuses to open without an ASS header; this is the minimal one libav's own
# converters write (one default style). The header only reaches the tx3g sample description.
ASS_HEADER = (
    b"[Script Info]\r\nScriptType: v4.00+\r\nPlayResX: 384\r\nPlayResY: 288\r\n\r\n"
    b"[V4+ Styles]\r\nFormat: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, "
    b"BackColour, Bold, Italic, Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, "
    b"Outline, Shadow, Alignment, MarginL, MarginR, MarginV, Encoding\r\n"
    b"Style: Default,Sans,16,&Hffffff,&Hffffff,&H0,&H0,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,0\r\n\r\n"
    b"[Events]\r\nFormat: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text\r\n"
)

TEXT_TB = Fraction(1, 1000)


@dataclass(frozen=True, slots=True)
class Caption:
    """Text shown while the wall clock is in [start, end) (an event or a gap with its cause)."""

    start: datetime
    end: datetime
    text: str


@dataclass(frozen=True, slots=True)
class Mark:
    """A chapter start: an event or the beginning/end of a gap, titled in zh-CN and English."""

    time: datetime
    zh: str
    en: str


@dataclass(frozen=True, slots=True)
class Chapter:
    """One chapter of an output file, in milliseconds of the file's media time."""

    start_ms: int
    end_ms: int
    zh: str
    en: str

    @property
    def title(self) -> str:
        # Other players show one title per chapter (MP4 chapter track, .chapters.vtt): both
        # languages, as on the disc's other bilingual documents. The disc page picks one.
        return f"{self.zh} {self.en}"


def local_stamp(t: datetime, tz: ZoneInfo) -> str:
    return t.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")


def vtt_time(ms: int) -> str:
    h, rem = divmod(max(ms, 0), 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


class AudioLane:
    """One AAC track of one output file, fed with decoded frames placed on the part's time axis."""

    def __init__(self, container: Any, rate: int, bit_rate: int) -> None:
        self.rate = rate
        self.stream = container.add_stream("aac", rate=rate, layout="mono")
        self.stream.bit_rate = bit_rate
        # libav's default AAC search (twoloop) costs ~150 µs per frame and dominated export time;
        # "fast" is plenty for speech recorded through a G.711 (8 kHz) channel.
        self.stream.codec_context.options = {"aac_coder": "fast"}
        self.stream.time_base = Fraction(1, rate)
        self._container = container
        self._resampler = av.AudioResampler(format="fltp", layout="mono", rate=rate)
        self._fifo = av.AudioFifo()
        self._queued = 0  # samples put into the fifo since the part started
        self._encoded = 0  # samples handed to the encoder
        self.frame_size = 1024
        self.bytes = 0  # encoded bytes muxed (the muxer buffers, so file size lags)

    def _silence(self, samples: int) -> None:
        while samples > 0:
            n = min(samples, 8192)
            frame = av.AudioFrame(format="fltp", layout="mono", samples=n)
            frame.sample_rate = self.rate
            for plane in frame.planes:
                plane.update(bytes(plane.buffer_size))
            self._fifo.write(frame)
            self._queued += n
            samples -= n

    def _drain(self, final: bool = False) -> None:
        while self._fifo.samples >= self.frame_size or (final and self._fifo.samples > 0):
            frame = self._fifo.read(min(self.frame_size, self._fifo.samples))
            if frame is None:
                break
            frame.pts = self._encoded
            frame.time_base = self.stream.time_base
            self._encoded += frame.samples
            self._mux(self.stream.encode(frame))

    def fill_to(self, offset_us: int) -> None:
        """Pad with silence up to ``offset_us`` (a gap in every source of this file)."""
        target = offset_us * self.rate // 1_000_000
        if target > self._queued:
            self._silence(target - self._queued)
            self._drain()

    def feed(self, frame: Any, offset_us: int) -> None:
        """Queue a decoded frame that starts ``offset_us`` after the part start."""
        if offset_us < 0:
            return  # audio from before a split point belongs to the previous part
        target = offset_us * self.rate // 1_000_000
        hole = target - self._queued
        if hole > self.rate // 10:  # > 100 ms missing: a real hole, keep audio on the clock
            self._silence(hole)
        frame.pts = None  # AudioFifo checks pts continuity; our own counter is the clock
        for out in self._resampler.resample(frame):
            out.pts = None
            self._fifo.write(out)
            self._queued += out.samples
        self._drain()

    def close(self) -> None:
        for out in self._resampler.resample(None):
            out.pts = None
            self._fifo.write(out)
            self._queued += out.samples
        self._drain(final=True)
        self._mux(self.stream.encode(None))

    def _mux(self, packets: list[Any]) -> None:
        self.bytes += sum(p.size for p in packets)
        self._container.mux(packets)

    @property
    def duration_us(self) -> int:
        return self._queued * 1_000_000 // self.rate


class TextLane:
    """Time code and captions: a ``mov_text`` track plus a WebVTT file, one cue per second."""

    def __init__(
        self, container: Any, vtt_path: Path, start: datetime, tz: ZoneInfo, captions: Sequence[Caption]
    ) -> None:
        self.stream = container.add_stream("mov_text")
        self.stream.codec_context.subtitle_header = ASS_HEADER
        self.stream.time_base = TEXT_TB
        self._container = container
        self._start = start
        self._tz = tz
        self._captions = sorted(captions, key=lambda c: c.start)
        self._vtt: TextIO = vtt_path.open("w", encoding="utf-8", newline="\n")
        self._vtt.write("WEBVTT\n\n")
        self._next_ms = 0
        self.cues = 0
        self.bytes = 0

    def _text_at(self, t: datetime) -> str:
        lines = [local_stamp(t, self._tz)]
        lines.extend(c.text for c in self._captions if c.start <= t < c.end)
        return "\n".join(lines)

    def advance(self, until_us: int, final: bool = False) -> None:
        """Emit every cue that starts before ``until_us`` (media time of the part).

        ``final``: the part ends at ``until_us``; the last cue is cut there, not at the next second.
        """
        until_ms = until_us // 1000
        while self._next_ms < until_ms:
            wall = self._start + timedelta(milliseconds=self._next_ms)
            # Cues end on whole wall-clock seconds so the shown time flips with the picture's OSD.
            end_ms = self._next_ms + (1000 - wall.microsecond // 1000 if wall.microsecond else 1000)
            if final:
                end_ms = min(end_ms, until_ms)
            self._emit(self._next_ms, end_ms, self._text_at(wall))
            self._next_ms = end_ms

    def _emit(self, start_ms: int, end_ms: int, text: str) -> None:
        payload = text.encode("utf-8")
        packet = av.Packet(struct.pack(">H", len(payload)) + payload)
        packet.stream = self.stream
        packet.time_base = TEXT_TB
        packet.pts = packet.dts = start_ms
        packet.duration = end_ms - start_ms
        self.bytes += packet.size
        self._container.mux(packet)
        self._vtt.write(f"{vtt_time(start_ms)} --> {vtt_time(end_ms)}\n{text}\n\n")
        self.cues += 1

    def close(self, end_us: int) -> None:
        self.advance(end_us, final=True)
        self._vtt.close()


def chapters_for(marks: Sequence[Mark], start: datetime, end: datetime) -> list[Chapter]:
    """The chapters of one part: a "start" chapter, then one from each mark inside the part."""
    total = int((end - start).total_seconds() * 1000)
    inside = sorted((m for m in marks if start < m.time < end), key=lambda m: m.time)
    points: list[tuple[int, str, str]] = [(0, "开始", "Start")]
    points.extend((int((m.time - start).total_seconds() * 1000), m.zh, m.en) for m in inside)
    out: list[Chapter] = []
    for i, (ms, zh, en) in enumerate(points):
        nxt = points[i + 1][0] if i + 1 < len(points) else total
        if nxt > ms:
            out.append(Chapter(ms, nxt, zh, en))
    return out


def write_chapters(container: Any, chapters: list[Chapter], vtt_path: Path) -> None:
    """MP4 chapters via libav (QuickTime/Nero chapter track) and a WebVTT chapters file."""
    container.set_chapters(
        [
            {
                "id": i + 1,
                "start": c.start_ms,
                "end": c.end_ms,
                "time_base": TEXT_TB,
                "metadata": {"title": c.title},
            }
            for i, c in enumerate(chapters)
        ]
    )
    with vtt_path.open("w", encoding="utf-8", newline="\n") as fh:
        fh.write("WEBVTT\n\n")
        for c in chapters:
            fh.write(f"{vtt_time(c.start_ms)} --> {vtt_time(c.end_ms)}\n{c.title}\n\n")
