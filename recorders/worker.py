"""One camera's recorder: RTSP in, hashed MPEG-TS segments and gap records out (see docs/design/recorder.md).

``CameraWorker.run(stop)`` blocks; the pipeline runs each worker in its own thread (PyAV releases
the GIL while it waits on the network). Every connection attempt catches everything but
KeyboardInterrupt, so one bad camera never stops the others.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

from domain.credentials import CameraLogin, Redactor, redact_url
from domain.errors import SpoolError, StreamClosed, StreamError, StreamStalled, VauditError
from domain.types import (
    Clock,
    ClockSource,
    GapCause,
    GapRecord,
    SegmentRecord,
    from_unix,
    iso,
    segment_key,
)
from recorders.audio_track import AudioTrack
from recorders.clock import MediaClockMapper, ReceiptAnchor, SystemClock, clock_for, rtcp_agrees
from recorders.decode_order import ReorderTooDeep, VideoTimeline
from recorders.events import CameraStatus, RecorderSink
from recorders.options import RecorderOptions
from recorders.parameter_sets import SCAN_BYTES, ParameterSetError, parameter_sets, reorder_depth
from recorders.rtsp_source import RtspSource, with_prefix
from recorders.run import Run, Segment, tb_of
from recorders.segmenter import (
    ClockStep,
    SegmentPlan,
    TimestampGuard,
    TimestampJump,
    frame_ticks,
    needs_successor,
    time_untimed_video,
)
from recorders.spool import CameraSpool, ChainState, hash_file
from recorders.sync_point import SyncPointClient, SyncPointSpec, credentials_of
from recorders.ts_writer import TsWriter, buffer_bytes_for

log = logging.getLogger(__name__)

DEFAULT_FRAME_SECONDS = 0.04
MIN_AUDIO_GAP_SECONDS = 0.001  # an audio outage shorter than this is no gap
# A change of (wall - monotonic) larger than this within a run is a wall-clock step, not drift:
# NTP slews at most 500 ppm, and the recovery point the recorder promises is 1 s.
CLOCK_STEP_SECONDS = 1.0
# While the spool cannot be written, how often writing is tried again, and how many packets (about
# one GOP of a normal camera, a bound against a camera that sends no keyframes) are held meanwhile.
SPOOL_RETRY_SECONDS = 0.2
MAX_HELD_PACKETS = 2000
PROBE_BYTES = 65536
INITIAL_BYTE_RATE = 0.0  # no estimate yet: the first keyframe gives one (below)
# Until a segment of the camera has closed, its byte rate is taken as the first keyframe's size
# divided by this: a GOP of up to ~4 s whose keyframe is a third of its bytes still has at least
# that rate, so the buffer stays within write_buffer_seconds of media; the smallest buffer (2 KiB)
# for a whole first segment cost ~2,500 writes per 4 Mbit/s camera instead of ~80.
KEYFRAME_RATE_DIVISOR = 2.0


class CameraWorker:
    def __init__(
        self,
        camera_id: str,
        url: str,
        spool: Path,
        cfg: Any,
        sink: RecorderSink,
        clock: Clock | None = None,
        restart_cause: tuple[GapCause, str] | None = None,
        sync_point: SyncPointSpec | None = None,
        login: CameraLogin | None = None,
    ) -> None:
        self.camera_id = camera_id
        # What names the gap from the chain's end (state.json) to this worker's first segment:
        # our own restart, or (fleet) a hand-over from another node.
        self._restart_cause = restart_cause or (GapCause.RECORDER_RESTART, "recorder was not running")
        # ``url`` and ``login`` go to the RTSP source and the ONVIF client only; every text this
        # worker produces (gap details, status, partial markers, logs) passes ``_redact``.
        self.url = url
        self._login = login
        self._redact = Redactor.for_camera(url, login)
        self.display_url = redact_url(url)
        self.opts = RecorderOptions.from_config(cfg)
        self.sink = sink
        self.clock: Clock = clock if clock is not None else clock_for(self.opts.clock_offset_file)
        self.spool = CameraSpool(Path(spool), camera_id)
        self._state = ChainState()
        self._pending: tuple[GapCause, str] | None = None
        self._seg: Segment | None = None
        self._run: Run | None = None
        self._source: RtspSource | None = None
        self._needs_recovery = True
        self._started = False
        # status counters
        self._state_name = "stopped"
        self._connected = False
        self._reconnects = 0
        self._packets = 0
        self._bytes = 0
        self._video_frames = 0
        self._last_receipt: float | None = None
        self._last_error: str | None = None
        self._last_failure: tuple[GapCause, str] | None = None
        self._next_status = 0.0
        self._byte_rate = INITIAL_BYTE_RATE  # of the last closed segment: sizes the write buffer
        # Asks the camera for a keyframe when a session does not start with one (sync_point.py).
        self.sync: SyncPointClient | None = (
            None if sync_point is None else SyncPointClient(sync_point, camera_id, credentials_of(url, login))
        )
        self._first_video_pending = False  # the session's first video packet is still to come
        # The smallest reorder depth runs of this camera assume: raised when a stream reordered
        # deeper than its SPS declared (decode_order.ReorderTooDeep), kept for the worker's life.
        self._reorder_floor = 0
        # The latest VPS/SPS/PPS the camera sent (SDP or in-band), for segments whose first
        # keyframe comes without them.
        self._parameter_sets: bytes | None = None
        self._audio_lost_since: float | None = None  # an open audio outage (wall start), for status()
        self._audio_gap = self.opts.audio_gap_seconds
        self._tbv = 1 / 90000  # the video stream's time base (set per session)

    # -- public ---------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Record until ``stop`` is set. Closes the open segment normally on the way out."""
        backoff = self.opts.reconnect_initial_seconds
        attempt = 0
        while not stop.is_set():
            packets_before = self._packets
            try:
                if self._needs_recovery:
                    self._recover()
                attempt += 1
                if attempt > 1:
                    self._reconnects += 1
                self._set_state("connecting", connected=False)
                self._connect_and_record(stop)
            except KeyboardInterrupt:
                raise
            except Exception as exc:
                self._failed(exc)
            finally:
                self._end_run_safely()
                self._close_source()
            if stop.is_set():
                break
            if self._packets > packets_before:
                backoff = self.opts.reconnect_initial_seconds
            self._set_state("backoff", connected=False)
            stop.wait(backoff)
            backoff = min(backoff * 2, self.opts.reconnect_max_seconds)
        self._set_state("stopped", connected=False)

    def status(self) -> CameraStatus:
        run = self._run
        return CameraStatus(
            camera_id=self.camera_id,
            state=self._state_name,
            connected=self._connected,
            reconnects=self._reconnects,
            packets=self._packets,
            bytes=self._bytes,
            video_frames=self._video_frames,
            last_packet_wall=self._last_receipt,
            last_segment_end_wall=self._state.last_end,
            run_id=None if run is None else run.run_id,
            last_error=self._last_error,
            keyframe_requests=0 if self.sync is None else self.sync.granted + self.sync.failed,
            keyframe_requests_failed=0 if self.sync is None else self.sync.failed,
            audio_lost_since=self._audio_lost_since,
        )

    # -- connection -----------------------------------------------------------------------------
    def _recover(self) -> None:
        segments, gaps = self.spool.recover(self.opts.compute_sm3)
        for gap, path in gaps:
            self.sink.gap_recorded(gap, path)
        for record, media, sidecar in segments:
            self.sink.segment_closed(record, media, sidecar)
        if segments and self._last_failure is not None:
            # The recovered segment moved the chain's end: the failure that cut it names the gap.
            self._pending = self._last_failure
        self._state = self.spool.load_state()
        first, self._started = not self._started, True
        if first and self._pending is None and self._state.last_end is not None:
            self._pending = self._restart_cause
        self._needs_recovery = False

    def _connect_and_record(self, stop: threading.Event) -> None:
        source = RtspSource(
            self.url,
            self.opts.open_timeout_seconds,
            self.opts.stall_seconds,
            read_pause_seconds=self.opts.read_pause_seconds,
            login=self._login,
        )
        self._source = source
        source.open()
        self._tbv = float(source.streams[0].time_base)
        info = source.info
        codec = info.video_codec if info is not None else "h264"
        self._parameter_sets = parameter_sets(codec, source.streams[0].codec_context.extradata or b"")
        self._first_video_pending = True
        self._set_state("recording", connected=True)
        packets = source.packets()
        carry: deque[tuple[Any, float]] = deque()
        while not stop.is_set():
            run, buffered = self._begin_run(source, packets, carry, stop)
            if run is None:
                return
            self._run = run
            try:
                self._pump(run, buffered, packets, stop)
                return  # stopped
            except TimestampJump as jump:
                carry = buffered  # the offending packet and what followed it start the next run
                if isinstance(jump, ReorderTooDeep):
                    self._reorder_floor = max(self._reorder_floor, jump.needed)
                self._end_run()
                cause = GapCause.CLOCK_STEP if isinstance(jump, ClockStep) else GapCause.TIMESTAMP_JUMP
                self._note_cause(cause, str(jump))
                log.warning(
                    "%s; run split", cause.value, extra={"camera_id": self.camera_id, "detail": str(jump)}
                )
            except SpoolError as exc:
                # The camera is fine, the spool is not (disk full, read-only): keep the connection
                # rather than reconnect, which would add an RTSP open and the wait for the camera's
                # next keyframe to the gap.
                self._failed(exc)
                self._end_run_safely()
                held = self._await_writable(source, packets, stop)
                if held is None:
                    return
                carry = held
                self._set_state("recording", connected=True)

    def _await_writable(
        self, source: RtspSource, packets: Iterator[Any], stop: threading.Event
    ) -> deque[tuple[Any, float]] | None:
        """Read on while the spool cannot be written, holding the packets since the last video
        keyframe; every ``SPOOL_RETRY_SECONDS`` finish recovery and write a probe file. When that
        works the held packets start the next run, so footage resumes at the last keyframe before
        the spool came back (not at the camera's next one). None if stopped."""
        self._set_state("storage_wait", connected=True)
        held: deque[tuple[Any, float]] = deque()
        wall, mono = self.clock.wall, self.clock.monotonic
        video = source.video_index
        next_try = mono() + SPOOL_RETRY_SECONDS
        for pkt in packets:
            if pkt.stream_index == video and pkt.is_keyframe:
                held.clear()
            held.append((pkt, wall()))
            if len(held) > MAX_HELD_PACKETS:
                held.popleft()
            now = mono()
            if now < next_try:
                continue
            if stop.is_set():
                return None
            next_try = now + SPOOL_RETRY_SECONDS
            try:
                if self._needs_recovery:
                    self._recover()
                self.spool.probe_writable(PROBE_BYTES)
            except SpoolError:
                continue
            log.info("spool writable again", extra={"camera_id": self.camera_id, "held_packets": len(held)})
            return held
        raise StreamClosed("camera ended the stream (end of file / RTCP BYE)", url=self.display_url)

    def _begin_run(
        self,
        source: RtspSource,
        packets: Iterator[Any],
        carry: deque[tuple[Any, float]],
        stop: threading.Event,
    ) -> tuple[Run | None, deque[tuple[Any, float]]]:
        """Buffer packets (losing none) until the clock of the run is decided."""
        wall = self.clock.wall
        buffered = carry
        rtcp_possible = source.stream_count >= 2
        deadline = self.clock.monotonic() + self.opts.rtcp_wait_seconds
        while (
            not buffered
            or (rtcp_possible and source.rtcp_epoch is None and self.clock.monotonic() < deadline)
            or (needs_successor(buffered, source.video_index) and self.clock.monotonic() < deadline + 1.0)
        ):
            if stop.is_set():
                return None, buffered
            pkt = next(packets)
            buffered.append((pkt, wall()))
            if self._first_video_pending and pkt.stream_index == source.video_index:
                self._first_video(pkt)
        streams = source.streams
        ticks = frame_ticks(streams, source.video_index)
        time_untimed_video(buffered, source.video_index, ticks)
        time_bases = [1 / 90000] * (max(s.index for s in streams) + 1)
        for s in streams:
            time_bases[s.index] = float(s.time_base)
        anchor = ReceiptAnchor()
        for pkt, receipt in buffered:
            pts = pkt.pts if pkt.pts is not None else pkt.dts
            if pts is not None:
                anchor.add(receipt, pts * time_bases[pkt.stream_index])
        epoch = source.rtcp_epoch if rtcp_possible else None
        receipt_offset = anchor.overall_min if anchor.known else wall()
        if epoch is not None and rtcp_agrees(epoch, receipt_offset, self.opts.clock_tolerance_seconds):
            source_kind, offset = ClockSource.RTCP, epoch
        else:
            if epoch is not None:
                log.warning(
                    "camera RTCP time disagrees with receipt time; run anchored by receipt",
                    extra={"camera_id": self.camera_id, "rtcp_minus_receipt": epoch - receipt_offset},
                )
            source_kind, offset = ClockSource.RECEIPT, receipt_offset
        mapper = MediaClockMapper(0.0, offset, self.opts.max_slew_ppm)
        plan = SegmentPlan(
            self.opts.segment_seconds,
            mapper,
            offset if source_kind is ClockSource.RTCP else None,
            anchor,
            self.opts.max_segment_seconds,
        )
        guard = TimestampGuard(time_bases, self.opts.max_forward_jump_seconds)
        codec = source.info.video_codec if source.info is not None else "h264"
        run = Run(source_kind, plan, guard, source.video_index, ticks, codec)
        if source.audio_index >= 0:
            run.audio_index = source.audio_index
            run.audio = AudioTrack(self.opts.audio_gap_seconds, time_bases[source.audio_index])
        return run, buffered

    def _pump(
        self, run: Run, buffered: deque[tuple[Any, float]], packets: Iterator[Any], stop: threading.Event
    ) -> None:
        """The per-packet loop: checks in integer ticks, no logging, no allocation of our own."""
        source = self._source
        assert source is not None
        one = self._one
        # The system clock is called once per packet: skip the method indirection when it is real.
        wall = time.time if isinstance(self.clock, SystemClock) else self.clock.wall
        mono = self.clock.monotonic
        tbv = float(source.streams[0].time_base)
        while buffered:
            pkt, receipt = buffered[0]
            one(run, pkt, receipt, tbv)
            buffered.popleft()
        run.clock_base = wall() - mono()
        tick = 0
        pkt = None
        receipt = 0.0
        try:
            for pkt in packets:
                receipt = wall()
                one(run, pkt, receipt, tbv)
                tick += 1
                if tick & 15 == 0 and mono() >= self._next_status:
                    self._last_receipt = receipt
                    if stop.is_set():
                        return
                    self._emit()
        except TimestampJump:
            buffered.append((pkt, receipt))
            raise

    def _one(self, run: Run, pkt: Any, receipt: float, tbv: float) -> None:
        """One packet: continuity checks (may raise TimestampJump), cut decision, mux."""
        index = pkt.stream_index
        seg = self._seg
        if index == run.video_index:
            pts = pkt.pts
            if pts is None:
                pts = pkt.dts
                if pts is None:
                    return  # a packet without any timestamp cannot be placed in time
            video = run.video
            if video is None:
                if not pkt.is_keyframe:
                    run.skipped += 1  # before the run's first keyframe: not decodable, in the gap
                    if self._first_video_pending:
                        self._first_video(pkt)
                    return
                video = run.video = self._timeline(run, pkt)
                if run.audio is not None:
                    run.audio.last_receipt = receipt  # audio is expected from the first keyframe on
            # RTP gives presentation times only: decoding times are rebuilt (decode_order.py)
            pkt.dts, pts = video.place(pts, receipt)
            pkt.pts = pts
            media = pts * tbv
            if run.clock_source is ClockSource.RECEIPT:
                run.plan.anchor.add(receipt, media)
            if pkt.is_keyframe:
                base = run.clock_base
                if base is not None:
                    # Checked at keyframes only (cheap, ~1/s), so the next run starts with this
                    # keyframe and the step costs no footage.
                    step = receipt - self.clock.monotonic() - base
                    if step > CLOCK_STEP_SECONDS or step < -CLOCK_STEP_SECONDS:
                        raise ClockStep(index, step)
                head = bytes(memoryview(pkt)[:SCAN_BYTES])
                found = parameter_sets(run.codec, head)
                if found is not None:
                    self._parameter_sets = found
                if run.plan.cut_due(media):
                    if self._byte_rate == INITIAL_BYTE_RATE:
                        self._byte_rate = pkt.size / KEYFRAME_RATE_DIVISOR
                    self._cut(run, media)
                    seg = self._seg
                    if found is None:
                        if self._parameter_sets is not None:
                            # sent once (or in the SDP only): the segment must decode on its own
                            pkt = with_prefix(pkt, self._parameter_sets)
                        else:
                            log.warning(
                                "segment starts at a keyframe without parameter sets and the camera "
                                "has sent none this session: it decodes only once they come",
                                extra={"camera_id": self.camera_id},
                            )
            elif run.plan.overdue(media):
                log.warning(
                    "no keyframe for max_segment_seconds; segment cut at a frame that needs the one before",
                    extra={"camera_id": self.camera_id, "seconds": self.opts.max_segment_seconds},
                )
                self._cut(run, media)
                seg = self._seg
            assert seg is not None
            seg.writer.mux(pkt)
            self._video_frames += 1
            audio = run.audio
            if (
                audio is not None
                and audio.lost_since is None
                and receipt - audio.last_receipt > self._audio_gap
                and run.audio_behind(media, self._audio_gap)
            ):
                self._audio_lost(run, audio, receipt)
        else:
            dts = pkt.dts
            if dts is None:
                dts = pkt.pts
                if dts is None:
                    return
            audio = run.audio if index == run.audio_index else None
            if audio is None:
                fixed = run.guard.check(index, dts, receipt)
            else:
                if audio.lost_since is not None and seg is not None:
                    self._audio_back(run, audio, pkt, dts)
                raw = dts
                dts = raw + audio.shift
                try:
                    fixed = run.guard.check(index, dts, receipt)
                except TimestampJump as jump:
                    # an audio discontinuity never ends the run (audio_track.py): re-placed instead
                    dts = run.replace_audio(audio, pkt, raw, self._tbv)
                    fixed = run.guard.check(index, dts, receipt)
                    log.warning(
                        "audio timestamps jumped; audio kept in step with the video",
                        extra={
                            "camera_id": self.camera_id,
                            "jump": str(jump),
                            "shift_seconds": audio.shift * tb_of(pkt),
                        },
                    )
                if dts != raw:
                    pkt.pts = dts if pkt.pts is None else pkt.pts + dts - raw
                    pkt.dts = dts
            if fixed != dts:  # nudged one tick past its predecessor, as ffmpeg -c copy does
                pkt.dts = fixed
                if pkt.pts is None or pkt.pts < fixed:
                    pkt.pts = fixed
            elif pkt.pts is None:
                pkt.pts = fixed
            if seg is None:
                run.skipped += 1
                return
            seg.writer.mux(pkt)
            if audio is not None:
                audio.last_receipt = receipt
                run.audio_last = pkt
        self._packets += 1
        self._bytes += pkt.size

    def _timeline(self, run: Run, keyframe: Any) -> VideoTimeline:
        """The run's video timeline, with the reorder depth the stream's SPS declares (from the SDP's
        parameter sets or those in front of this keyframe), at least the depth seen before."""
        source = self._source
        assert source is not None
        extradata = source.streams[0].codec_context.extradata or b""
        depth = self._reorder_floor
        try:
            info = reorder_depth(run.codec, extradata, bytes(memoryview(keyframe)[:SCAN_BYTES]))
        except ParameterSetError as exc:
            info = None
            log.warning(
                "unreadable SPS; reorder depth from earlier runs only",
                extra={"camera_id": self.camera_id, "error": str(exc), "depth": depth},
            )
        if info is not None:
            depth = max(depth, info.reorder_depth)
            if depth:
                log.info(
                    "video reordered (B-frames): decoding times rebuilt",
                    extra={"camera_id": self.camera_id, "depth": depth, "declared": info.declared},
                )
        tb = float(source.streams[0].time_base)
        return VideoTimeline(run.video_index, tb, depth, run.frame_ticks, self.opts.max_forward_jump_seconds)

    # -- audio outages ---------------------------------------------------------------------------
    def _audio_lost(self, run: Run, audio: AudioTrack, receipt: float) -> None:
        """No audio for ``audio_gap_seconds`` while video arrives: an audio outage begins where the
        last audio packet of the run ended (or at the run's start, if none came)."""
        start = audio.lose(run.audio_outage_start(receipt), receipt)
        detail = (
            f"no audio from the camera for {self.opts.audio_gap_seconds:.1f} s while video went on "
            "(microphone, cable or camera audio encoder)"
        )
        self.spool.open_audio_outage(start, detail)
        self._audio_lost_since = start
        log.warning("audio lost while video goes on", extra={"camera_id": self.camera_id, "since": start})
        self._emit()

    def _audio_back(self, run: Run, audio: AudioTrack, pkt: Any, raw: int) -> None:
        """The first audio packet after an outage: the outage ends where it is placed."""
        since = audio.resume()
        placed = run.replace_audio(audio, pkt, raw, self._tbv)
        if audio.shift:
            log.warning(
                "audio came back with timestamps that did not count the outage; placed by the video",
                extra={"camera_id": self.camera_id, "seconds": round(audio.shift * tb_of(pkt), 3)},
            )
        self._close_audio_outage(max(since, run.plan.mapper.wall(placed * tb_of(pkt))))
        log.info("audio back", extra={"camera_id": self.camera_id})

    def _close_audio_outage(self, end: float) -> None:
        since = self._audio_lost_since
        if since is not None and end - since < MIN_AUDIO_GAP_SECONDS:
            # nothing was missing after all (the audio came back where it had stopped)
            self.spool.audio_outage_path.unlink(missing_ok=True)
            self._audio_lost_since = None
            self._emit()
            log.info("audio outage closed with no time missing", extra={"camera_id": self.camera_id})
            return
        closed = self.spool.close_audio_outage(end)
        self._audio_lost_since = None
        self._emit()
        if closed is not None:
            self.sink.gap_recorded(*closed)

    def _first_video(self, pkt: Any) -> None:
        """The session's first video packet: if it is not a keyframe, footage could only start at
        the camera's next one (up to a GOP away), so ask the camera for a keyframe now."""
        self._first_video_pending = False
        if not pkt.is_keyframe and self.sync is not None:
            log.info(
                "session starts mid-GOP; asking the camera for a keyframe",
                extra={"camera_id": self.camera_id},
            )
            self.sync.ask()

    # -- segments -------------------------------------------------------------------------------
    def _cut(self, run: Run, media: float) -> None:
        plan = run.plan
        first = self._seg is None
        if not first:
            wall = plan.boundary(media)
            self._close_segment(run, wall)
        else:
            last_end = self._state.last_end
            start = plan.mapper.wall(media)
            if last_end is not None and start < last_end:
                # Never overlap the previous run: a late-anchored start is moved to its end.
                log.warning(
                    "run would start before the previous end; moved",
                    extra={"camera_id": self.camera_id, "seconds": last_end - start},
                )
                plan.mapper.shift(last_end - start)
            wall = plan.boundary(media)
            run.first_wall, run.first_media = wall, media
            log.info(
                "run started",
                extra={
                    "camera_id": self.camera_id,
                    "run_id": run.run_id,
                    "clock_source": run.clock_source.value,
                    "skipped_leading_packets": run.skipped,
                },
            )
        self._open_segment(run, wall, media, first)

    def _open_segment(self, run: Run, wall: float, media: float, first: bool) -> None:
        source = self._source
        assert source is not None and source.info is not None
        gap = self._gap_until(wall) if first else None
        seq = self._state.last_seq + 1
        key = segment_key(self.camera_id, from_unix(wall), seq)
        path = self.spool.prepare(key)
        mapping = run.plan.mapper.mapping
        self.spool.write_partial(
            key,
            {
                "camera_id": self.camera_id,
                "run_id": run.run_id,
                "seq": seq,
                "storage_key": key,
                "start": iso(from_unix(wall)),
                "start_media": media,
                "clock_source": run.clock_source.value,
                "mapping": {"media0": mapping.media0, "wall0": mapping.wall0, "rate": mapping.rate},
                "stream": {f.name: getattr(source.info, f.name) for f in fields(source.info)},
                "prev_sha256": self._state.last_sha256,
                "skipped_leading_packets": run.skipped,
                "url": self.display_url,
                "gap_before": None if gap is None else gap.to_json(),
            },
        )
        seconds = self.opts.write_buffer_seconds
        buffer = 0 if seconds <= 0 else buffer_bytes_for(self._byte_rate, seconds)
        writer = TsWriter(path, source.streams, buffer, self.opts.compute_sm3)
        self._seg = Segment(key, path, seq, wall, media, self._state.last_sha256, writer, self._packets, gap)

    def _close_segment(self, run: Run, end: float) -> None:
        seg, self._seg = self._seg, None
        source = self._source
        assert seg is not None and source is not None and source.info is not None
        if self._packets == seg.packets_at_open:
            self._discard(seg)
            return
        try:
            size, sha, sm3 = seg.writer.close()
            if sha is None:
                sha, sm3 = hash_file(seg.path, self.opts.compute_sm3)
        except BaseException:
            seg.writer.abort()
            self._restore_gap(seg)
            if _is_empty(seg.path):
                self._remove_empty(seg)  # nothing reached the disk (full from the first write)
            else:
                self._needs_recovery = True
            raise
        if end > seg.start:
            self._byte_rate = size / (end - seg.start)
        record = SegmentRecord(
            camera_id=self.camera_id,
            run_id=run.run_id,
            seq=seg.seq,
            start=from_unix(seg.start),
            end=from_unix(end),
            storage_key=seg.key,
            size=size,
            sha256=sha,
            prev_sha256=seg.prev,
            clock_source=run.clock_source,
            stream=source.info,
            sm3=sm3,
            packets=self._packets - seg.packets_at_open,
        )
        try:
            gap_path = None if seg.gap_before is None else self.spool.write_gap(seg.gap_before)
            sidecar = self.spool.commit(record, self._state)
        except SpoolError:
            self._needs_recovery = True
            self._restore_gap(seg)
            raise
        if seg.gap_before is not None and gap_path is not None:
            self.sink.gap_recorded(seg.gap_before, gap_path)
        self.sink.segment_closed(record, seg.path, sidecar)

    def _discard(self, seg: Segment) -> None:
        """A segment that never received a packet (the first write failed): no footage, no record."""
        seg.writer.abort()
        self._restore_gap(seg)
        self._remove_empty(seg)

    def _remove_empty(self, seg: Segment) -> None:
        try:
            seg.path.unlink(missing_ok=True)
            self.spool.partial_path(seg.key).unlink(missing_ok=True)
        except OSError as exc:
            self._needs_recovery = True  # recovery will set the marker aside
            log.warning("could not remove an empty segment", extra={"key": seg.key, "error": str(exc)})

    def _restore_gap(self, seg: Segment) -> None:
        """The segment did not close: its gap still starts at the chain's end, with its first cause."""
        if seg.gap_before is not None:
            self._pending = (seg.gap_before.cause, seg.gap_before.detail)

    def _end_run(self) -> None:
        """Close the run's open segment: it ends at its last video packet plus one frame."""
        run = self._run
        self._run = None
        if run is None or self._seg is None:
            return
        video = run.video
        frame = 0.0 if video is None else video.frame_seconds()
        if not 0.0 < frame <= 1.0:
            frame = DEFAULT_FRAME_SECONDS
        source = self._source
        tbv = float(source.streams[0].time_base) if source is not None else 1 / 90000
        # the frame shown last, which with B-frames is not the last one received
        media = self._seg.media if video is None or video.max_pts is None else video.max_pts * tbv
        end = run.plan.end_wall(media, frame)
        if run.audio is not None and run.audio.lost_since is not None:
            run.audio.lost_since = None
            self._close_audio_outage(end)  # a new run measures its own audio from its start
        self._close_segment(run, end)

    def _end_run_safely(self) -> None:
        try:
            self._end_run()
        except Exception as exc:
            self._failed(exc)
            self._seg = None

    # -- gaps -----------------------------------------------------------------------------------
    def _note_cause(self, cause: GapCause, detail: str) -> None:
        """The first cause of an outage names the gap (later retries do not rename it)."""
        if self._pending is None:
            self._pending = (cause, detail)

    def _gap_until(self, end: float) -> GapRecord | None:
        """The gap from the chain's end to ``end`` (a new run's first segment start), if any."""
        pending, last_end = self._pending, self._state.last_end
        self._pending = None
        if pending is None or last_end is None:
            return None
        cause, detail = pending
        return GapRecord(self.camera_id, from_unix(last_end), from_unix(max(end, last_end)), cause, detail)

    def _failed(self, exc: BaseException) -> None:
        if isinstance(exc, StreamStalled):
            cause = GapCause.STALL
        elif isinstance(exc, StreamClosed):
            cause = GapCause.DISCONNECT
        elif isinstance(exc, SpoolError):
            cause = GapCause.STORAGE_FAILURE
        elif isinstance(exc, StreamError):
            cause = GapCause.STREAM_ERROR
        elif isinstance(exc, StopIteration):
            cause, exc = GapCause.DISCONNECT, StreamClosed("camera ended the stream")
        else:
            cause = GapCause.STREAM_ERROR
        # The sources redact their own texts; this is for whatever they did not foresee.
        message = self._redact.text(
            exc.message if isinstance(exc, VauditError) else f"{type(exc).__name__}: {exc}"
        )
        self._last_error = f"{cause.value}: {message}"
        self._last_failure = (cause, message)
        self._note_cause(cause, message)
        if isinstance(exc, VauditError):
            log.warning(
                "camera recording interrupted",
                extra={"camera_id": self.camera_id, "cause": cause.value, "code": exc.code, "error": message},
            )
        else:
            log.exception(
                "camera recording failed unexpectedly",
                extra={"camera_id": self.camera_id, "cause": cause.value},
            )

    # -- plumbing -------------------------------------------------------------------------------
    def _close_source(self) -> None:
        source, self._source = self._source, None
        if source is not None:
            source.close()

    def _set_state(self, name: str, connected: bool) -> None:
        self._state_name = name
        self._connected = connected
        self._emit()

    def _emit(self) -> None:
        self._next_status = self.clock.monotonic() + self.opts.status_interval_seconds
        try:
            self.sink.status(self.status())
        except Exception:
            log.exception("sink.status failed", extra={"camera_id": self.camera_id})


def _is_empty(path: Path) -> bool:
    try:
        return path.stat().st_size == 0
    except OSError:
        return False  # unknown: recovery decides
