"""Any [start, end) of one camera as one fragmented MP4, built on the fly from the segments.

Nothing is written to disk: segments are read from storage one after the other, their
packets rebased to wall-clock offsets from the output's origin and muxed into a fragmented MP4
(``empty_moov``, one fragment per keyframe) whose bytes are handed to the HTTP response as the
muxer produces them. The first bytes (``ftyp`` + ``moov``) leave after the first packet.

* H.264 video is copied. The output starts at the last keyframe at or before ``start``
  (its wall time is the ``origin``; the page adds ``currentTime`` to it).
* H.265 video gets an H.264 rendition on the fly (decode + libx264 ``ultrafast``,
  ``zerolatency``): Chromium plays no HEVC. The cost is measured in ``bench/playback.py``.
* Audio (G.711 A-law as an untyped TS data stream, named by the sidecar; or AAC) is decoded
  and encoded to AAC 16 kHz mono; gaps become silence so the media clock keeps running.
* A recording gap stays a gap in media time: the picture holds while the time runs on.

The output is deterministic for the same segments, so a byte range is served by producing the
stream again and skipping to the range (``Content-Range: bytes a-b/*``); that costs the
production of the skipped bytes. The page seeks by time (a new ``start``), which costs nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from fractions import Fraction
from typing import Any

import av

from domain.errors import NotFoundError, ValidationFailed
from domain.types import BlobReader, SegmentRecord
from exporter.lanes import AudioLane
from indexer.segment_store import SegmentStore

logger = logging.getLogger(__name__)

VIDEO_TB = Fraction(1, 90000)
AUDIO_RATE = 16000
AUDIO_BIT_RATE = 48000
MAX_RANGE = timedelta(hours=24)
FLUSH_BYTES = 256 * 1024
_DECODER_SLACK = timedelta(seconds=1)  # frames the decoder still holds when the input stops
MOVFLAGS = "frag_keyframe+empty_moov+default_base_moof"
_ALAW = {"pcm_alaw", "alaw", "g711a", "pcma"}
_MULAW = {"pcm_mulaw", "mulaw", "g711u", "pcmu"}


@dataclass(frozen=True, slots=True)
class PlaybackPlan:
    camera_id: str
    start: datetime
    end: datetime
    segments: list[SegmentRecord]
    transcode: bool  # H.265 source: H.264 rendition
    audio: bool


def plan_playback(store: SegmentStore, camera_id: str, start: datetime, end: datetime) -> PlaybackPlan:
    if start.tzinfo is None or end.tzinfo is None:
        raise ValidationFailed(
            "start and end need a time zone",
            fields=[{"field": "query.start", "message": "needs a time zone"}],
        )
    if end <= start:
        raise ValidationFailed(
            "end must be after start", fields=[{"field": "query.end", "message": "not after start"}]
        )
    if end - start > MAX_RANGE:
        raise ValidationFailed(
            "range longer than 24 h", fields=[{"field": "query.end", "message": "range longer than 24 h"}]
        )
    segments = store.segments(camera_id, start, end)
    if not segments:
        raise NotFoundError(f"camera {camera_id} has no footage in [{start.isoformat()}, {end.isoformat()})")
    transcode = any(s.stream.video_codec in ("hevc", "h265") for s in segments)
    audio = any(s.stream.audio_codec for s in segments)
    return PlaybackPlan(camera_id, start, end, segments, transcode, audio)


class _Sink:
    """The muxer's output: bytes collect here until the response takes them."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def write(self, data: bytes) -> int:
        self.buf += data
        return len(data)

    def take(self) -> bytes:
        out = bytes(self.buf)
        self.buf.clear()
        return out


def _audio_decoder(rec: SegmentRecord, stream: Any) -> Any | None:
    if stream.type == "audio":
        return stream.codec_context
    name = (rec.stream.audio_codec or "").lower()
    codec = "pcm_alaw" if name in _ALAW else "pcm_mulaw" if name in _MULAW else None
    if codec is None:
        return None
    ctx: Any = av.CodecContext.create(codec, "r")
    ctx.sample_rate = rec.stream.audio_sample_rate or 8000
    ctx.layout = "mono"
    return ctx


def _us(delta: timedelta) -> int:
    return delta // timedelta(microseconds=1)


class _Muxer:
    """The output container; video copied or encoded, AAC audio lane."""

    def __init__(self, plan: PlaybackPlan, template: Any) -> None:
        self.sink = _Sink()
        self.oc: Any = av.open(
            self.sink,
            "w",
            format="mp4",
            options={"movflags": MOVFLAGS, "avoid_negative_ts": "make_non_negative"},
        )
        if plan.transcode:
            vs = self.oc.add_stream("libx264", rate=template.average_rate or 25)
            vs.width, vs.height, vs.pix_fmt = template.width, template.height, "yuv420p"
            vs.options = {"preset": "ultrafast", "tune": "zerolatency", "crf": "26", "g": "25"}
            vs.time_base = VIDEO_TB
        else:
            vs = self.oc.add_stream_from_template(template)
            vs.time_base = VIDEO_TB
        self.video = vs
        self.audio = AudioLane(self.oc, AUDIO_RATE, AUDIO_BIT_RATE) if plan.audio else None
        self.last_dts = -1
        self.end_us = 0

    def packet(self, packet: Any, dts_us: int, pts_us: int, dur_us: int) -> None:
        dts = dts_us * 9 // 100
        pts = max(pts_us * 9 // 100, dts)
        if dts <= self.last_dts:
            pts, dts = pts + self.last_dts + 1 - dts, self.last_dts + 1
        self.last_dts = dts
        if self.audio is not None:
            self.audio.fill_to(dts_us - 500_000)
        packet.stream = self.video
        packet.time_base = VIDEO_TB
        packet.dts, packet.pts = dts, pts
        packet.duration = max(dur_us * 9 // 100, 1)
        self.end_us = max(self.end_us, pts_us + dur_us)
        self.oc.mux(packet)

    def frame(self, frame: Any, pts_us: int, dur_us: int) -> None:
        pts = pts_us * 9 // 100
        if pts <= self.last_dts:
            pts = self.last_dts + 1
        self.last_dts = pts
        if self.audio is not None:
            self.audio.fill_to(pts_us - 500_000)
        frame.pts = pts
        frame.time_base = VIDEO_TB
        frame.pict_type = av.video.frame.PictureType.NONE
        self.oc.mux(self.video.encode(frame))
        self.end_us = max(self.end_us, pts_us + dur_us)

    def close(self, transcode: bool, end_us: int) -> None:
        if transcode:
            self.oc.mux(self.video.encode(None))
        if self.audio is not None:
            self.audio.fill_to(min(max(self.end_us, self.audio.duration_us), end_us))
            self.audio.close()
        self.oc.close()


def mp4_chunks(
    plan: PlaybackPlan, reader: BlobReader, origin_out: list[datetime] | None = None
) -> Iterator[bytes]:
    """The fragmented MP4 of ``plan`` as byte chunks. ``origin_out`` receives the wall time
    of media time 0 as soon as it is known (before the first chunk)."""
    mux: _Muxer | None = None
    origin: datetime | None = None
    pending: list[tuple[Any, datetime, datetime, int]] = []  # copy path: packets from the last keyframe
    try:
        for rec in plan.segments:
            handle = reader.open(rec.storage_key)
            try:
                ic: Any = av.open(handle, "r", options={"analyzeduration": "0"})
                try:
                    if not ic.streams.video:
                        continue
                    vin = ic.streams.video[0]
                    others = [s for s in ic.streams if s.type in ("audio", "data")]
                    ain = others[0] if others else None
                    adec = _audio_decoder(rec, ain) if ain is not None and plan.audio else None
                    anchor = ic.start_time if ic.start_time is not None else 0
                    fps = vin.average_rate or Fraction(25)
                    frame_us = int(1_000_000 / fps)
                    vdec = vin.codec_context if plan.transcode else None
                    wanted = [vin] + ([ain] if adec is not None else [])
                    for packet in ic.demux(wanted):
                        if packet.dts is None or packet.size == 0:
                            continue
                        wall = rec.start + timedelta(
                            microseconds=int(packet.dts * packet.time_base * 1_000_000) - anchor
                        )
                        if packet.stream is vin:
                            p = packet.pts if packet.pts is not None else packet.dts
                            pwall = rec.start + timedelta(
                                microseconds=int(p * packet.time_base * 1_000_000) - anchor
                            )
                            if pwall >= plan.end + (_DECODER_SLACK if vdec is not None else timedelta(0)):
                                break
                            dur = (
                                int(packet.duration * packet.time_base * 1_000_000)
                                if packet.duration
                                else frame_us
                            )
                            if vdec is not None:
                                for frame in vdec.decode(packet):
                                    if frame.pts is None:
                                        continue
                                    fwall = rec.start + timedelta(
                                        microseconds=int(frame.pts * vin.time_base * 1_000_000) - anchor
                                    )
                                    if fwall < plan.start or fwall >= plan.end:
                                        continue
                                    if mux is None:
                                        origin = fwall
                                        if origin_out is not None:
                                            origin_out.append(origin)
                                        mux = _Muxer(plan, vin)
                                    assert origin is not None
                                    mux.frame(frame, _us(fwall - origin), frame_us)
                            elif mux is None:
                                if packet.is_keyframe:
                                    pending = []
                                if pending or packet.is_keyframe:
                                    pending.append((packet, wall, pwall, dur))
                                if wall >= plan.start and pending:
                                    origin = pending[0][1]
                                    if origin_out is not None:
                                        origin_out.append(origin)
                                    mux = _Muxer(plan, vin)
                                    for pk, w, pw, d in pending:
                                        mux.packet(pk, _us(w - origin), _us(pw - origin), d)
                                    pending = []
                            else:
                                assert origin is not None
                                mux.packet(packet, _us(wall - origin), _us(pwall - origin), dur)
                        elif (
                            adec is not None and mux is not None and mux.audio is not None and wall < plan.end
                        ):
                            assert origin is not None
                            data = av.Packet(bytes(packet)) if packet.stream.type == "data" else packet
                            for frame in adec.decode(data):
                                mux.audio.feed(frame, _us(wall - origin))
                        if mux is not None and (len(mux.sink.buf) >= FLUSH_BYTES or mux.last_dts <= 0):
                            chunk = mux.sink.take()
                            if chunk:
                                yield chunk
                    if mux is not None and len(mux.sink.buf):
                        yield mux.sink.take()
                finally:
                    ic.close()
            finally:
                handle.close()
        if mux is None:
            raise NotFoundError(f"camera {plan.camera_id} has no picture in the range")
        assert origin is not None
        mux.close(plan.transcode, _us(plan.end - origin))
        tail = mux.sink.take()
        if tail:
            yield tail
        mux = None
    finally:
        if mux is not None:  # the client went away: drop the muxer without finishing
            try:
                mux.oc.close()
            except (av.FFmpegError, ValueError, OSError) as exc:  # pragma: no cover
                logger.debug("closing an abandoned playback muxer: %s", exc)


def skip_bytes(chunks: Iterator[bytes], first: int, last: int | None) -> Iterator[bytes]:
    """Bytes ``first`` .. ``last`` (inclusive; None: to the end) of a chunk stream."""
    pos = 0
    for chunk in chunks:
        lo, hi = pos, pos + len(chunk)
        pos = hi
        if hi <= first:
            continue
        a = max(first - lo, 0)
        b = len(chunk) if last is None else min(len(chunk), last + 1 - lo)
        if b > a:
            yield chunk[a:b]
        if last is not None and pos > last:
            return
