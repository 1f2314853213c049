"""RTSP input through PyAV/libavformat: open, probe, read packets, close. The PyAV boundary for input:
every ``av.error`` / ``OSError`` leaves this module as a :mod:`domain.errors` stream error.

Packets are only demuxed, never decoded. The probe is kept small (the SDP's parameter sets give
codec and resolution) so a reconnect takes a fraction of a second.
"""

from __future__ import annotations

import errno
import logging
import time
from collections.abc import Iterator
from typing import Any

import av
import av.error

from domain.credentials import CameraLogin, Redactor, redact_url, with_login
from domain.errors import StreamClosed, StreamError, StreamStalled
from domain.types import StreamInfo
from recorders.parameter_sets import join_access_unit
from recorders.stall_watchdog import StallWatchdog, session_socket, socket_fds

log = logging.getLogger(__name__)

# Codecs the MPEG-TS muxer carries as sent. Anything else cannot be recorded without transcoding.
VIDEO_CODECS = frozenset({"h264", "hevc"})
AUDIO_CODECS = frozenset({"pcm_alaw", "pcm_mulaw", "aac", "mp2", "mp3", "opus"})
# 8K UHD is 7680x4320; a larger claim is a broken or hostile SPS, not a camera.
MAX_DIMENSION = 8192
MAX_PIXELS = 7680 * 4320
# The probe's decoders: libavformat opens one per stream to fill in what the SDP does not say.
# Nothing here needs a decoded picture (codec and size come from the parameter sets), so frames
# are skipped: an open costs about half the CPU (a 1080p keyframe decode, ~5 ms, per connect)
# and a hostile stream's picture is never allocated (max_pixels stays as a second bound).
_PROBE_DECODER = {"max_pixels": str(MAX_PIXELS), "skip_frame": "all"}

# Reads are bounded by the socket's own I/O timeout, not by PyAV's read timeout: PyAV's interrupt
# callback takes the GIL and calls time.monotonic() every time libavformat checks it (each poll and
# recv, hundreds of times a second per camera), which with dozens of camera threads made GIL hand-offs
# a large share of the recorder's CPU (docs/design/recorder.md). The open stays bounded by that callback.
# A read that gets bytes but never a packet is bounded by recorders/stall_watchdog.py instead, at
# stall_seconds plus this margin (the socket timeout fires first when the camera is silent).
WATCHDOG_MARGIN_SECONDS = 2.0
# A read that took longer than this waited for the network: the socket was drained.
READ_WAITED_SECONDS = 0.002


def _is_connection_error(exc: BaseException) -> bool:
    code = getattr(exc, "errno", None)
    return code in (
        errno.ECONNREFUSED,
        errno.ECONNRESET,
        errno.ECONNABORTED,
        errno.EPIPE,
        errno.ETIMEDOUT,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.EIO,
    ) or isinstance(
        exc,
        (
            ConnectionError,
            av.error.ConnectionRefusedError,
            av.error.ConnectionResetError,
            av.error.ConnectionAbortedError,
            av.error.BrokenPipeError,
            av.error.EOFError,
        ),
    )


def map_error(
    exc: BaseException,
    url: str,
    during: str,
    silent_for: float | None = None,
    login: CameraLogin | None = None,
) -> StreamError:
    """One av/OS error -> the domain error (StreamStalled, StreamClosed or StreamError).

    libavformat's texts quote the URL they were given, login included: the text is redacted
    here, and the error carries the URL without its secrets, so no caller can pass them on."""
    text = Redactor.for_camera(url, login).text(f"{type(exc).__name__}: {exc}")
    url = redact_url(url)
    if isinstance(exc, av.error.ExitError | av.error.TimeoutError | TimeoutError):
        if during == "read":
            silent = f" for about {silent_for:.1f} s" if silent_for is not None else ""
            return StreamStalled(f"no packets from camera{silent} ({text})", url=url, during=during)
        return StreamClosed(f"camera did not answer in time while {during} ({text})", url=url, during=during)
    if _is_connection_error(exc):
        return StreamClosed(f"connection lost while {during} ({text})", url=url, during=during)
    return StreamError(f"camera stream unusable while {during} ({text})", url=url, during=during)


def _joined(codec: str, first: Any, more: Any) -> Any:
    """A packet holding both packets' bytes as one access unit, with the first one's times."""
    joined = av.Packet(join_access_unit(codec, bytes(first), bytes(more)))
    joined.stream = first.stream
    joined.pts, joined.dts = first.pts, first.dts
    joined.is_keyframe = True
    return joined


def with_prefix(packet: Any, prefix: bytes) -> Any:
    """The packet with ``prefix`` (parameter sets) in front of its bytes, times and flags kept."""
    out = av.Packet(prefix + bytes(packet))
    out.stream = packet.stream
    out.pts, out.dts = packet.pts, packet.dts
    out.is_keyframe = packet.is_keyframe
    return out


class RtspSource:
    """One RTSP session (TCP interleaved). Use :meth:`open`, iterate :meth:`packets`, then :meth:`close`."""

    def __init__(
        self,
        url: str,
        open_timeout: float,
        stall_seconds: float,
        analyzeduration_us: int = 100_000,
        probesize: int = 32_768,
        read_pause_seconds: float = 0.0,
        login: CameraLogin | None = None,
    ) -> None:
        # Only av.open sees the URL with the login; everything this class says names the camera
        # by ``self.url``, without it.
        self.url = redact_url(url)
        self._dial = with_login(url, login)
        self._login = login
        self._redact = Redactor.for_camera(url, login)
        self._open_timeout = open_timeout
        self._stall = stall_seconds
        self._read_pause = read_pause_seconds
        self._options = {
            "rtsp_transport": "tcp",
            # Socket I/O timeout in microseconds (FFmpeg's RTSP ``timeout``): a read on a silent
            # connection fails with ETIMEDOUT after the stall budget; it also bounds connect and
            # TEARDOWN on a dead peer. The interrupt callback (av.open's timeout) bounds only the open.
            "timeout": str(int(min(open_timeout, stall_seconds) * 1_000_000)),
            "analyzeduration": str(analyzeduration_us),
            "probesize": str(probesize),
            # No "nobuffer": the packets read while probing (the camera's first keyframe among
            # them) must be handed on, not dropped, or a run starts a whole GOP late.
        }
        self._container: Any = None
        self._watchdog: StallWatchdog | None = None
        self.video_index = -1
        self.audio_index = -1
        self.streams: list[Any] = []  # recorded input streams, output order (video first)
        self.info: StreamInfo | None = None

    # -- lifecycle ----------------------------------------------------------------------------
    def open(self) -> StreamInfo:
        sockets_before = socket_fds()
        try:
            self._container = av.open(
                self._dial,
                options=self._options,
                stream_options=[_PROBE_DECODER] * 4,  # type: ignore[list-item]  # stub: list[str]; takes dicts
                timeout=(self._open_timeout, None),
            )
        except Exception as exc:
            raise map_error(exc, self._dial, "connecting", login=self._login) from exc
        # bytes without packets would keep one read going for ever (see stall_watchdog.py)
        self._watchdog = StallWatchdog(
            self.url, session_socket(self.url, sockets_before), self._stall + WATCHDOG_MARGIN_SECONDS
        )
        try:
            return self._select_streams()
        except BaseException:
            self.close()
            raise

    def _select_streams(self) -> StreamInfo:
        container = self._container
        # a stream libavformat could not identify has no codec context at all (a broken SDP)
        video = next(
            (
                s
                for s in container.streams.video
                if s.codec_context is not None and s.codec_context.name in VIDEO_CODECS
            ),
            None,
        )
        if video is None:
            found = (
                ", ".join(
                    f"{s.type}:{s.codec_context.name if s.codec_context is not None else 'unknown'}"
                    for s in container.streams
                )
                or "nothing"
            )
            raise StreamError(
                f"no recordable video stream (H.264/H.265) in the camera's offer: {found}", url=self.url
            )
        cc = video.codec_context
        if not cc.width or not cc.height:
            raise StreamError(
                "camera's video stream has no resolution after probing (missing or "
                "invalid SPS, e.g. a picture size libavcodec refuses)",
                url=self.url,
            )
        if cc.width > MAX_DIMENSION or cc.height > MAX_DIMENSION or cc.width * cc.height > MAX_PIXELS:
            # refused before anything (live view, playback, export) decodes and allocates such frames
            raise StreamError(
                f"camera claims a {cc.width}x{cc.height} picture; more than "
                f"{MAX_DIMENSION} pixels a side or {MAX_PIXELS} in all is refused",
                url=self.url,
            )
        audio = next(
            (
                s
                for s in container.streams.audio
                if s.codec_context is not None and s.codec_context.name in AUDIO_CODECS
            ),
            None,
        )
        self.streams = [video] if audio is None else [video, audio]
        self.video_index = video.index
        self.audio_index = -1 if audio is None else audio.index
        acc = None if audio is None else audio.codec_context
        self.info = StreamInfo(
            video_codec=cc.name,
            width=int(cc.width),
            height=int(cc.height),
            audio_codec=None if acc is None else acc.name,
            audio_sample_rate=None if acc is None else int(acc.sample_rate),
            audio_channels=None if acc is None else int(acc.channels),
        )
        return self.info

    @property
    def stream_count(self) -> int:
        """Streams in the RTSP session (FFmpeg maps pts to the RTCP clock only when there are >= 2)."""
        return 0 if self._container is None else len(self._container.streams)

    @property
    def rtcp_epoch(self) -> float | None:
        """Unix time of pts 0 from the camera's first RTCP SR, or None before it arrived."""
        if self._container is None:
            return None
        value = self._container.start_time_realtime
        if value is None or value <= 0:
            return None
        return float(value) / 1e6

    def packets(self) -> Iterator[Any]:
        """Access units of the recorded streams, as demuxed. Ends by raising a domain error, never
        silently.

        A video keyframe is handed on when the next video packet arrives (about a frame later): if
        that packet has the keyframe's timestamp it is another slice of the same picture, which
        libavformat split off (parameter sets repeated before every IDR slice), and is joined to
        it (``parameter_sets.join_access_unit``). Other packets pass at once.

        Read pacing (``read_pause_seconds`` > 0): when a read had to wait for the network, the next
        one starts only after that pause. A camera sends each frame as a burst of RTP packets, so
        reading as they come wakes the thread once or twice per frame (~45 times a second); after
        a pause the reads find several frames waiting in the socket and run without blocking. The
        cost is the pause as extra delay before a packet reaches the spool; the packets' receipt
        times stay usable because every cycle ends with a read that met the newest packet as it
        arrived (the receipt anchor keeps the minimum offset). docs/bench/recorder.md, "read pacing"."""
        container = self._container
        started = time.monotonic()
        monotonic, sleep, pause = time.monotonic, time.sleep, self._read_pause
        video = self.video_index
        codec = self.info.video_codec if self.info is not None else "h264"
        held: Any = None  # a keyframe whose slices may still follow
        try:
            # demux(streams) yields only the recorded streams (others are discarded by libavformat);
            # empty packets are its end-of-stream flush markers.
            watchdog = self._watchdog
            ready = monotonic()
            for packet in container.demux(self.streams):
                if packet.size:
                    got = monotonic()
                    if watchdog is not None:
                        watchdog.last = got
                    if packet.stream_index == video:
                        if held is not None:
                            if packet.pts is not None and packet.pts == held.pts:
                                held = _joined(codec, held, packet)
                                packet = None
                            else:
                                out, held = held, None
                                yield out
                        if packet is not None and packet.is_keyframe:
                            held, packet = packet, None
                    if packet is not None:
                        yield packet
                    if pause and got - ready > READ_WAITED_SECONDS:
                        sleep(pause)
                    ready = monotonic()
        except GeneratorExit:
            raise
        except Exception as exc:
            if held is not None:
                out, held = held, None
                yield out  # received whole: recorded before the failure is reported
            if self._watchdog is not None and self._watchdog.fired:
                raise StreamStalled(
                    f"camera sent data but no usable packet for {self._watchdog.limit:.1f} s "
                    f"(undeclared payload or codec?); session dropped "
                    f"({self._redact.text(f'{type(exc).__name__}: {exc}')})",
                    url=self.url,
                    during="read",
                ) from exc
            silent = self._stall if time.monotonic() - started > self._stall else None
            raise map_error(exc, self._dial, "read", silent, login=self._login) from exc
        if held is not None:
            yield held
        raise StreamClosed("camera ended the stream (end of file / RTCP BYE)", url=self.url)

    def close(self) -> None:
        """Close the session; libavformat sends RTSP TEARDOWN so the camera ends it (no stale
        sessions). Bounded by the socket timeout and the interrupt callback; never raises."""
        container, self._container = self._container, None
        if self._watchdog is not None:
            # before libavformat closes the descriptor, whose number could then be reused
            self._watchdog.stop()
        if container is None:
            return
        started = time.monotonic()
        try:
            container.close()
        except Exception as exc:
            log.warning("rtsp close failed", extra={"url": self.url, "error": self._redact.text(str(exc))})
        took = time.monotonic() - started
        if took > 1.0:
            log.warning("rtsp close was slow", extra={"url": self.url, "seconds": round(took, 2)})
