"""The AAC rendition of a segment's audio for playback, encoded once per segment and cached.

Chromium plays no G.711, so playback re-encodes camera audio (G.711 A-law/µ-law as an untyped TS
data stream, or AAC) to AAC-LC 16 kHz mono. The encode is the largest per-viewer cost of a stream
(~10 ms of CPU per second of media), so it is done per *segment*, not per stream: a segment's
packets are a pure function of its bytes, kept in a bounded in-memory cache keyed by the segment's
SHA-256, and every later stream that covers the segment (other viewers, seeks, byte ranges)
copies them. Packets are always whole 1024-sample AAC frames without the encoder's priming frame,
so segments can be laid end to end; the muxer fills holes between them with a silent frame.

A stream that starts inside a segment (a seek) encodes that first segment from its first audio
packet at or after the stream's origin; that encode is not cached, but it is the same for the
same request, so the output stays deterministic (byte ranges re-produce the same bytes).

Cost of the per-segment cut: at a segment boundary the decoder's overlap comes from the previous
segment's last frame instead of a priming frame (one 64 ms frame slightly smeared), and audio may
be placed up to one frame (64 ms) off its wall time. The export (``exporter.lanes.AudioLane``)
encodes continuously and keeps neither compromise.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av

logger = logging.getLogger(__name__)

AUDIO_RATE = 16000
AUDIO_BIT_RATE = 48000
FRAME = 1024  # samples per AAC-LC frame
AUDIO_TB = Fraction(1, AUDIO_RATE)
CACHE_BYTES = 64 * 1024 * 1024  # ~3 h of audio at 48 kbit/s


@dataclass(frozen=True, slots=True)
class SegmentAac:
    """One segment's audio as consecutive AAC frames; ``first_us``: wall offset of the first
    sample from the segment's start (``SegmentRecord.start``)."""

    first_us: int
    packets: tuple[bytes, ...]

    @property
    def size(self) -> int:
        return sum(len(p) for p in self.packets) + 64


class AacCache:
    """Bounded LRU of :class:`SegmentAac` by segment SHA-256 (thread-safe)."""

    def __init__(self, max_bytes: int = CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, SegmentAac] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    @property
    def size_bytes(self) -> int:
        """Bytes held (what ``max_bytes`` bounds): exported as a metric, so a soak can tell the
        cache filling up from a leak."""
        return self._bytes

    def get(self, sha256: str) -> SegmentAac | None:
        with self._lock:
            item = self._items.get(sha256)
            if item is None:
                self.misses += 1
                return None
            self._items.move_to_end(sha256)
            self.hits += 1
            return item

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0

    def put(self, sha256: str, item: SegmentAac) -> None:
        with self._lock:
            old = self._items.pop(sha256, None)
            if old is not None:
                self._bytes -= old.size
            self._items[sha256] = item
            self._bytes += item.size
            while self._bytes > self.max_bytes and len(self._items) > 1:
                _, dropped = self._items.popitem(last=False)
                self._bytes -= dropped.size


CACHE = AacCache()


def _encoder() -> Any:
    ctx: Any = av.CodecContext.create("aac", "w")
    ctx.sample_rate = AUDIO_RATE
    ctx.layout = "mono"
    ctx.format = "fltp"
    ctx.bit_rate = AUDIO_BIT_RATE
    ctx.time_base = AUDIO_TB
    # The default AAC search (twoloop) costs several times more; "fast" is plenty for speech
    # recorded through a G.711 (8 kHz) channel (the exporter's AudioLane does the same).
    ctx.options = {"aac_coder": "fast"}
    return ctx


def _zeros(samples: int) -> Any:
    frame = av.AudioFrame(format="fltp", layout="mono", samples=samples)
    frame.sample_rate = AUDIO_RATE
    for plane in frame.planes:
        plane.update(bytes(plane.buffer_size))
    return frame


class SegmentEncoder:
    """Decoded source frames in, whole AAC frames out (priming dropped); ``sink`` gets each
    packet as soon as the encoder releases it."""

    def __init__(self, sink: Callable[[bytes], None]) -> None:
        self._sink = sink
        self._ctx = _encoder()
        self._resampler = av.AudioResampler(format="fltp", layout="mono", rate=AUDIO_RATE)
        self._fifo = av.AudioFifo()
        self._fed = 0  # samples handed to the encoder
        self._queued = 0  # samples put into the fifo
        self.packets: list[bytes] = []

    def feed(self, frame: Any, offset_us: int) -> None:
        """A decoded frame that starts ``offset_us`` after this encoder's first sample."""
        hole = offset_us * AUDIO_RATE // 1_000_000 - self._queued
        if hole > AUDIO_RATE // 10:  # > 100 ms missing inside the segment: keep it on the clock
            self._fifo.write(_zeros(hole))
            self._queued += hole
        frame.pts = None  # AudioFifo checks pts continuity; the sample count is the clock
        for out in self._resampler.resample(frame):
            out.pts = None
            self._fifo.write(out)
            self._queued += out.samples
        while self._fifo.samples >= FRAME:
            self._encode(self._fifo.read(FRAME))

    def close(self) -> None:
        for out in self._resampler.resample(None):
            out.pts = None
            self._fifo.write(out)
        if self._fifo.samples:
            self._fifo.write(_zeros(FRAME - self._fifo.samples % FRAME))  # whole frames only
            while self._fifo.samples >= FRAME:
                self._encode(self._fifo.read(FRAME))
        total = self._fed
        self._emit(self._ctx.encode(None), total)

    def _encode(self, frame: Any) -> None:
        frame.pts = self._fed
        frame.time_base = AUDIO_TB
        self._fed += frame.samples
        self._emit(self._ctx.encode(frame), None)

    def _emit(self, packets: list[Any], total: int | None) -> None:
        for p in packets:
            if p.pts is None or p.pts < 0:
                continue  # the priming frame: segments are laid end to end without it
            if total is not None and p.pts >= total:
                continue  # the encoder's tail beyond the (padded) input
            data = bytes(p)
            self.packets.append(data)
            self._sink(data)


_SILENCE: bytes | None = None
_SILENCE_LOCK = threading.Lock()


def silent_frame() -> bytes:
    """One AAC frame of silence in the encoder's steady state (fills holes between segments)."""
    global _SILENCE
    with _SILENCE_LOCK:
        if _SILENCE is None:
            out: list[bytes] = []
            enc = SegmentEncoder(out.append)
            for i in range(4):
                enc.feed(_zeros(FRAME), i * FRAME * 1_000_000 // AUDIO_RATE)
            enc.close()
            _SILENCE = out[len(out) // 2]
        return _SILENCE


class AacTrack:
    """The output's AAC track: segment packets placed on the wall clock (relative to the
    output's origin), silence in holes, interleaved with the video by the caller's pace."""

    def __init__(self, container: Any) -> None:
        self.stream = container.add_stream("aac", rate=AUDIO_RATE, layout="mono")
        self.stream.bit_rate = AUDIO_BIT_RATE
        self.stream.time_base = AUDIO_TB
        self._container = container
        self._queue: list[tuple[int, bytes]] = []  # (natural position in samples, packet)
        self._next_natural: int | None = None
        self.cursor = 0  # samples muxed

    def start_segment(self, first_us: int) -> None:
        """The next packets queued belong to a segment whose first sample is at ``first_us``."""
        self._next_natural = first_us * AUDIO_RATE // 1_000_000

    def queue(self, packet: bytes) -> None:
        assert self._next_natural is not None
        self._queue.append((self._next_natural, packet))
        self._next_natural += FRAME

    def pump(self, until_us: int) -> None:
        """Mux queued packets placed before ``until_us``; fill holes before them with silence."""
        limit = until_us * AUDIO_RATE // 1_000_000
        i = 0
        while i < len(self._queue) and self._queue[i][0] < limit:
            natural, data = self._queue[i]
            i += 1
            if natural + FRAME <= 0:
                continue  # before the origin
            while natural - self.cursor >= FRAME:  # a hole of at least one frame: silence
                self._mux(silent_frame())
            self._mux(data)
        del self._queue[:i]

    def fill_to(self, until_us: int) -> None:
        """Silence up to ``until_us`` (a gap in the recording keeps the audio clock running)."""
        self.pump(until_us)
        limit = until_us * AUDIO_RATE // 1_000_000
        while not self._queue and limit - self.cursor >= FRAME:
            self._mux(silent_frame())

    def close(self, end_us: int) -> None:
        self.pump(end_us)
        self._queue.clear()
        self.fill_to(end_us)

    def _mux(self, data: bytes) -> None:
        packet = av.Packet(data)
        packet.stream = self.stream
        packet.time_base = AUDIO_TB
        packet.pts = packet.dts = self.cursor
        packet.duration = FRAME
        self.cursor += FRAME
        self._container.mux(packet)
