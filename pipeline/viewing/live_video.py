"""Live video: each camera's growing spool segment as fragmented MP4 for Media Source Extensions.

**Why fMP4 over a WebSocket and not LL-HLS.** The recorder already writes every camera's open
segment into the spool packet by packet (MPEG-TS, flushed per packet). Tailing that file and
remuxing each packet into its own MP4 fragment (``frag_every_frame``) puts a frame on the wire
one frame interval after the recorder wrote it; the browser appends it to a ``SourceBuffer``.
LL-HLS would need partial segments, a blocking playlist and preload hints — more moving parts,
and its latency floor is the part duration plus the playlist round trips (1–2 s at best).
On the WebSocket the floor is the network; the page chases the live edge.

**One producer per camera, however many viewers.** :class:`LiveChannel` runs one thread that
tails the camera's open segment (``recorders.spool.growing_segment``), follows on to the next
segment when it closes, and publishes an init segment (``ftyp`` + ``moov``) and then one
``moof`` + ``mdat`` per frame. Each viewer has a bounded queue; when a viewer cannot keep up
its queue overflows and the viewer is dropped — the producer never waits for anyone. A viewer
joining mid-stream gets the init segment and the fragments since the last keyframe, so its
decoder starts at a keyframe. The producer stops a few seconds after the last viewer left.

**Codecs.** H.264 is copied. H.265 (Chromium plays no HEVC) gets an H.264 rendition made by the
one producer (decode + libx264 ``ultrafast``/``zerolatency``, 1 s GOP): its cost is paid once per
watched camera, not per viewer. **No audio in live**: the grid plays muted (browsers only
autoplay muted video, and a wall of rooms with sound is noise); G.711 → AAC would cost an
encoder per camera and AAC's frame delay, and an audio track whose buffered range lags the video
stalls an MSE source buffer. Listening to a room is playback's job (with AAC audio).

**Time.** Media time in the output is wall time (the recorder's clock: segment start from the
partial marker + packet time) minus the stream's ``origin``; the page shows
``now − (origin + currentTime)`` as the latency, and ``edge_lag_ms`` in the hello says how much
of it the recording itself brings (its newest frame's age when the producer reached it).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from domain.types import iso
from recorders.spool import PARTIAL_SUFFIX, growing_segment

logger = logging.getLogger(__name__)

MOVFLAGS = "empty_moov+default_base_moof+frag_every_frame"
VIDEO_TB = Fraction(1, 90000)
POLL_SECONDS = 0.02  # how often a tail at the end of the growing file looks for more bytes
QUEUE_ITEMS = 200  # fragments (8 s at 25 fps) a viewer may fall behind before it is dropped
IDLE_STOP_SECONDS = 5.0  # a producer outlives its last viewer this long (page reloads reuse it)
STALE_SECONDS = 4.0  # an open segment that stopped growing while a newer one is open: move on
FALL_BEHIND_US = 3_000_000  # producer this much further behind than at the edge: skip ahead
NEXT_SEGMENT_SECONDS = 3.0  # how long to wait for the next segment before starting afresh
MAX_GOP_FRAGMENTS = 300  # kept for joining viewers; a camera with a longer GOP joins late
_HEVC = {"hevc", "h265"}


class SpoolTail:
    """A file-like reader of one growing segment: ``read`` waits for more bytes while the
    segment is open (its partial marker exists) and ends when it is closed."""

    def __init__(self, media: Path, stop: Callable[[], bool], newer: Callable[[], bool]) -> None:
        self._file = media.open("rb")
        self._marker = media.with_name(media.name[: -len(".ts")] + PARTIAL_SUFFIX)
        self._stop = stop
        self._newer = newer
        self.at_edge = False  # set once a read had to wait: everything before is backlog

    def read(self, size: int = -1) -> bytes:
        idle_since: float | None = None
        while True:
            data = self._file.read(size)
            if data:
                return data
            if self._stop():
                return b""
            if not self._marker.exists():
                # closed: the recorder fsyncs the media before removing the marker
                return self._file.read(size)
            self.at_edge = True
            now = time.monotonic()
            if idle_since is None:
                idle_since = now
            elif now - idle_since > STALE_SECONDS and self._newer():
                logger.warning("open segment %s stopped growing; following the newer one", self._marker)
                return b""
            time.sleep(POLL_SECONDS)

    def close(self) -> None:
        self._file.close()


class _Boxes:
    """Cuts the muxer's output into top-level MP4 boxes: the init segment, then fragments."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.init: bytes | None = None

    def write(self, data: bytes) -> int:
        self.buf += data
        return len(data)

    def boxes(self) -> list[tuple[bytes, bytes]]:
        out: list[tuple[bytes, bytes]] = []
        while len(self.buf) >= 8:
            size = int.from_bytes(self.buf[:4], "big")
            if size < 8:
                raise ValueError(f"bad MP4 box size {size}")
            if len(self.buf) < size:
                break
            kind = bytes(self.buf[4:8])
            out.append((kind, bytes(self.buf[:size])))
            del self.buf[:size]
        return out


def codec_string(init: bytes) -> str:
    """The RFC 6381 codec of an init segment's H.264 track (``avc1.PPCCLL``) from its avcC."""
    at = init.find(b"avcC")
    if at < 0 or len(init) < at + 8:
        return "avc1.42e01e"
    return f"avc1.{init[at + 5]:02x}{init[at + 6]:02x}{init[at + 7]:02x}"


class FragmentMuxer:
    """Packets (copied) or frames (encoded) in; init segment and per-frame fragments out."""

    def __init__(self, template: Any, transcode: bool, origin_us: int) -> None:
        self.sink = _Boxes()
        self.origin_us = origin_us
        self.oc: Any = av.open(
            self.sink, "w", format="mp4", options={"movflags": MOVFLAGS, "flush_packets": "1"}
        )
        if transcode:
            vs = self.oc.add_stream("libx264", rate=template.average_rate or 25)
            vs.width, vs.height, vs.pix_fmt = template.width, template.height, "yuv420p"
            vs.options = {"preset": "ultrafast", "tune": "zerolatency", "crf": "26", "g": "25", "bf": "0"}
        else:
            vs = self.oc.add_stream_from_template(template)
        vs.time_base = VIDEO_TB
        self.video = vs
        self.last_dts = -1
        self._keys: deque[bool] = deque()  # keyframe flags of muxed packets not yet out as fragments
        self._moof: bytes | None = None
        self._head = b""

    def _ticks(self, wall_us: int) -> int:
        return (wall_us - self.origin_us) * 9 // 100

    def packet(
        self, packet: Any, dts_wall_us: int, pts_wall_us: int, dur_us: int
    ) -> list[tuple[str, bytes, bool]]:
        dts = self._ticks(dts_wall_us)
        pts = max(self._ticks(pts_wall_us), dts)
        if dts <= self.last_dts:  # the media clock must run forward (segment joins, clock slews)
            pts, dts = pts + self.last_dts + 1 - dts, self.last_dts + 1
        self.last_dts = dts
        packet.stream = self.video
        packet.time_base = VIDEO_TB
        packet.dts, packet.pts = dts, pts
        packet.duration = max(dur_us * 9 // 100, 1)
        self._keys.append(bool(packet.is_keyframe))
        self.oc.mux(packet)
        return self._drain()

    def frame(self, frame: Any, wall_us: int) -> list[tuple[str, bytes, bool]]:
        pts = self._ticks(wall_us)
        if pts <= self.last_dts:
            pts = self.last_dts + 1
        self.last_dts = pts
        frame.pts = pts
        frame.time_base = VIDEO_TB
        frame.pict_type = av.video.frame.PictureType.NONE
        for packet in self.video.encode(frame):
            self._keys.append(bool(packet.is_keyframe))
            self.oc.mux(packet)
        return self._drain()

    def _drain(self) -> list[tuple[str, bytes, bool]]:
        out: list[tuple[str, bytes, bool]] = []
        for kind, box in self.sink.boxes():
            if self.sink.init is None:
                self._head += box
                if kind == b"moov":
                    self.sink.init = self._head
                    out.append(("init", self._head, False))
            elif kind == b"moof":
                self._moof = box
            elif kind == b"mdat" and self._moof is not None:
                key = self._keys.popleft() if self._keys else False
                out.append(("frag", self._moof + box, key))
                self._moof = None
        return out

    def close(self) -> None:
        try:
            self.oc.close()
        except (av.FFmpegError, ValueError, OSError) as exc:  # nothing more is sent anyway
            logger.debug("closing a live muxer: %s", exc)


class Viewer:
    """One WebSocket's bounded queue, filled from the producer thread, drained on the event loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop, maxsize: int = QUEUE_ITEMS) -> None:
        self.loop = loop
        self.queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue(maxsize)
        self.dropped = False

    def offer(self, kind: str, payload: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(self._put, kind, payload)
        except RuntimeError:  # the viewer's loop is gone
            self.dropped = True

    def _put(self, kind: str, payload: Any) -> None:
        if self.dropped:
            return
        try:
            self.queue.put_nowait((kind, payload))
        except asyncio.QueueFull:
            # Too slow: drop this viewer, never the producer. The sender sees "dropped" next.
            self.dropped = True
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(("dropped", None))


class LiveChannel:
    """The one producer of a camera's live fMP4 and the viewers it feeds."""

    def __init__(self, spool: Path, camera_id: str) -> None:
        self.spool = spool
        self.camera_id = camera_id
        self._lock = threading.Lock()
        self._viewers: set[Viewer] = set()
        self._hello: dict[str, Any] | None = None
        self._init: bytes | None = None
        self._gop: list[bytes] = []
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._left_at = time.monotonic()
        self.fragments = 0  # published so far (tests and metrics)
        self.producers_started = 0
        self.skips = 0  # times the producer fell behind and skipped to the edge
        self.edge_lag: float | None = None  # s: age of the newest recorded frame when it caught up

    def subscribe(self, viewer: Viewer) -> None:
        with self._lock:
            self._viewers.add(viewer)
            if self._hello is not None and self._init is not None:
                viewer.offer("hello", self._hello)
                viewer.offer("init", self._init)
                for frag in self._gop:
                    viewer.offer("frag", frag)
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._start_producer()

    def _start_producer(self) -> None:  # under self._lock
        self._thread = threading.Thread(target=self._run, name=f"live-{self.camera_id}", daemon=True)
        self.producers_started += 1
        self._thread.start()

    def unsubscribe(self, viewer: Viewer) -> None:
        with self._lock:
            self._viewers.discard(viewer)
            if not self._viewers:
                self._left_at = time.monotonic()

    @property
    def viewers(self) -> int:
        with self._lock:
            return len(self._viewers)

    def stop(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(5)

    def _idle(self) -> bool:
        """True when the producer should end (stop asked, or nobody watched for a while)."""
        if self._stop.is_set():
            return True
        with self._lock:
            return not self._viewers and time.monotonic() - self._left_at > IDLE_STOP_SECONDS

    def _publish(self, items: list[tuple[str, bytes, bool]], hello: dict[str, Any] | None) -> None:
        with self._lock:
            for kind, data, key in items:
                if kind == "init":
                    self._hello, self._init, self._gop = hello, data, []
                    for v in self._viewers:
                        v.offer("hello", hello)
                        v.offer("init", data)
                    continue
                if key:
                    self._gop = []
                if len(self._gop) < MAX_GOP_FRAGMENTS:
                    self._gop.append(data)
                self.fragments += 1
                for v in self._viewers:
                    v.offer("frag", data)

    def _run(self) -> None:
        try:
            while not self._idle():
                found = growing_segment(self.spool, self.camera_id)
                if found is None or found[1] is None:
                    time.sleep(0.25)
                    continue
                try:
                    self._stream(found[0], found[1])
                except (av.FFmpegError, OSError, ValueError, IndexError) as exc:
                    logger.warning("live stream of %s restarts: %s", self.camera_id, exc)
                    time.sleep(0.5)
        finally:
            with self._lock:
                self._hello, self._init, self._gop = None, None, []
                if self._thread is threading.current_thread():
                    self._thread = None
                    # a viewer came while this producer was deciding to end: it needs one
                    if self._viewers and not self._stop.is_set():
                        self._start_producer()

    def _stream(self, media: Path, start: datetime) -> None:
        """Tail ``media`` and the segments after it into one fMP4 stream until idle."""
        mux: FragmentMuxer | None = None
        catch_up = True  # the first segment's backlog: start at the keyframe nearest the edge
        try:
            while not self._idle():
                mux = self._segment(media, start, mux, catch_up)
                catch_up = False
                nxt = self._next_segment(media)
                if nxt is None:
                    return
                media, start = nxt
        finally:
            if mux is not None:
                mux.close()

    def _next_segment(self, media: Path) -> tuple[Path, datetime] | None:
        deadline = time.monotonic() + NEXT_SEGMENT_SECONDS
        while time.monotonic() < deadline and not self._idle():
            found = growing_segment(self.spool, self.camera_id)
            if found is not None and found[0] != media and found[1] is not None:
                return found[0], found[1]
            time.sleep(POLL_SECONDS)
        return None

    def _segment(
        self, media: Path, start: datetime, mux: FragmentMuxer | None, catch_up: bool
    ) -> FragmentMuxer | None:
        start_us = int(start.timestamp() * 1_000_000)

        def newer() -> bool:
            found = growing_segment(self.spool, self.camera_id)
            return found is not None and found[0] != media

        tail = SpoolTail(media, self._idle, newer)
        try:
            ic: Any = av.open(
                tail, "r", format="mpegts", options={"analyzeduration": "0", "probesize": "4096"}
            )
        except Exception:
            tail.close()
            raise
        try:
            if not ic.streams.video:
                return mux
            vin = ic.streams.video[0]
            transcode = (vin.codec_context.name or "") in _HEVC
            dec = vin.codec_context if transcode else None
            anchor = ic.start_time if ic.start_time is not None else 0
            fps = vin.average_rate or Fraction(25)
            frame_us = int(1_000_000 / fps)
            backlog: list[tuple[Any, int, int, int]] = []
            edge_lag: float | None = None  # how far behind "now" the newest frame was at the edge

            def wall(ts: int) -> int:
                return start_us + int(ts * vin.time_base * 1_000_000) - anchor

            def feed(packet: Any, dts_us: int, pts_us: int, dur_us: int) -> None:
                nonlocal mux
                if mux is None:
                    mux = FragmentMuxer(vin, transcode, dts_us)
                out: list[tuple[str, bytes, bool]] = []
                if dec is not None:
                    for frame in dec.decode(packet):
                        if frame.pts is not None:
                            out += mux.frame(frame, wall(frame.pts))
                else:
                    out += mux.packet(packet, dts_us, pts_us, dur_us)
                if out:
                    self._publish(out, self._hello_for(mux, transcode))

            for packet in ic.demux(vin):
                if self._idle():
                    break
                if packet.dts is None or packet.size == 0:
                    continue
                dts_us = wall(packet.dts)
                pts_us = wall(packet.pts if packet.pts is not None else packet.dts)
                dur = int(packet.duration * vin.time_base * 1_000_000) if packet.duration else frame_us
                behind = time.time() * 1_000_000 - dts_us
                if not catch_up and edge_lag is not None and behind > edge_lag + FALL_BEHIND_US:
                    # The producer fell behind the recorder (CPU starved, e.g. the H.265
                    # rendition on a busy node): skip to the keyframe nearest the edge again
                    # rather than let every viewer's latency grow. A gap in media time follows.
                    logger.warning(
                        "live %s fell %.1f s behind; skipping to the edge", self.camera_id, behind / 1e6
                    )
                    catch_up, tail.at_edge, backlog = True, False, []
                    self.skips += 1
                if catch_up:
                    if packet.is_keyframe:
                        backlog = []
                    if backlog or packet.is_keyframe:
                        backlog.append((packet, dts_us, pts_us, dur))
                    if tail.at_edge and backlog:
                        catch_up = False
                        edge_lag = time.time() * 1_000_000 - backlog[-1][1]
                        self.edge_lag = edge_lag / 1e6
                        for item in backlog:
                            feed(*item)
                        backlog = []
                    continue
                if edge_lag is None:  # following on from the previous segment: at the edge already
                    edge_lag = behind
                feed(packet, dts_us, pts_us, dur)
            return mux
        finally:
            ic.close()
            tail.close()

    def _hello_for(self, mux: FragmentMuxer, transcode: bool) -> dict[str, Any]:
        init = mux.sink.init or b""
        return {
            "type": "hello",
            "camera": self.camera_id,
            "mime": f'video/mp4; codecs="{codec_string(init)}"',
            "origin": iso(datetime.fromtimestamp(mux.origin_us / 1_000_000, UTC)),
            "origin_ms": mux.origin_us / 1000,
            "rendition": "h264" if transcode else "copy",
            # How old the newest recorded frame was when the producer reached the edge: the
            # recording itself this far behind now (a camera or recorder clock behind), not the
            # network or the viewer; the page names the cause when it warns.
            "edge_lag_ms": None if self.edge_lag is None else round(self.edge_lag * 1000),
        }


class LiveVideo:
    """The live channels of one node, one per camera, made on first use."""

    def __init__(self, spool: Path) -> None:
        self.spool = spool
        self._channels: dict[str, LiveChannel] = {}
        self._lock = threading.Lock()

    def channel(self, camera_id: str) -> LiveChannel:
        with self._lock:
            ch = self._channels.get(camera_id)
            if ch is None:
                ch = self._channels[camera_id] = LiveChannel(self.spool, camera_id)
            return ch

    def stop(self) -> None:
        with self._lock:
            channels = list(self._channels.values())
        for ch in channels:
            ch.stop()


def server_time() -> dict[str, Any]:
    """The clock message the WebSocket sends about once a second (the page's clock offset)."""
    now = datetime.now(UTC)
    return {"type": "clock", "server_time": iso(now), "server_ms": now.timestamp() * 1000}
