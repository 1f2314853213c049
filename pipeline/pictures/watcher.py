"""The picture watcher: every ``interval_seconds``, for each recording camera, decode the newest
keyframe of its open spool segment (nothing else is decoded), run the picture checks and hand a
:class:`~domain.types.PictureObservation` to the sink (the risk engine).

The recorder writes the open segment packet by packet (see ``pipeline/viewing/live_frames.py``), so its newest
keyframe is at most one GOP old. Only packets are read (demuxing costs little); of them only
the last *complete* keyframe is decoded: the last packet of a growing file may be half written,
so a keyframe counts once another video packet follows it. A sample is taken only when that
keyframe is newer than the one checked before: "packets flow" for the frozen check means new
keyframes keep arriving, and a stalled camera (a recorder matter: stall gaps, camera_lost) is
never called frozen.

:func:`file_keyframes` feeds a finished file through the same decode and check path at file
speed (the tests' two-minute normal feed and ``bench/picture.py``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from domain.types import UTC, Clock, PictureObservation
from pipeline.pictures.checks import CheckResult, CheckThresholds, PictureChecker
from pipeline.settings import PictureChecksConfig
from recorders.spool import growing_segment

logger = logging.getLogger(__name__)


def thresholds_from(cfg: PictureChecksConfig) -> CheckThresholds:
    """The checks' thresholds from the ``[picture_checks]`` section (same names)."""
    return CheckThresholds(**{f.name: getattr(cfg, f.name) for f in fields(CheckThresholds)})


@dataclass(frozen=True, slots=True)
class KeyFrame:
    """One decoded keyframe: its luma plane, the frame (for a snapshot) and when it was taken."""

    frame: Any  # av.VideoFrame
    gray: np.ndarray[Any, np.dtype[np.uint8]]
    pts: float  # seconds on the file's time line
    wall: datetime | None  # camera time (None: the segment's start is unknown)
    delta_bytes: float | None = None  # median size of the non-key frames read around it


def _decode(codec: str, extradata: bytes | None, packet: Any) -> Any | None:
    """Decode one keyframe packet alone, with a decoder of its own that is flushed at once (a
    keyframe with in-band parameter sets is self-contained; a fresh decoder costs < 1 ms)."""
    ctx: Any = av.CodecContext.create(codec, "r")
    if extradata:
        ctx.extradata = extradata
    ctx.thread_count = 1  # one frame: threads would only add start-up cost
    try:
        frames = list(ctx.decode(packet)) + list(ctx.decode(None))
    except av.FFmpegError as exc:
        logger.debug("keyframe did not decode: %s", exc)
        return None
    return frames[-1] if frames else None


def _keyframe(
    frame: Any, pts: float, start: datetime | None, anchor: float, delta_bytes: float | None = None
) -> KeyFrame:
    plane = frame.to_ndarray(format="gray")  # the Y plane: no colour conversion
    wall = None if start is None else start + timedelta(seconds=pts - anchor)
    return KeyFrame(frame, np.ascontiguousarray(plane), pts, wall, delta_bytes)


@dataclass(slots=True)
class _Segment:
    """What a full read of a segment taught: enough to read only its tail next time."""

    path: Path
    anchor: float  # the segment's first timestamp (s): media time 0
    codec: str
    extradata: bytes | None
    gop_bytes: int  # bytes between its last two keyframes (0: not seen yet)


def _scan(media: Path, skip: int) -> tuple[Any, Any, float, int, float | None] | None:
    """Demux ``media`` from byte ``skip``: (video stream, last complete keyframe packet, first
    timestamp, bytes between the last two keyframes, median size of the non-key packets), or
    None without a complete keyframe."""
    # Opening probes the streams by reading (and decoding) up to probesize bytes, 5 MB by
    # default: 15-20 ms, more than the demux itself. The PMT names the codec and the first
    # keyframe's parameter sets are within 32 KB; the decoder is ours anyway (_decode).
    options = {"analyzeduration": "0", "probesize": "32768"}
    if skip:
        options["skip_initial_bytes"] = str(skip)
    with av.open(str(media), "r", format="mpegts", options=options) as ic:
        if not ic.streams.video:
            return None
        vs = ic.streams.video[0]
        first = (ic.start_time or 0) / 1_000_000
        last_key: Any = None
        complete: Any = None
        key_pos: list[int] = []
        deltas: list[int] = []
        try:
            for packet in ic.demux(vs):
                if packet.size == 0 or packet.pts is None:
                    continue
                if last_key is not None:
                    complete = last_key  # another packet follows it: it is whole
                if packet.is_keyframe:
                    last_key = packet
                    if packet.pos is not None and packet.pos >= 0:
                        key_pos = [*key_pos[-1:], packet.pos]
                else:
                    deltas.append(packet.size)
        except av.FFmpegError as exc:  # the tail may be half written
            logger.debug("open segment ends mid-packet: %s", exc)
        if complete is None:
            return None
        gop = key_pos[1] - key_pos[0] if len(key_pos) == 2 else 0
        # Frames identical to the one before encode to nearly nothing (all macroblocks skipped).
        delta = float(np.median(deltas)) if deltas else None
        return vs, complete, first, gop, delta


class SegmentReader:
    """One camera's newest complete keyframe, reading only the tail of a segment it has seen.

    Demuxing dominates the cost (a 10 s segment of a 4 Mbps camera is 5 MB; decoding the one
    keyframe is a few ms), so after the first full read of a segment only its last few GOPs
    are read (``skip_initial_bytes``; the TS muxer repeats PAT/PMT every 100 ms and the codec
    parameters of the full read are kept). A tail without a complete keyframe falls back to a
    full read.
    """

    TAIL_GOPS = 2.2  # two GOPs always hold one whole keyframe and a packet after it
    MIN_TAIL = 64 * 1024

    def __init__(self) -> None:
        self._seg: _Segment | None = None
        self.tail_reads = 0
        self.full_reads = 0

    def newest(self, media: Path, start: datetime | None) -> KeyFrame | None:
        """The last complete keyframe of the (growing) MPEG-TS segment; None if none yet."""
        try:
            seg = self._seg if self._seg is not None and self._seg.path == media else None
            if seg is not None and seg.gop_bytes:  # GOP size unknown: read it all (young)
                window = max(int(self.TAIL_GOPS * seg.gop_bytes), self.MIN_TAIL)
                size = media.stat().st_size
                if size > window:
                    found = _scan(media, (size - window) // 188 * 188)
                    if found is not None:
                        self.tail_reads += 1
                        vs, packet, _first, gop, delta = found
                        seg.gop_bytes = gop or seg.gop_bytes
                        return self._key(seg, packet, start, delta)
            found = _scan(media, 0)
            self.full_reads += 1
            if found is None:
                return None
            vs, packet, first, gop, delta = found
            ctx = vs.codec_context
            seg = _Segment(media, first, ctx.name, bytes(ctx.extradata) if ctx.extradata else None, gop)
            self._seg = seg
            return self._key(seg, packet, start, delta)
        except (av.FFmpegError, OSError) as exc:
            logger.debug("no picture yet in %s: %s", media.name, exc)
            return None

    @staticmethod
    def _key(seg: _Segment, packet: Any, start: datetime | None, delta: float | None) -> KeyFrame | None:
        frame = _decode(seg.codec, seg.extradata, packet)
        if frame is None:
            return None
        return _keyframe(frame, float(packet.pts * packet.time_base), start, seg.anchor, delta)


def newest_keyframe(media: Path, start: datetime | None) -> KeyFrame | None:
    """The last complete keyframe of a (growing) MPEG-TS segment, decoded alone; None if none yet."""
    return SegmentReader().newest(media, start)


def file_keyframes(path: Path, every_seconds: float, start: datetime | None = None) -> Iterator[KeyFrame]:
    """A finished file's keyframes, one per ``every_seconds`` of media time, each decoded alone
    (as :func:`newest_keyframe` does), stamped ``start`` + media time, with the median size of
    the non-key frames since the previous one yielded (what the live reader's tail holds)."""
    with av.open(str(path), "r") as ic:
        vs = ic.streams.video[0]
        anchor = (ic.start_time or 0) / 1_000_000
        due: float | None = None
        deltas: list[int] = []
        for packet in ic.demux(vs):
            if packet.size == 0 or packet.pts is None:
                continue
            if not packet.is_keyframe:
                deltas.append(packet.size)
                continue
            pts = float(packet.pts * packet.time_base)
            if due is not None and pts < due:
                continue
            extradata = bytes(vs.codec_context.extradata) if vs.codec_context.extradata else None
            frame = _decode(vs.codec_context.name, extradata, packet)
            if frame is None:
                continue
            due = pts + every_seconds - 0.5 * every_seconds / 10  # keyframe times jitter a little
            delta = float(np.median(deltas)) if deltas else None
            deltas = []
            yield _keyframe(frame, pts, start, anchor, delta)


def snapshot(frame: Any, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", frame.to_ndarray(format="bgr24"), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return buf.tobytes() if ok else b""


class CameraWatch:
    """One camera: its checker state and the observation made from each new keyframe."""

    def __init__(self, camera_id: str, thresholds: CheckThresholds, snapshot_quality: int = 80) -> None:
        self.camera_id = camera_id
        self.checker = PictureChecker(thresholds)
        self.snapshot_quality = snapshot_quality
        self.last_result: CheckResult | None = None

    def observe(self, key: KeyFrame, fallback_at: datetime) -> PictureObservation:
        at = key.wall or fallback_at
        result = self.checker.check(key.gray, at, key.delta_bytes)
        self.last_result = result
        # The JPEG is the evidence of an alert: made when something is wrong or people were
        # counted (the engine compares the count with the room's expected occupancy).
        jpeg = snapshot(key.frame, self.snapshot_quality) if result.faults or result.person_count else b""
        if result.faults:
            logger.info(
                "picture fault",
                extra={"camera": self.camera_id, "faults": sorted(f.value for f in result.faults)},
            )
        return PictureObservation(self.camera_id, at, result.faults, result.person_count, jpeg)


Sink = Callable[[PictureObservation], None]


class PictureWatcher:
    """A thread sampling every recording camera's open segment every ``interval`` seconds."""

    def __init__(
        self,
        spool: Path,
        cameras: Callable[[], list[str]],
        sink: Sink,
        thresholds: CheckThresholds,
        clock: Clock,
        interval: float = 2.0,
        snapshot_quality: int = 80,
    ) -> None:
        self.spool = spool
        self._cameras = cameras
        self._sink = sink
        self._thresholds = thresholds
        self._clock = clock
        self.interval = interval
        self._quality = snapshot_quality
        self._watches: dict[str, CameraWatch] = {}
        self._last_key: dict[str, tuple[Path, float]] = {}
        self._readers: dict[str, SegmentReader] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.cpu_seconds = 0.0  # thread CPU spent sampling (decode + checks), for metrics/bench
        self.samples = 0

    def sample(self, camera_id: str) -> PictureObservation | None:
        """Check the camera's newest keyframe if it is new; the observation (not yet sunk)."""
        found = growing_segment(self.spool, camera_id)
        if found is None:
            return None
        media, start = found
        reader = self._readers.get(camera_id)
        if reader is None:
            reader = self._readers[camera_id] = SegmentReader()
        key = reader.newest(media, start)
        if key is None:
            return None
        ident = (media, key.pts)
        if self._last_key.get(camera_id) == ident:
            return None  # no new keyframe since the last sample: packets are not flowing
        self._last_key[camera_id] = ident
        watch = self._watches.get(camera_id)
        if watch is None:
            watch = self._watches[camera_id] = CameraWatch(camera_id, self._thresholds, self._quality)
        return watch.observe(key, datetime.fromtimestamp(self._clock.wall(), UTC))

    def run_once(self) -> None:
        for camera_id in self._cameras():
            if self._stop.is_set():
                return
            cpu = time.thread_time()
            try:
                obs = self.sample(camera_id)
            except Exception:  # one camera's bad file must not stop the others' checks
                logger.exception("picture check failed", extra={"camera": camera_id})
                continue
            finally:
                self.cpu_seconds += time.thread_time() - cpu
            if obs is None:
                continue
            self.samples += 1
            try:
                self._sink(obs)
            except Exception:
                logger.exception("picture sink failed", extra={"camera": camera_id})

    def _loop(self) -> None:
        next_due = time.monotonic()
        while not self._stop.is_set():
            self.run_once()
            next_due += self.interval
            delay = next_due - time.monotonic()
            if delay < 0:  # fell behind (slow machine): skip, do not burst
                next_due = time.monotonic()
                delay = 0.0
            self._stop.wait(delay)

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="picture-watch", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
