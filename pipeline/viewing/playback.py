"""Any [start, end) of one camera as one fragmented MP4, built on the fly from the segments.

Nothing is written to disk: segments are read from storage one after the other, their
packets rebased to wall-clock offsets from the output's origin and muxed into a fragmented MP4
(``empty_moov``, one fragment per keyframe) whose bytes are handed to the HTTP response as the
muxer produces them: ``ftyp`` + ``moov`` as soon as the first segment's stream parameters and the
origin keyframe are known, then each fragment as it is complete. Production is paced by the
client: the response pulls the next chunk only when the socket took the last one.

First-byte path (measured in ``bench/playback.py``, docs/bench/playback.md): the index is asked for the
first few segments only (the rest is paged while streaming); a segment is opened without
libav's 5 MB probe (which read whole segments); the route writes the audit row while the
first segment is being opened (no byte leaves before the row is in).

* H.264 video is copied. The output starts at the last keyframe at or before ``start``
  (its wall time is the ``origin``; the page adds ``currentTime`` to it).
* H.265 video gets an H.264 rendition on the fly (decode + libx264 ``ultrafast``,
  ``zerolatency``): Chromium plays no HEVC. The cost is measured in ``bench/playback.py``.
* Audio (G.711 A-law as an untyped TS data stream, named by the sidecar; or AAC) is decoded
  and encoded to AAC 16 kHz mono once per segment and cached (:mod:`pipeline.viewing.audio`);
  gaps become silence so the media clock keeps running.
* A recording gap stays a gap in media time: the picture holds while the time runs on.
* A segment is read whole and checked against its capture hash before any of its packets is
  used (:func:`verified_copy`; ~2 ms for a 2 MB segment), and the index's record of it against
  the capture chain (its stored sidecar and the hash chain's links, :class:`CaptureCheck`): the
  index alone can be edited. One that fails either check is never served: before the first byte the request fails (409 ``footage_altered`` naming it); later, the
  stream stops there with a transfer error instead of ending as if complete. The route raises a
  ``footage_integrity`` alert and writes an audit row either way (docs/design/web.md "Playback").

The output is deterministic for the same segments, so a byte range is served by producing the
stream again and skipping to the range (``Content-Range: bytes a-b/*``); that costs the
production of the skipped bytes. The page seeks by time (a new ``start``), which costs nothing.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import IO, Any

import av

from domain.errors import IntegrityError, NotFoundError, ValidationFailed
from domain.types import BlobReader, SegmentRecord, iso
from exporter.capture_chain import CaptureChain, NeighbourLookup
from indexer.segment_store import SegmentStore
from pipeline.viewing.audio import CACHE, AacCache, AacTrack, SegmentAac, SegmentEncoder

logger = logging.getLogger(__name__)

VIDEO_TB = Fraction(1, 90000)
MAX_RANGE = timedelta(hours=24)
PROBE_BYTES = "8192"  # libav's probe: the first packets of a segment (see _open_segment)
FIRST_PAGE = 4  # segments the plan reads before the first byte; the rest is paged while streaming
PAGE = 500
SEEK_BACK_US = 2_000_000  # a stream starting this far into a segment seeks there (see _demux)
_DECODER_SLACK_US = 1_000_000  # frames the decoder still holds when the input stops
MOVFLAGS = "frag_keyframe+empty_moov+default_base_moof"
# A segment is checked whole before use; bigger ones (long segments, high bitrates) wait on disk.
VERIFY_IN_MEMORY = 32 * 1024 * 1024
_ALAW = {"pcm_alaw", "alaw", "g711a", "pcma"}


class FootageAltered(IntegrityError):
    """A stored segment's bytes no longer match the hash recorded when it was captured."""

    code = "footage_altered"
    http_status = 409


class CaptureCheck:
    """For one stream: each segment's index record against its stored sidecar and the hash
    chain's links to its neighbours (exporter/capture_chain.py); the sidecars read are kept, so a
    segment's sidecar serves as its successor's neighbour."""

    def __init__(self, reader: BlobReader, neighbours: NeighbourLookup) -> None:
        self._chain = CaptureChain(reader, neighbours)

    def __call__(self, rec: SegmentRecord) -> None:
        problems = self._chain.problems([rec])
        if problems:
            raise FootageAltered(
                f"segment {rec.storage_key} of camera {rec.camera_id} ({iso(rec.start)} to {iso(rec.end)}) is not "
                f"what the recorder captured: {'; '.join(p.problem for p in problems)}; it is not played",
                key=rec.storage_key,
                camera_id=rec.camera_id,
                start=iso(rec.start),
                end=iso(rec.end),
                problems=[p.problem for p in problems],
            )


def verified_copy(reader: BlobReader, rec: SegmentRecord) -> IO[bytes]:
    """The segment's bytes, read once and checked against its capture hash (and size) before any
    is used; :class:`FootageAltered` if they differ. Caller closes."""
    out = tempfile.SpooledTemporaryFile(max_size=VERIFY_IN_MEMORY)  # noqa: SIM115 (returned open)
    sha = hashlib.sha256()
    size = 0
    try:
        with reader.open(rec.storage_key) as src:
            while chunk := src.read(1 << 20):
                sha.update(chunk)
                out.write(chunk)
                size += len(chunk)
    except BaseException:
        out.close()
        raise
    got = sha.hexdigest()
    if got != rec.sha256 or size != rec.size:
        out.close()
        raise FootageAltered(
            f"segment {rec.storage_key} of camera {rec.camera_id} ({iso(rec.start)} to {iso(rec.end)}) no "
            f"longer matches the hash recorded when it was captured ({size} bytes hashing to {got}; recorded "
            f"{rec.size} bytes, {rec.sha256}); it is not played",
            key=rec.storage_key,
            camera_id=rec.camera_id,
            start=iso(rec.start),
            end=iso(rec.end),
            recorded_sha256=rec.sha256,
            actual_sha256=got,
        )
    out.seek(0)
    return out


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
    segments = store.segments(camera_id, start, end, limit=FIRST_PAGE)
    if not segments:
        raise NotFoundError(f"camera {camera_id} has no footage in [{start.isoformat()}, {end.isoformat()})")
    # Decided on the first page (a camera does not switch codec inside a range in practice;
    # if it did, the copy path would fail on the other codec's packets).
    transcode = any(s.stream.video_codec in ("hevc", "h265") for s in segments)
    audio = any(s.stream.audio_codec for s in segments)
    return PlaybackPlan(camera_id, start, end, segments, transcode, audio)


def plan_segments(store: SegmentStore, plan: PlaybackPlan) -> Iterator[SegmentRecord]:
    """All the plan's segments in order: its first page, then pages queried while streaming
    (so a 24 h range does not query 8,640 rows before the first byte)."""
    yield from plan.segments
    last = plan.segments[-1]
    if len(plan.segments) < FIRST_PAGE:
        return
    while True:
        page = store.segments(plan.camera_id, last.start, plan.end, limit=PAGE)
        # paging from the last one's start also returns it and anything overlapping it
        new = [s for s in page if (s.start, s.seq) > (last.start, last.seq)]
        yield from new
        if len(page) < PAGE or not new:
            return
        last = new[-1]


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


def _open_segment(handle: Any) -> Any:
    """Open a segment without libav's default probe (which reads up to 5 MB, i.e. the whole
    10 s segment, to learn the untyped G.711 stream: ~50 ms). The first packets carry the
    parameter sets; if they did not, the full probe is the fallback."""
    ic: Any = av.open(handle, "r", options={"analyzeduration": "0", "probesize": PROBE_BYTES})
    v = ic.streams.video[0] if ic.streams.video else None
    if v is None or (v.codec_context.width and v.codec_context.extradata):
        return ic
    ic.close()
    handle.seek(0)
    return av.open(handle, "r", options={"analyzeduration": "0"})


class _Muxer:
    """The output container; video copied or encoded, AAC audio track."""

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
        self.audio = AacTrack(self.oc) if plan.audio else None
        self.last_dts = -1
        self.end_us = 0

    def header(self) -> None:
        """Write ftyp + moov now: the stream parameters are known, the client can start."""
        self.oc.start_encoding()

    def packet(self, packet: Any, dts_us: int, pts_us: int, dur_us: int) -> None:
        dts = dts_us * 9 // 100
        pts = max(pts_us * 9 // 100, dts)
        if dts <= self.last_dts:
            pts, dts = pts + self.last_dts + 1 - dts, self.last_dts + 1
        self.last_dts = dts
        if self.audio is not None:
            self.audio.pump(dts_us)
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
            self.audio.pump(pts_us)
        frame.pts = pts
        frame.time_base = VIDEO_TB
        frame.pict_type = av.video.frame.PictureType.NONE
        self.oc.mux(self.video.encode(frame))
        self.end_us = max(self.end_us, pts_us + dur_us)

    def close(self, transcode: bool, end_us: int) -> None:
        if transcode:
            self.oc.mux(self.video.encode(None))
        if self.audio is not None:
            self.audio.close(min(self.end_us, end_us))
        self.oc.close()


class _SegmentAudio:
    """Where one segment's AAC comes from: the cache, or an encoder fed while demuxing (whose
    packets go to the cache when the whole segment was encoded). Times: µs since the epoch."""

    def __init__(self, rec: SegmentRecord, decoder: Any, cache: AacCache | None, whole: bool) -> None:
        self.rec = rec
        self.rec_us = _epoch_us(rec.start)
        self.decoder = decoder
        self.cache = cache if whole else None
        self.encoder: SegmentEncoder | None = None
        self.first = 0
        self.done = False  # nothing more to encode (cache hit)

    def begin(self, track: AacTrack, origin: int) -> None:
        hit = self.cache.get(self.rec.sha256) if self.cache is not None else None
        if hit is not None:
            track.start_segment(self.rec_us + hit.first_us - origin)
            for p in hit.packets:
                track.queue(p)
            self.done = True

    def feed(self, track: AacTrack, origin: int, packet: Any, wall: int) -> None:
        if self.done:
            return
        if self.encoder is None:
            self.first = wall
            track.start_segment(wall - origin)
            self.encoder = SegmentEncoder(track.queue)
        data = av.Packet(bytes(packet)) if packet.stream.type == "data" else packet
        for frame in self.decoder.decode(data):
            self.encoder.feed(frame, wall - self.first)

    @property
    def needs_rest(self) -> bool:
        """A whole segment being encoded for the cache: demux its audio to the end."""
        return self.encoder is not None and self.cache is not None

    def finish(self, complete: bool) -> None:
        if self.encoder is None:
            return
        self.encoder.close()
        if complete and self.cache is not None:
            self.cache.put(self.rec.sha256, SegmentAac(self.first - self.rec_us, tuple(self.encoder.packets)))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _epoch_us(t: datetime) -> int:
    return (t - _EPOCH) // timedelta(microseconds=1)


class _Stream:
    """One output being built: the muxer once the origin is known, and what came before it.

    Times are integer µs since the epoch (the demux loop runs per packet; Fractions and
    datetimes there cost more than the muxing)."""

    def __init__(
        self,
        plan: PlaybackPlan,
        origin_out: list[datetime] | None,
        cache: AacCache | None,
        vouch: Callable[[SegmentRecord], None] | None = None,
    ) -> None:
        self.plan = plan
        self.vouch = vouch
        self.start = _epoch_us(plan.start)
        self.end = _epoch_us(plan.end)
        self.origin_out = origin_out
        self.cache = cache
        self.mux: _Muxer | None = None
        self.origin = 0
        self.pending: list[tuple[Any, int, int, int]] = []  # copy path: packets from the last keyframe

    def _begin(self, vin: Any, origin: int) -> bytes:
        self.origin = origin
        if self.origin_out is not None:
            self.origin_out.append(_EPOCH + timedelta(microseconds=origin))
        self.mux = _Muxer(self.plan, vin)
        self.mux.header()
        return self.mux.sink.take()

    def _first_audio(
        self, rec: SegmentRecord, adec: Any | None, whole: bool, early: list[tuple[Any, int]]
    ) -> _SegmentAudio | None:
        """The audio of the segment where the output starts. ``whole``: the output starts at
        the segment's first picture (or before), so its audio is the whole segment's (shared
        through the cache); otherwise it is encoded from the first packet at the origin on."""
        mux = self.mux
        if adec is None or mux is None or mux.audio is None:
            return None
        seg = _SegmentAudio(rec, adec, self.cache, whole)
        seg.begin(mux.audio, self.origin)
        for packet, wall in early:
            if whole or wall >= self.origin:
                seg.feed(mux.audio, self.origin, packet, wall)
        early.clear()
        return seg

    def segment(self, rec: SegmentRecord, reader: BlobReader) -> Generator[bytes, None, bool]:
        """Mux one segment; returns True when the range's end was reached."""
        handle = verified_copy(reader, rec)  # a missing segment is a 404 before anything else
        if self.vouch is not None:
            try:
                self.vouch(rec)
            except BaseException:
                handle.close()
                raise
        try:
            ic: Any = _open_segment(handle)
            try:
                if not ic.streams.video:
                    return False
                seek = self.start - SEEK_BACK_US
                if (
                    self.mux is None
                    and not self.plan.transcode
                    and seek - _epoch_us(rec.start) > SEEK_BACK_US
                ):
                    done = yield from self._demux(rec, ic, seek)
                    if done is not None:
                        return done
                    # no keyframe between the seek point and the start: from the segment's start
                    ic.close()
                    handle.seek(0)
                    ic = _open_segment(handle)
                    self.pending = []
                done = yield from self._demux(rec, ic, None)
                assert done is not None
                return done
            finally:
                ic.close()
        finally:
            handle.close()

    def _demux(self, rec: SegmentRecord, ic: Any, seek: int | None) -> Generator[bytes, None, bool | None]:
        """Mux the segment's packets; True: the range's end was reached. ``seek``: start
        demuxing near this instant instead of at the segment's start (a seek far into it);
        None comes back when that missed the keyframe at or before the start."""
        plan = self.plan
        vin = ic.streams.video[0]
        others = [s for s in ic.streams if s.type in ("audio", "data")]
        ain = others[0] if others else None
        adec = _audio_decoder(rec, ain) if ain is not None and plan.audio else None
        base = _epoch_us(rec.start) - (ic.start_time if ic.start_time is not None else 0)
        fps = vin.average_rate or Fraction(25)
        frame_us = int(1_000_000 / fps)
        vdec = vin.codec_context if plan.transcode else None
        vnum, vden = vin.time_base.numerator * 1_000_000, vin.time_base.denominator
        anum, aden = (
            (ain.time_base.numerator * 1_000_000, ain.time_base.denominator) if ain is not None else (0, 1)
        )
        stop = self.end + (_DECODER_SLACK_US if vdec is not None else 0)
        seg_audio: _SegmentAudio | None = None
        early: list[tuple[Any, int]] = []  # audio before the origin is known
        first_wall: int | None = None  # this segment's first picture
        video_done = complete = False
        if adec is not None and self.mux is not None and self.mux.audio is not None:
            seg_audio = _SegmentAudio(rec, adec, self.cache, whole=True)
            seg_audio.begin(self.mux.audio, self.origin)
        if seek is not None:
            # libav's binary search on the TS timestamps: a few small reads, not the ~10 ms
            # of demuxing every packet from the segment's start
            ic.seek((seek - base) * vden // vnum, stream=vin, backward=True, any_frame=False)
        for packet in ic.demux([vin] + ([ain] if adec is not None else [])):
            if packet.dts is None or packet.size == 0:
                continue
            if packet.stream is vin:
                if video_done:
                    continue
                wall = base + packet.dts * vnum // vden
                if first_wall is None:
                    first_wall = wall
                pwall = base + (packet.pts if packet.pts is not None else packet.dts) * vnum // vden
                if pwall >= stop:
                    video_done = True
                    if seg_audio is not None and seg_audio.needs_rest:
                        continue  # finish the segment's audio for the cache
                    break
                dur = packet.duration * vnum // vden if packet.duration else frame_us
                if vdec is not None:
                    for frame in vdec.decode(packet):
                        if frame.pts is None:
                            continue
                        fwall = base + frame.pts * vnum // vden
                        if fwall < self.start or fwall >= self.end:
                            continue
                        if self.mux is None:
                            yield self._begin(vin, fwall)
                            seg_audio = self._first_audio(rec, adec, fwall <= first_wall, early)
                        assert self.mux is not None
                        self.mux.frame(frame, fwall - self.origin, frame_us)
                elif self.mux is None:
                    if packet.is_keyframe:
                        self.pending = []
                    if self.pending or packet.is_keyframe:
                        self.pending.append((packet, wall, pwall, dur))
                    if wall >= self.start and not self.pending and seek is not None:
                        return None
                    if wall >= self.start and self.pending:
                        origin = self.pending[0][1]
                        yield self._begin(vin, origin)
                        whole = seek is None and origin <= first_wall
                        seg_audio = self._first_audio(rec, adec, whole, early)
                        assert self.mux is not None
                        for pk, w, pw, d in self.pending:
                            self.mux.packet(pk, w - origin, pw - origin, d)
                        self.pending = []
                else:
                    self.mux.packet(packet, wall - self.origin, pwall - self.origin, dur)
            elif adec is not None:
                wall = base + packet.dts * anum // aden
                if self.mux is None:
                    early.append((packet, wall))
                elif (
                    seg_audio is not None
                    and self.mux.audio is not None
                    and (wall < self.end or seg_audio.needs_rest)
                ):
                    seg_audio.feed(self.mux.audio, self.origin, packet, wall)
            if self.mux is not None and self.mux.sink.buf:
                yield self.mux.sink.take()
        else:
            complete = True
        if seg_audio is not None:
            seg_audio.finish(complete)
        if self.mux is not None and self.mux.sink.buf:
            yield self.mux.sink.take()
        return video_done

    def finish(self) -> bytes:
        if self.mux is None:
            raise NotFoundError(f"camera {self.plan.camera_id} has no picture in the range")
        self.mux.close(self.plan.transcode, self.end - self.origin)
        tail = self.mux.sink.take()
        self.mux = None
        return tail

    def abandon(self) -> None:
        if self.mux is not None:  # the client went away: drop the muxer without finishing
            try:
                self.mux.oc.close()
            except (av.FFmpegError, ValueError, OSError) as exc:  # pragma: no cover
                logger.debug("closing an abandoned playback muxer: %s", exc)
            self.mux = None


def mp4_chunks(
    plan: PlaybackPlan,
    reader: BlobReader,
    origin_out: list[datetime] | None,
    segments: Iterable[SegmentRecord],
    cache: AacCache | None = CACHE,
    on_altered: Callable[[FootageAltered], None] | None = None,
    vouch: Callable[[SegmentRecord], None] | None = None,
) -> Generator[bytes, None, None]:
    """The fragmented MP4 of ``plan`` as byte chunks. ``origin_out`` receives the wall time
    of media time 0 as soon as it is known (before the first chunk). ``segments``: all the
    plan's segments in order (:func:`plan_segments`; ``plan.segments`` is only the first
    page). ``cache``: where segments' AAC renditions are shared (None: encode everything).
    ``on_altered`` is told of a segment that failed its hash check before the stream fails;
    ``vouch`` (e.g. :class:`CaptureCheck`) checks each segment's record before it is read."""
    out = _Stream(plan, origin_out, cache, vouch)
    try:
        for rec in segments:
            try:
                done = yield from out.segment(rec, reader)
            except FootageAltered as exc:
                if on_altered is not None:
                    on_altered(exc)
                raise
            if done:
                break
        tail = out.finish()
        if tail:
            yield tail
    finally:
        out.abandon()


def skip_bytes(chunks: Iterator[bytes], first: int, last: int | None) -> Generator[bytes, None, None]:
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
