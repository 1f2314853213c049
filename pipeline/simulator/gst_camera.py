#!/usr/bin/python3
"""A simulated IP camera: one process = one real RTSP server on 127.0.0.1:PORT (GStreamer).

Runs on Debian's system Python (``/usr/bin/python3`` with python3-gi); it imports nothing from
the project or its virtualenv, only the standard library and ``gi``.

Live mode (default) serves one mount, ``--path``:
  videotestsrc (moving SMPTE bars) + a burnt-in label and capture time code (microseconds)
  -> x264enc / x265enc (zero latency, keyframe every ``--gop`` frames) -> rtph264pay / rtph265pay
  audiotestsrc (a tone) -> alawenc (8 kHz mono, PT 8), mulawenc (PT 0), or AAC (16 kHz mono,
  mpeg4-generic, or MP4A-LATM with ``--audio aac-latm``)
Encoder variants, as independent cameras send them (the conformance suite's matrix):
  --profile baseline|main|high, --bframes N [--b-pyramid], --slices N, --intra-refresh (x264:
  periodic intra refresh, no IDR after the first), --encoder-defaults (x264enc's own preset and
  look-ahead: seconds of latency), --params both|sdp|inband (SPS/PPS in the SDP's sprop-parameter-sets and before
  every IDR; only in the SDP; only in-band), --rtp-wrap-after S (payloader timestamp-offset set so
  that the 32-bit RTP timestamps of video and audio wrap S seconds in), --ntp-offset S (the
  camera's clock is S seconds off: its RTCP sender reports say so), --aac-encoder.
The media pipeline runs on a REALTIME system clock and rtpbin maps RTP time to the *capture*
time in its RTCP sender reports, so "base time + running time" of a frame is both the Unix time
in the SR's NTP mapping and the time burnt into the picture. The media is shared: one encoder
per camera, like a real camera, and every client sees the same keyframes (the events log).

File mode (``--file CLIP --count N``) serves a pre-encoded H.264 + G.711 A-law clip (.mov, .mp4
or .mkv) at ``PATH0`` .. ``PATH{N-1}`` from one process, demuxed and payloaded without decoding.
The RTSP server's sinks synchronise on the clock, so packets leave in real time, and rtpbin still
sends RTCP SRs. Each client gets its own media that starts at the clip's beginning; the clip
does not loop: at its end the server sends RTCP BYE and the client sees end of stream, so make
the clip longer than the run (``camera.make_clip`` concatenates cheaply).

Clip mode (``--clip OUT.ts --seconds S [--mode M]``) encodes the live picture (same pattern,
time code and encoder, starting now) at file speed into an MPEG-TS file and exits.

stdin, one command per line, each answered on stdout with ``OK <cmd>`` (or ``ERR <reason>``):
  black | frozen | covered | normal
                               picture mode (frozen: identical frames, packets keep flowing;
                               covered: a hand over the lens, a dark, nearly uniform, slightly
                               noisy grey; the burnt-in clock stays in every mode, as a real
                               camera's OSD does)
  audio off | audio on         stop sending audio (the microphone dies; video goes on) / resume
  resize WxH                   the next media uses this picture size, and every client is
                               disconnected now (a camera restarting its stream with new settings)
  jump SECONDS                 shift the RTP timestamps of video and audio by SECONDS (a running
                               time offset in front of the payloaders); the jump persists. A
                               video-only client sees exactly one step; ffmpeg with audio+video
                               also re-anchors on the next SRs, so expect up to ~1 s of pts
                               jitter around them before it settles on the jumped timeline.
  quit                         exit (closing every client connection); EOF on stdin does the same
``READY rtsp://127.0.0.1:PORT/PATH`` (one line per mount) is printed once the server listens.

--onvif-port N (live mode) also serves an ONVIF media service at http://127.0.0.1:N/onvif/media_service
answering ``SetSynchronizationPoint`` for profile ``--onvif-profile`` (default Profile_1) the way a
camera does: the encoder makes its next frame a keyframe. With ``--onvif-user``/``--onvif-password``
the request must carry a valid WS-Security UsernameToken digest. Other requests get a SOAP fault.

--rtsp-user U --rtsp-password P [--rtsp-auth basic|digest] makes every mount demand that login
(RTSP Basic or Digest authentication, gst-rtsp-server's RTSPAuth), as a real camera does.

--events-log FILE (live mode) gets JSON lines, flushed one by one:
  {"event": "keyframe", "wall": W, "capture": C, "pts": P, "mount": PATH} per keyframe sent;
      W = Unix time its RTCP NTP mapping gives (= C + the jumps applied so far), C = when the
      frame was captured (the burnt-in time code), P = its running time (+ jumps) in seconds
      (with "forced": true when a synchronization point asked for it)
  {"event": "sync_point", "wall": T}, {"event": "sync_point_refused", "reason": R, "wall": T},
  {"event": "frame", "wall": W, "capture": C, "sent": S, "key": K, "n": N, "vcl": F, "mount": PATH}
      per video frame with --log-frames (decoding order; S = when it went to the payloader; N
      counts from 1 over every session, F is the SHA-1 prefix of the frame's slice data: it finds
      the frame in a recording)
  {"event": "mode", "mode": M, "wall": T}, {"event": "jump", "seconds": S, "total": S2, "wall": T},
  {"event": "audio", "on": B, "wall": T}, {"event": "resize", "width": W, "height": H, "wall": T},
  {"event": "quit", "wall": T}
With --ntp-offset the SRs (and so "wall") are that far off; "capture" stays the true time.
The camera encodes only while a client is connected (the media is built at the first DESCRIBE and
dropped after the last client leaves); picture mode and jumps carry over to the next media.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

EXIT_MISSING = 3  # camera.py turns this into an error naming the Debian packages
EXIT_BIND = 4
JUMP_BASE_NS = 3600 * 10**9  # backward jumps of up to an hour stay in positive running time


def _fail(code: int, message: str) -> None:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()
    os._exit(code)


try:
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    gi.require_version("GstVideo", "1.0")
    gi.require_version("GstSdp", "1.0")
    gi.require_version("GstRtp", "1.0")
    gi.require_version("GstRtsp", "1.0")
    from gi.repository import GLib, Gst, GstRtp, GstRtsp, GstRtspServer, GstSdp, GstVideo
except (ImportError, ValueError) as _exc:
    _fail(EXIT_MISSING, f"MISSING python3-gi or GStreamer RTSP server typelibs: {_exc}")


class EventsLog:
    """JSON lines, flushed one by one (streaming threads and the main loop both write)."""

    def __init__(self, path: str | None) -> None:
        self._file = open(path, "a", encoding="utf-8") if path else None  # noqa: SIM115
        self._lock = threading.Lock()

    def write(self, event: str, **fields: object) -> None:
        if self._file is None:
            return
        line = json.dumps({"event": event, **fields})
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()


def _check_elements(names: list[str]) -> None:
    missing = [n for n in names if Gst.ElementFactory.find(n) is None]
    if missing:
        _fail(EXIT_MISSING, "MISSING GStreamer elements: " + " ".join(missing))


def _shift_sender_reports(_session: object, buffer: Gst.Buffer, _early: bool, offset: int) -> bool:
    """A camera whose clock is off: its sender reports' NTP times carry the error (``offset`` in
    NTP units, seconds << 32), the RTP timestamps do not."""
    rtcp = GstRtp.RTCPBuffer()
    if not GstRtp.RTCPBuffer.map(buffer, Gst.MapFlags.READ | Gst.MapFlags.WRITE, rtcp):
        return False
    packet = GstRtp.RTCPPacket()
    more = rtcp.get_first_packet(packet)
    while more:
        if packet.get_type() == GstRtp.RTCPType.SR:
            ssrc, ntp, rtptime, packets, octets = packet.sr_get_sender_info()
            packet.sr_set_sender_info(ssrc, (ntp + offset) % (1 << 64), rtptime, packets, octets)
        more = packet.move_to_next()
    rtcp.unmap()
    return False


def configure_rtcp(
    media: GstRtspServer.RTSPMedia, interval_ns: int, live: bool, ntp_offset: float = 0.0
) -> None:
    """Make the media's rtpbin stamp sender reports with the capture time, every interval_ns
    (plus ``ntp_offset`` seconds: a camera whose clock is wrong).

    rtpbin, its sessions and the sinks are created only when the media is prepared, so watch
    for them.
    """
    offset = round(ntp_offset * (1 << 32))

    def on_added(_pipeline: Gst.Bin, _bin: Gst.Bin, element: Gst.Element) -> None:
        name = element.get_factory().get_name() if element.get_factory() else ""
        if name == "rtpbin":
            # ntp: SR NTP = realtime clock; capture time: the SR's RTP/NTP pair comes from the
            # packets' running time (= capture on live sources) rather than when they left.
            element.set_property("ntp-time-source", 0)
            element.set_property("rtcp-sync-send-time", False)
        elif name == "rtpsession":
            # Default 5 s makes a client wait long for its first SR; cameras vary anyway.
            session = element.get_property("internal-session")
            session.set_property("rtcp-min-interval", interval_ns)
            if offset:
                session.connect("on-sending-rtcp", _shift_sender_reports, offset)
        elif live and name in ("appsink", "multiudpsink", "udpsink"):
            # A live source paces itself; without clock sync a timestamp jump (running time
            # shifted forwards) is sent at once instead of being held back by the sink.
            element.set_property("sync", False)

    pipeline = media.get_element().get_parent()
    pipeline.connect("deep-element-added", on_added)


def encoder(a: argparse.Namespace) -> str:
    """The encoder and its output caps for the variant asked (x264enc / x265enc options)."""
    gop = a.gop or a.fps
    reordered = a.bframes > 0
    if a.video == "mjpeg":
        return "jpegenc name=venc quality=50"  # what some older cameras send; nothing records it as sent
    if a.video == "h264" and a.encoder_defaults:
        # x264enc as a user writes it first: its own preset, look-ahead and frame threads (seconds of
        # latency between capture and sending), only the GOP, rate and B-frames set
        b = f" bframes={a.bframes} b-adapt=false" if reordered else ""
        return f"x264enc name=venc key-int-max={gop} bitrate={a.bitrate_kbps}{b}"
    if a.video == "h264":
        x264 = [
            f"x264enc name=venc speed-preset=ultrafast key-int-max={gop} bitrate={a.bitrate_kbps} threads=1"
        ]
        options = []
        if reordered:
            # no tune=zerolatency (it forces bframes=0); fixed B-frame runs, no lookahead beyond them
            x264.append(f"bframes={a.bframes} b-adapt=false b-pyramid={str(a.b_pyramid).lower()}")
            options += ["rc-lookahead=0", "sync-lookahead=0"]
        else:
            x264.append("tune=zerolatency")
        if a.slices > 1:
            options.append(f"slices={a.slices}")
        if a.profile in ("main", "high"):
            # ultrafast turns the tools off and x264 then signals the lowest profile that suffices:
            # turn on what the profile is for, so the SPS says Main / High as a camera's does
            x264.append("cabac=true" + (" dct8x8=true" if a.profile == "high" else ""))
        if a.intra_refresh:
            x264.append("intra-refresh=true")
        if options:
            x264.append("option-string=" + ":".join(options))
        caps = ["video/x-h264"]
        if a.profile:
            caps.append(f"profile={a.profile}")
        if a.params == "sdp":
            caps.append("stream-format=avc")  # parameter sets in codec_data only, none in-band
        return " ".join(x264) + " ! " + ",".join(caps)
    options = ["pools=1", "frame-threads=1"]
    if reordered:
        options += [f"bframes={a.bframes}", "b-adapt=0", f"rc-lookahead={a.bframes + 1}"]  # x265: > bframes
    if a.params == "inband":
        options.append("repeat-headers=1")  # VPS/SPS/PPS before every keyframe, as such cameras send
    tune = "" if reordered else "tune=zerolatency "
    x265 = (
        f"x265enc name=venc {tune}speed-preset=ultrafast key-int-max={gop} bitrate={a.bitrate_kbps} "
        f"option-string={':'.join(options)}"
    )
    if a.params == "sdp":
        return x265 + " ! h265parse config-interval=0 ! video/x-h265,stream-format=hvc1"
    return x265


def video_chain(a: argparse.Namespace, live: bool) -> str:
    """The camera's picture: test pattern, burnt-in label and time code, encoder (no payloader).

    ``live=False`` (clip mode) runs as fast as the encoder goes, for ``--seconds``.
    """
    source = "is-live=true" if live else f"is-live=false num-buffers={round(a.seconds * a.fps)}"
    return (
        f"videotestsrc name=vsrc {source} pattern=smpte75 horizontal-speed=4 "
        f"! video/x-raw,format=I420,width={a.width},height={a.height},framerate={a.fps}/1 "
        f"! videobalance name=vbal "
        f"! timeoverlay name=osd time-mode=running-time show-times-as-dates=true "
        f'halignment=left valignment=top shaded-background=true font-desc="Sans 14" '
        f"! queue max-size-buffers=3 ! {encoder(a)}"
    )


def apply_picture(bin_: Gst.Bin, mode: str) -> None:
    """Set the picture elements of ``bin_`` (a media's or the clip's pipeline) to ``mode``."""
    vsrc = bin_.get_by_name("vsrc")
    osd = bin_.get_by_name("osd")
    vbal = bin_.get_by_name("vbal")
    # videobalance at its defaults is passthrough; only "covered" squeezes the picture.
    vbal.set_property("contrast", 1.0)
    vbal.set_property("brightness", 0.0)
    if mode == "black":
        vsrc.set_property("pattern", "black")
        vsrc.set_property("horizontal-speed", 0)
        osd.set_property("datetime-format", "%F %T.%f")
    elif mode == "frozen":
        # Stop the bars and pin the time code to the moment of freezing: identical frames
        # (of the normal picture, whatever mode came before).
        vsrc.set_property("pattern", "smpte75")
        vsrc.set_property("horizontal-speed", 0)
        frozen = GLib.DateTime.new_now_local().format("%F %T.%f").replace("%", "%%")
        osd.set_property("datetime-format", frozen)
    elif mode == "covered":
        # Snow squeezed to a few levels around a dark grey: a palm or cloth over the lens
        # lets a little light through and the sensor adds noise; no edges, no detail.
        vsrc.set_property("pattern", "snow")
        vsrc.set_property("horizontal-speed", 0)
        vbal.set_property("contrast", 0.05)
        vbal.set_property("brightness", 0.12)  # Y ≈ 16 + 0.05·(snow − 16) + 0.12·255 ≈ 50
        osd.set_property("datetime-format", "%F %T.%f")
    else:
        vsrc.set_property("pattern", "smpte75")
        vsrc.set_property("horizontal-speed", 4)
        osd.set_property("datetime-format", "%F %T.%f")


def write_clip(args: argparse.Namespace) -> int:
    """Clip mode: the live camera's picture (``--mode``) encoded at file speed into MPEG-TS."""
    mux = "h264parse ! mpegtsmux" if args.video == "h264" else "h265parse ! mpegtsmux"
    location = args.clip.replace("\\", "\\\\").replace('"', '\\"')
    pipeline = Gst.parse_launch(f'{video_chain(args, live=False)} ! {mux} ! filesink location="{location}"')
    osd = pipeline.get_by_name("osd")
    osd.set_property("text", args.label)
    osd.set_property("datetime-epoch", GLib.DateTime.new_now_local())  # time code from now on
    apply_picture(pipeline, args.mode)
    pipeline.set_state(Gst.State.PLAYING)
    msg = pipeline.get_bus().timed_pop_filtered(
        Gst.CLOCK_TIME_NONE, Gst.MessageType.EOS | Gst.MessageType.ERROR
    )
    pipeline.set_state(Gst.State.NULL)
    if msg is not None and msg.type == Gst.MessageType.ERROR:
        err, _debug = msg.parse_error()
        sys.stderr.write(f"clip failed: {err.message}\n")
        return 1
    return 0


def sdp_without_parameter_sets() -> type:
    """A media class whose SDP lacks sprop-parameter-sets / sprop-vps/sps/pps: the camera sends its
    parameter sets in-band only (--params inband). Defined after Gst.init: registering a GType
    subclass of RTSPMedia before it breaks the class's signals."""

    class SdpWithoutParameterSets(GstRtspServer.RTSPMedia):
        def do_setup_sdp(self, sdp: GstSdp.SDPMessage, info: GstRtspServer.SDPInfo) -> bool:
            ok = GstRtspServer.RTSPMedia.do_setup_sdp(self, sdp, info)
            for i in range(sdp.medias_len()):
                media = sdp.get_media(i)
                for j in range(media.attributes_len()):
                    attribute = media.get_attribute(j)
                    if attribute.key == "fmtp" and "sprop-" in attribute.value:
                        kept = ";".join(
                            p for p in attribute.value.split(";") if not p.strip().startswith("sprop-")
                        )
                        replacement = GstSdp.SDPAttribute()
                        replacement.set("fmtp", kept)
                        media.replace_attribute(j, replacement)
            return bool(ok)

    return SdpWithoutParameterSets


AUDIO_ELEMENTS = {
    "alaw": ["audiotestsrc", "alawenc", "rtppcmapay"],
    "mulaw": ["audiotestsrc", "mulawenc", "rtppcmupay"],
    "aac": ["audiotestsrc", "audioconvert", "rtpmp4gpay"],
    "aac-latm": ["audiotestsrc", "audioconvert", "rtpmp4apay"],
    "none": [],
}


def aac_encoder(choice: str) -> str:
    if choice == "auto":
        return "avenc_aac" if Gst.ElementFactory.find("avenc_aac") else "voaacenc"
    return choice


LENGTH_PREFIXED = ("avc", "avc3", "hvc1", "hev1")


def vcl_fingerprint(video: str, data: bytes, length_prefixed: bool) -> str:
    """SHA-1 prefix of a frame's slice data (its VCL NAL units, trailing zeros dropped, joined). It
    finds the frame in a recording: muxers and recorders add or drop delimiters and parameter sets
    around slices, never change the slices. Mirrored by the conformance suite's reader."""
    units: list[bytes] = []
    if length_prefixed:
        i = 0
        while i + 4 <= len(data):
            n = int.from_bytes(data[i : i + 4], "big")
            units.append(data[i + 4 : i + 4 + n])
            i += 4 + n
    else:
        for part in re.split(b"\x00\x00\x01", data)[1:]:
            units.append(part.rstrip(b"\x00"))
    hevc = video == "h265"
    vcl = [
        u.rstrip(b"\x00") for u in units if u and ((u[0] >> 1) & 0x3F < 32 if hevc else 1 <= u[0] & 0x1F <= 5)
    ]
    return hashlib.sha1(b"".join(vcl)).hexdigest()[:16]


class LiveCamera:
    """State shared by the live mount's media (mode, timestamp offset) and its stdin commands."""

    def __init__(self, args: argparse.Namespace, events: EventsLog) -> None:
        self.args = args
        self.events = events
        self.mode = "normal"
        self.jump_seconds = 0.0
        self.audio_on = True
        self.frames_sent = 0  # video frames sent, over every media of the mount
        self.server: GstRtspServer.RTSPServer | None = None
        self.medias: list[GstRtspServer.RTSPMedia] = []
        self.force_requested = False  # a synchronization point asked for a keyframe
        self.forced_pending = False  # the next keyframe is the one asked for
        self.factory = GstRtspServer.RTSPMediaFactory()
        self.factory.set_launch(self._launch())
        self.factory.set_shared(True)
        if args.params == "inband":
            self.factory.set_media_gtype(sdp_without_parameter_sets())
        self.factory.connect("media-configure", self._on_media_configure)

    def _launch(self) -> str:
        a = self.args
        pay = {"h264": "rtph264pay", "h265": "rtph265pay", "mjpeg": "rtpjpegpay"}[a.video]
        interval = 0 if a.params == "sdp" else -1
        video_offset = audio_offset = ""
        if a.rtp_wrap_after is not None:
            # the 32-bit RTP timestamps start this many seconds of their clock before wrapping
            video_offset = f" timestamp-offset={(1 << 32) - round(a.rtp_wrap_after * 90000)}"
            rate = {"alaw": 8000, "mulaw": 8000}.get(a.audio, 16000)
            audio_offset = f" timestamp-offset={(1 << 32) - round(a.rtp_wrap_after * rate)}"
        options = "" if a.video == "mjpeg" else f" config-interval={interval}"
        video = f"{video_chain(a, live=True)} ! {pay} name=pay0 pt=96{options}{video_offset}"
        tone = "audiotestsrc is-live=true wave=sine freq=440 volume=0.2"
        if a.audio == "alaw":
            audio = (
                f"{tone} samplesperbuffer=160 ! audio/x-raw,rate=8000,channels=1 ! alawenc "
                f"! rtppcmapay name=pay1 pt=8{audio_offset}"
            )
        elif a.audio == "mulaw":
            audio = (
                f"{tone} samplesperbuffer=160 ! audio/x-raw,rate=8000,channels=1 ! mulawenc "
                f"! rtppcmupay name=pay1 pt=0{audio_offset}"
            )
        elif a.audio in ("aac", "aac-latm"):
            enc = aac_encoder(a.aac_encoder)
            enc += " bitrate=32000" if enc == "avenc_aac" else ""
            pay1 = "rtpmp4gpay" if a.audio == "aac" else "rtpmp4apay"
            audio = (
                f"{tone} samplesperbuffer=1024 ! audio/x-raw,rate=16000,channels=1 ! audioconvert "
                f"! {enc} ! {pay1} name=pay1 pt=97{audio_offset}"
            )
        else:
            audio = ""
        return f"( {video} {audio} )"

    def required_elements(self) -> list[str]:
        names = ["videotestsrc", "videobalance", "timeoverlay", "queue", "rtpbin"]
        names += {
            "h264": ["x264enc", "rtph264pay"],
            "h265": ["x265enc", "rtph265pay"],
            "mjpeg": ["jpegenc", "rtpjpegpay"],
        }[self.args.video]
        if self.args.video == "h265" and self.args.params == "sdp":
            names.append("h265parse")
        names += AUDIO_ELEMENTS[self.args.audio]
        if self.args.audio in ("aac", "aac-latm"):
            names.append(aac_encoder(self.args.aac_encoder))
        return names

    # -- per media -------------------------------------------------------------------------
    def _on_media_configure(self, _factory: object, media: GstRtspServer.RTSPMedia) -> None:
        bin_ = media.get_element()
        osd = bin_.get_by_name("osd")
        osd.set_property("text", self.args.label)
        osd.set_property("datetime-format", "%F %T.%f")
        osd.get_static_pad("video_sink").add_probe(Gst.PadProbeType.BUFFER, self._on_osd_buffer, osd)
        pay0 = bin_.get_by_name("pay0")
        pay0.get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, self._on_video_buffer, pay0)
        bin_.get_by_name("venc").get_static_pad("sink").add_probe(
            Gst.PadProbeType.BUFFER, self._on_encoder_input
        )
        pay1 = bin_.get_by_name("pay1")
        if pay1 is not None:
            pay1.get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, self._on_audio_buffer)
        configure_rtcp(media, self.args.rtcp_interval_ns, live=True, ntp_offset=self.args.ntp_offset)
        for name in ("pay0", "pay1"):
            # Constant; the encoder side gets +JUMP_BASE (+ jump) in _apply, see there.
            pay = bin_.get_by_name(name)
            if pay is not None:
                pay.get_static_pad("src").set_offset(-JUMP_BASE_NS)
        media.connect("unprepared", self._on_unprepared)
        self.medias.append(media)
        self._apply(media)

    def _on_unprepared(self, media: GstRtspServer.RTSPMedia) -> None:
        if media in self.medias:
            self.medias.remove(media)

    def _on_osd_buffer(self, _pad: Gst.Pad, _info: Gst.PadProbeInfo, osd: Gst.Element) -> Gst.PadProbeReturn:
        # The epoch is the wall time of running time 0 (the realtime clock's base time), so the
        # burnt-in time code is the frame's capture time. It changes only if the base time does.
        base = osd.get_base_time()
        if getattr(osd, "_vaudit_base", None) != base:
            osd._vaudit_base = base
            epoch = GLib.DateTime.new_from_unix_local(0).add(base // 1000)
            osd.set_property("datetime-epoch", epoch)
        return Gst.PadProbeReturn.OK

    def _on_audio_buffer(self, _pad: Gst.Pad, _info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
        # "audio off": the microphone delivers nothing; the payloader sends no audio packets
        return Gst.PadProbeReturn.OK if self.audio_on else Gst.PadProbeReturn.DROP

    def _on_video_buffer(self, pad: Gst.Pad, info: Gst.PadProbeInfo, pay: Gst.Element) -> Gst.PadProbeReturn:
        buf = info.get_buffer()
        key = not buf.has_flags(Gst.BufferFlags.DELTA_UNIT)
        if buf.pts == Gst.CLOCK_TIME_NONE or not (key or self.args.log_frames):
            return Gst.PadProbeReturn.OK
        event = pad.get_sticky_event(Gst.EventType.SEGMENT, 0)
        running = buf.pts
        if event is not None:
            running = event.parse_segment().to_running_time(Gst.Format.TIME, buf.pts)
            running -= JUMP_BASE_NS  # see _apply: what remains is capture time + jump
        # "wall" is what the SR mapping gives for this frame's RTP time; "capture" is when the
        # frame was taken. They differ by the jumps applied so far.
        sent = (pay.get_base_time() + running) / 1e9  # capture time + the jumps applied so far
        capture = sent - (pad.get_peer().get_offset() - JUMP_BASE_NS) / 1e9
        wall = sent + self.args.ntp_offset
        if self.args.log_frames:
            self.frames_sent += 1
            caps = pad.get_current_caps()
            form = caps.get_structure(0).get_string("stream-format") if caps is not None else None
            data = buf.extract_dup(0, buf.get_size())
            self.events.write(
                "frame",
                wall=wall,
                capture=capture,
                sent=time.time(),
                key=key,
                n=self.frames_sent,
                vcl=vcl_fingerprint(self.args.video, data, form in LENGTH_PREFIXED),
                mount=self.args.path,
            )
        if not key:
            return Gst.PadProbeReturn.OK
        forced, self.forced_pending = self.forced_pending, False
        extra = {"forced": True} if forced else {}
        self.events.write(
            "keyframe", wall=wall, capture=capture, pts=running / 1e9, mount=self.args.path, **extra
        )
        return Gst.PadProbeReturn.OK

    def force_keyframe(self) -> bool:
        """What a camera does for ONVIF SetSynchronizationPoint: the encoder's next frame is a
        keyframe. Only flagged here; the encoder's input probe (its streaming thread) sends the
        force-key-unit event in front of the next frame: sending it from this (HTTP) thread would
        wait for the stream lock, seconds while a new client's PLAY re-prerolls the media."""
        if not self.medias:
            return False
        self.force_requested = True
        return True

    def _on_encoder_input(self, pad: Gst.Pad, _info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
        if self.force_requested:
            self.force_requested = False
            self.forced_pending = True
            none = Gst.CLOCK_TIME_NONE
            pad.send_event(GstVideo.video_event_new_downstream_force_key_unit(none, none, none, True, 0))
        return Gst.PadProbeReturn.OK

    # -- commands --------------------------------------------------------------------------
    def _apply(self, media: GstRtspServer.RTSPMedia) -> None:
        bin_ = media.get_element()
        apply_picture(bin_, self.mode)
        # RTP time = timestamp base + the payloader's input running time, and the base
        # (timestamp-offset) is read only at start-up. So a jump shifts the running time with a
        # pad offset on the encoder's output (an offset on a sink pad would not re-send the
        # segment). JUMP_BASE keeps the payloader's running time positive for backward jumps;
        # the constant -JUMP_BASE on the payloader's output removes it again downstream, so
        # only the jump reaches rtpbin. rtpbin extrapolates SRs from the packets' (shifted)
        # running time against its clock, so the SR keeps mapping the unjumped RTP timeline
        # to true NTP time, and the jumped packets appear SECONDS off, as with a camera whose
        # RTP clock stepped.
        shift = JUMP_BASE_NS + round(self.jump_seconds * Gst.SECOND)
        for name in ("pay0", "pay1"):
            pay = bin_.get_by_name(name)
            if pay is not None:
                pay.get_static_pad("sink").get_peer().set_offset(shift)

    def command(self, words: list[str]) -> str:
        cmd = words[0]
        if cmd in ("black", "frozen", "covered", "normal"):
            self.mode = cmd
            self.events.write("mode", mode=cmd, wall=time.time())
        elif cmd == "jump":
            seconds = float(words[1])
            self.jump_seconds += seconds
            self.events.write("jump", seconds=seconds, total=self.jump_seconds, wall=time.time())
        elif cmd == "audio" and words[1:] in (["on"], ["off"]):
            self.audio_on = words[1] == "on"
            self.events.write("audio", on=self.audio_on, wall=time.time())
        elif cmd == "resize":
            width, height = (int(v) for v in words[1].lower().split("x"))
            if not (16 <= width <= 4096 and 16 <= height <= 4096):
                raise ValueError(f"picture size {width}x{height} out of range")
            self.args.width, self.args.height = width, height
            self.factory.set_launch(self._launch())
            self.events.write("resize", width=width, height=height, wall=time.time())
            if self.server is not None:
                # like a camera applying new stream settings: every session ends now; the next
                # DESCRIBE builds the media again with the new size
                self.server.client_filter(lambda _server, _client: GstRtspServer.RTSPFilterResult.REMOVE)
        else:
            raise ValueError(f"unknown command {cmd!r}")
        for media in list(self.medias):
            self._apply(media)
        return cmd


ONVIF_PATH = "/onvif/media_service"
_SOAP_NS = "http://www.w3.org/2003/05/soap-envelope"


def _soap(body: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><s:Envelope xmlns:s="{_SOAP_NS}" '
        'xmlns:trt="http://www.onvif.org/ver10/media/wsdl" '
        'xmlns:ter="http://www.onvif.org/ver10/error">'
        f"<s:Body>{body}</s:Body></s:Envelope>"
    ).encode()


def _fault(subcode: str, text: str) -> bytes:
    return _soap(
        f"<s:Fault><s:Code><s:Value>s:Sender</s:Value><s:Subcode><s:Value>{subcode}</s:Value>"
        f'</s:Subcode></s:Code><s:Reason><s:Text xml:lang="en">{text}</s:Text></s:Reason></s:Fault>'
    )


def _between(text: str, tag: str) -> str | None:
    """The text of the first element named ``tag`` (any prefix); enough for these requests."""
    found = re.search(rf"<(?:[\w.-]+:)?{tag}(?:\s[^>]*)?>([^<]*)<", text)
    return None if found is None else found.group(1).strip()


class OnvifMedia:
    """The one ONVIF media call the recorder uses, served on 127.0.0.1 (a thread of its own)."""

    def __init__(self, camera: LiveCamera, port: int, profile: str, user: str | None, password: str) -> None:
        self.camera, self.profile, self.user, self.password = camera, profile, user, password
        handler = self._handler()
        self.server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        threading.Thread(target=self.server.serve_forever, name="onvif", daemon=True).start()

    def _authorised(self, text: str) -> bool:
        if self.user is None:
            return True
        user, digest = _between(text, "Username"), _between(text, "Password")
        nonce, created = _between(text, "Nonce"), _between(text, "Created")
        if user != self.user or not digest or not nonce or not created:
            return False
        try:
            raw = base64.b64decode(nonce, validate=True)
        except ValueError:
            return False
        want = hashlib.sha1(raw + created.encode() + self.password.encode()).digest()
        return base64.b64encode(want).decode() == digest

    def answer(self, path: str, text: str) -> tuple[int, bytes]:
        if path != ONVIF_PATH:
            return 404, _fault("ter:ActionNotSupported", "no such service")
        if "SetSynchronizationPoint" not in text:
            return 400, _fault("ter:ActionNotSupported", "only SetSynchronizationPoint is simulated")
        if not self._authorised(text):
            self.camera.events.write("sync_point_refused", reason="not authorised", wall=time.time())
            return 400, _fault("ter:NotAuthorized", "sender not authorized")
        if _between(text, "ProfileToken") != self.profile:
            self.camera.events.write("sync_point_refused", reason="no such profile", wall=time.time())
            return 400, _fault("ter:NoProfile", "no such profile")
        sent = self.camera.force_keyframe()
        self.camera.events.write("sync_point", wall=time.time(), sent=sent)
        return 200, _soap("<trt:SetSynchronizationPointResponse/>")

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        media = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length > 65536:
                    status, body = 413, _fault("ter:InvalidArgVal", "request too large")
                else:
                    text = self.rfile.read(length).decode("utf-8", "replace")
                    status, body = media.answer(self.path, text)
                self.send_response(status)
                self.send_header("Content-Type", "application/soap+xml; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: object) -> None:
                pass

        return Handler


class FileMounts:
    """N mounts of one pre-encoded clip, payloaded without decoding."""

    def __init__(self, args: argparse.Namespace) -> None:
        ext = os.path.splitext(args.file)[1].lower()
        demux = "matroskademux" if ext == ".mkv" else "qtdemux"
        self.demux = demux
        location = args.file.replace("\\", "\\\\").replace('"', '\\"')
        launch = (
            f'( filesrc location="{location}" ! {demux} name=d '
            "d.video_0 ! queue ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=-1 "
            "d.audio_0 ! queue ! rtppcmapay name=pay1 pt=8 )"
        )
        self.factories = []
        interval = args.rtcp_interval_ns
        for _ in range(args.count):
            factory = GstRtspServer.RTSPMediaFactory()
            factory.set_launch(launch)
            factory.set_shared(False)
            factory.connect("media-configure", lambda _f, m: configure_rtcp(m, interval, live=False))
            self.factories.append(factory)

    def required_elements(self) -> list[str]:
        return ["filesrc", self.demux, "queue", "h264parse", "rtph264pay", "rtppcmapay", "rtpbin"]


def require_login(
    server: GstRtspServer.RTSPServer, factories: list[GstRtspServer.RTSPMediaFactory], a: argparse.Namespace
) -> None:
    """Every mount answers 401 unless the client logs in as ``--rtsp-user`` (Basic or Digest)."""
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string("media.factory.role", "viewer")
    if a.rtsp_auth == "digest":
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
        auth.add_digest(a.rtsp_user, a.rtsp_password, token)
    else:
        auth.set_supported_methods(GstRtsp.RTSPAuthMethod.BASIC)
        auth.add_basic(GstRtspServer.RTSPAuth.make_basic(a.rtsp_user, a.rtsp_password), token)
    server.set_auth(auth)
    for factory in factories:
        permissions = GstRtspServer.RTSPPermissions()
        permissions.add_permission_for_role("viewer", "media.factory.access", True)
        permissions.add_permission_for_role("viewer", "media.factory.construct", True)
        factory.set_permissions(permissions)


def _parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, default=0, help="required unless --clip")
    p.add_argument("--path", default="/camera")
    p.add_argument(
        "--video",
        choices=("h264", "h265", "mjpeg"),
        default="h264",
        help="mjpeg: a camera the recorder must refuse, saying why",
    )
    p.add_argument("--audio", choices=("alaw", "mulaw", "aac", "aac-latm", "none"), default="alaw")
    p.add_argument("--aac-encoder", choices=("auto", "avenc_aac", "voaacenc"), default="auto")
    p.add_argument("--profile", choices=("baseline", "main", "high"), default=None, help="H.264 only")
    p.add_argument("--bframes", type=int, default=0, help="B-frames between references (0: none)")
    p.add_argument("--b-pyramid", action="store_true", help="B-frames as references (x264 b-pyramid)")
    p.add_argument("--slices", type=int, default=1, help="H.264 slices per frame")
    p.add_argument(
        "--intra-refresh", action="store_true", help="x264 periodic intra refresh: no IDR after the first"
    )
    p.add_argument(
        "--params",
        choices=("both", "sdp", "inband"),
        default="both",
        help="where the SPS/PPS (and VPS) go: SDP and before each IDR, the SDP only, in-band only",
    )
    p.add_argument(
        "--rtp-wrap-after",
        type=float,
        default=None,
        help="RTP timestamps (video and audio) wrap past 2^32 this many seconds in",
    )
    p.add_argument(
        "--ntp-offset", type=float, default=0.0, help="the camera's clock error in seconds (RTCP SR)"
    )
    p.add_argument("--log-frames", action="store_true", help="events log: one line per video frame sent")
    p.add_argument(
        "--encoder-defaults",
        action="store_true",
        help="H.264: x264enc's own defaults (look-ahead, frame threads) but GOP, rate, B-frames",
    )
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=720)
    p.add_argument("--fps", type=int, default=25)
    p.add_argument("--gop", type=int, default=0, help="frames between keyframes (default: fps)")
    p.add_argument("--bitrate-kbps", type=int, default=1500)
    p.add_argument("--label", default="")
    p.add_argument("--events-log")
    p.add_argument("--rtcp-interval", type=float, default=1.0, help="seconds between RTCP SRs")
    p.add_argument("--file", help="serve this pre-encoded clip instead of live encoding")
    p.add_argument("--count", type=int, default=1, help="file mode: number of mounts")
    p.add_argument("--clip", help="clip mode: write the live picture into this MPEG-TS file and exit")
    p.add_argument("--seconds", type=float, default=120.0, help="clip mode: length of the clip")
    p.add_argument("--mode", choices=("normal", "black", "frozen", "covered"), default="normal")
    p.add_argument("--onvif-port", type=int, default=0, help="live mode: serve ONVIF SetSynchronizationPoint")
    p.add_argument("--onvif-profile", default="Profile_1")
    p.add_argument("--onvif-user", default=None)
    p.add_argument("--onvif-password", default="")
    p.add_argument("--rtsp-user", default=None, help="every mount demands this login")
    p.add_argument("--rtsp-password", default="")
    p.add_argument("--rtsp-auth", choices=("basic", "digest"), default="digest")
    args = p.parse_args(argv)
    if not args.clip and not args.port:
        p.error("--port is required (unless --clip)")
    if args.clip and args.video == "mjpeg":
        p.error("clip mode writes H.264 or H.265")
    if not args.path.startswith("/"):
        args.path = "/" + args.path
    return args


def main(argv: list[str]) -> int:
    args = _parse_args(argv)
    Gst.init(None)
    args.rtcp_interval_ns = int(args.rtcp_interval * Gst.SECOND)
    if args.clip:
        codec = ["x264enc", "h264parse"] if args.video == "h264" else ["x265enc", "h265parse"]
        _check_elements(
            ["videotestsrc", "videobalance", "timeoverlay", "queue", *codec, "mpegtsmux", "filesink"]
        )
        return write_clip(args)
    events = EventsLog(args.events_log)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    # Capture instants are Unix time: the media pipelines run on a REALTIME system clock.
    clock = Gst.SystemClock(clock_type=Gst.ClockType.REALTIME)
    mounts = server.get_mount_points()
    paths: list[str] = []
    live: LiveCamera | None = None
    if args.file:
        if not os.path.isfile(args.file):
            _fail(2, f"clip {args.file} does not exist")
        if args.params != "both" or args.bframes or args.rtp_wrap_after is not None or args.ntp_offset:
            _fail(2, "encoder and RTP variants apply to live cameras, not to --file")
        files = FileMounts(args)
        _check_elements(files.required_elements())
        for i, factory in enumerate(files.factories):
            factory.set_clock(clock)
            mounts.add_factory(f"{args.path}{i}", factory)
            paths.append(f"{args.path}{i}")
    else:
        live = LiveCamera(args, events)
        _check_elements(live.required_elements())
        live.factory.set_clock(clock)
        live.server = server
        mounts.add_factory(args.path, live.factory)
        paths.append(args.path)
        if args.onvif_port:
            try:
                OnvifMedia(live, args.onvif_port, args.onvif_profile, args.onvif_user, args.onvif_password)
            except OSError as exc:
                _fail(EXIT_BIND, f"cannot listen for ONVIF on 127.0.0.1:{args.onvif_port}: {exc}")

    if args.rtsp_user is not None:
        require_login(server, files.factories if args.file else [live.factory], args)

    loop = GLib.MainLoop()
    if server.attach(None) == 0:
        _fail(EXIT_BIND, f"cannot listen on 127.0.0.1:{args.port}")
    # Drop sessions of clients that vanished without TEARDOWN, as cameras do.
    pool = server.get_session_pool()
    GLib.timeout_add_seconds(2, lambda: pool.cleanup() >= 0)

    def reply(text: str) -> None:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    def quit_now(*_: object) -> bool:
        events.write("quit", wall=time.time())
        # Exiting the process closes every client socket at once; no orderly teardown needed.
        sys.stdout.flush()
        os._exit(0)

    pending = b""

    def on_stdin(fd: int, condition: GLib.IOCondition) -> bool:
        nonlocal pending
        data = os.read(fd, 4096) if condition & GLib.IO_IN else b""
        if not data:
            quit_now()
        pending += data
        while b"\n" in pending:
            raw, pending = pending.split(b"\n", 1)
            words = raw.decode("utf-8", "replace").split()
            if not words:
                continue
            if words[0] == "quit":
                reply("OK quit")
                quit_now()
            try:
                if live is None:
                    raise ValueError("file mode takes only quit")
                reply("OK " + " ".join([live.command(words), *words[1:]]))
            except (ValueError, IndexError) as exc:
                reply(f"ERR {' '.join(words)}: {exc}")
        return True

    GLib.io_add_watch(sys.stdin.fileno(), GLib.IO_IN | GLib.IO_HUP | GLib.IO_ERR, on_stdin)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, quit_now)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, quit_now)
    for path in paths:
        reply(f"READY rtsp://127.0.0.1:{args.port}{path}")
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
