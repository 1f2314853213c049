"""The camera conformance matrix: cameras as independent encoders send them, and the checks made
from the outside on what ``vaudit run`` recorded (docs/design/recorder.md, "Cameras as they come").

Every camera is a real gst-rtsp-server (``pipeline/simulator/gst_camera.py``) with GStreamer's own
encoders and payloaders set the way the variant says. The checks read the stored files with the
system's ``ffmpeg``/``ffprobe`` and PyAV and the camera's own log, never the recorder's code:

* the recording of a camera tiles its time (a segment's end is the next one's start) except where
  the variant expects a gap, and the gaps it has are the expected ones with their causes;
* every frame the camera sent in the recorded time is in the files, once, in order: a frame is
  found by its slice data (``vcl`` in the camera's log), which no muxer changes;
* a segment starts on the wall clock: within ``WALL_TOLERANCE`` of when its first frame was
  captured (a run anchored by the camera's RTCP clock) or sent (a run anchored by receipt, when the
  camera's clock and its sending disagree by more than the recorder believes), by the camera's own
  log, not the recorder's clock;
* audio is kept (its seconds in each segment) where the camera sent audio;
* each stored file decodes with ``ffmpeg -v error ... -f null -`` printing nothing.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import av

from pipeline.simulator.camera import AudioCodec, Encoding

WALL_TOLERANCE = 0.5  # seconds between a segment's start and its first frame's capture time
AUDIO_KEPT = 0.9  # share of a segment's length its audio must cover
FPS = 25


@dataclass(frozen=True)
class Variant:
    """One camera of the matrix and what it is expected to do to the recording."""

    camera_id: str
    room_id: str
    what: str  # the matrix row, as docs/design/recorder.md shows it
    video: Literal["h264", "h265"] = "h264"
    audio: AudioCodec = "alaw"
    encoding: Encoding = field(default_factory=Encoding)
    gop_seconds: float = 1.0
    width: int = 320
    height: int = 240
    action: Literal["", "resize", "audio_stop"] = ""

    @property
    def codec(self) -> str:
        return "hevc" if self.video == "h265" else "h264"

    @property
    def audio_codec(self) -> str | None:
        return {"alaw": "pcm_alaw", "mulaw": "pcm_mulaw", "aac": "aac", "aac-latm": "aac"}.get(self.audio)


RESIZED = (480, 270)

MATRIX: list[Variant] = [
    Variant(
        "base-sdp",
        "conf-x",
        "H.264 Baseline, no B-frames, GOP 0.5 s, SPS/PPS only in the SDP, G.711 A-law",
        encoding=Encoding(profile="baseline", params="sdp"),
        gop_seconds=0.5,
    ),
    Variant(
        "main-b2-inband",
        "conf-b",
        "H.264 Main, 2 B-frames, GOP 2 s, SPS/PPS only in-band, G.711 µ-law",
        audio="mulaw",
        encoding=Encoding(profile="main", bframes=2, params="inband"),
        gop_seconds=2.0,
    ),
    Variant(
        "high-b3-pyramid",
        "conf-x",
        "H.264 High, 3 B-frames as a pyramid, 4 slices per frame, AAC MPEG4-GENERIC (voaacenc)",
        audio="aac",
        encoding=Encoding(profile="high", bframes=3, b_pyramid=True, slices=4, aac_encoder="voaacenc"),
    ),
    Variant(
        "high-b2-640",
        "conf-a",
        "H.264 High, 2 B-frames (x264 b-adapt off), 640x360, GOP 2 s, AAC MP4A-LATM",
        audio="aac-latm",
        encoding=Encoding(profile="high", bframes=2),
        gop_seconds=2.0,
        width=640,
        height=360,
    ),
    Variant(
        "x264-defaults",
        "conf-x",
        "x264enc with its own defaults (preset, look-ahead, frame threads: "
        "seconds from capture to sending), 2 B-frames, G.711 A-law",
        encoding=Encoding(bframes=2, encoder_defaults=True),
        gop_seconds=2.0,
    ),
    Variant(
        "gop10-noaudio",
        "conf-x",
        "H.264 High, GOP 10 s, no audio",
        audio="none",
        encoding=Encoding(profile="high"),
        gop_seconds=10.0,
    ),
    Variant(
        "intra-refresh",
        "conf-x",
        "H.264 periodic intra refresh (no IDR after the first), G.711 A-law",
        encoding=Encoding(intra_refresh=True),
    ),
    Variant("h265", "conf-x", "H.265 without B-frames, G.711 A-law", video="h265"),
    Variant(
        "h265-b3",
        "conf-b",
        "H.265 with 3 B-frames, AAC",
        video="h265",
        audio="aac",
        encoding=Encoding(bframes=3),
    ),
    Variant(
        "rtp-wrap",
        "conf-x",
        "RTP timestamps of video and audio wrap past 2^32 8 s in, AAC",
        audio="aac",
        encoding=Encoding(rtp_wrap_after=8.0),
    ),
    Variant(
        "clock-3h-off",
        "conf-x",
        "camera clock 3 h ahead (RTCP sender reports), G.711 A-law",
        encoding=Encoding(ntp_offset=3 * 3600.0),
    ),
    Variant(
        "resize",
        "conf-b",
        f"resolution changed between sessions (320x240 -> {RESIZED[0]}x{RESIZED[1]})",
        action="resize",
    ),
    Variant(
        "audio-stops", "conf-a", "audio stops for 10 s while video goes on, G.711 A-law", action="audio_stop"
    ),
]


# -- reading what was recorded ------------------------------------------------------------------
def vcl_fingerprint(codec: str, data: bytes) -> str:
    """SHA-1 prefix of a packet's slice data (VCL NAL units, trailing zeros dropped, joined): the
    camera logs the same of every frame it sends (``gst_camera.vcl_fingerprint``)."""
    units = [u.rstrip(b"\x00") for u in data.split(b"\x00\x00\x01")[1:]]
    hevc = codec == "hevc"
    vcl = [u for u in units if u and ((u[0] >> 1) & 0x3F < 32 if hevc else 1 <= u[0] & 0x1F <= 5)]
    return hashlib.sha1(b"".join(vcl)).hexdigest()[:16]


def annexb(data: bytes) -> bytes:
    """An MP4 sample's NAL units (4-byte lengths) as Annex B, so that it fingerprints alike."""
    out, i = bytearray(), 0
    while i + 4 <= len(data):
        n = int.from_bytes(data[i : i + 4], "big")
        out += b"\x00\x00\x01" + data[i + 4 : i + 4 + n]
        i += 4 + n
    return bytes(out)


def video_frames(path: Path, codec: str) -> list[str]:
    """The fingerprints of a stored file's video packets, in file order (MPEG-TS or MP4)."""
    with av.open(str(path)) as c:
        video = c.streams.video[0]
        mp4 = c.format.name.startswith("mov")
        return [
            vcl_fingerprint(codec, annexb(bytes(p)) if mp4 else bytes(p)) for p in c.demux(video) if p.size
        ]


def audio_seconds(path: Path, codec: str | None) -> float:
    """Seconds of audio in a stored file: G.711 (a data stream) by its bytes, AAC by its frames."""
    with av.open(str(path)) as c:
        if codec in ("pcm_alaw", "pcm_mulaw"):
            data = [s for s in c.streams if s.type == "data"]
            if not data:
                return 0.0
            return sum(p.size for p in c.demux(data[0]) if p.size) / 8000
        if not c.streams.audio:
            return 0.0
        stream = c.streams.audio[0]
        rate = stream.codec_context.sample_rate or 16000
        return sum(1 for p in c.demux(stream) if p.size) * 1024 / rate


def ffmpeg_errors(path: Path | str) -> str:
    """What the system's ffmpeg prints decoding the whole file (nothing for a clean file)."""
    done = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-f", "null", "-"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return (done.stderr.strip() + ("" if done.returncode == 0 else f" (exit {done.returncode})"))[:600]


def ffprobe_video(path: Path) -> dict[str, Any]:
    """The first video stream of a file by ffprobe, frames counted."""
    done = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-count_frames",
            "-show_entries",
            "stream=codec_name,width,height,nb_read_frames,avg_frame_rate,r_frame_rate:format=duration",
            "-of",
            "json",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    data = json.loads(done.stdout)
    stream = data["streams"][0]
    stream["duration"] = float(data["format"]["duration"])
    return dict(stream)


@dataclass
class CameraLog:
    """The frames a simulated camera sent, by fingerprint, from its events log."""

    # Usually one frame per fingerprint; two frames with the same slice bytes (a static picture on a
    # loaded machine, the same POC bits after their wrap) share one, and the camera sent both.
    frames: dict[str, list[dict[str, Any]]]
    switches: list[tuple[str, float]]  # ("audio off"/"audio on"/"resize", wall)

    @classmethod
    def read(cls, events: list[dict[str, Any]]) -> CameraLog:
        frames: dict[str, list[dict[str, Any]]] = {}
        switches: list[tuple[str, float]] = []
        for e in events:
            if e.get("event") == "frame":
                frames.setdefault(e["vcl"], []).append(e)
            elif e.get("event") == "audio":
                switches.append(("audio on" if e["on"] else "audio off", float(e["wall"])))
            elif e.get("event") == "resize":
                switches.append(("resize", float(e["wall"])))
        return cls(frames, switches)

    def match(self, fingerprints: list[str], after: int = 0) -> list[dict[str, Any] | None]:
        """The sent frame of each recorded fingerprint, in recording order (None: never sent).

        Where several sent frames share a fingerprint, the one whose number follows the previous
        recorded frame best is taken: a shared fingerprint must not read as a lost and a doubled
        frame, while a frame the recorder really doubled or dropped still shows as one.
        """
        out: list[dict[str, Any] | None] = []
        last = after
        for fp in fingerprints:
            cands = self.frames.get(fp)
            if not cands:
                out.append(None)
                continue
            best = min(cands, key=lambda f: abs(int(f["n"]) - (last + 1)))
            out.append(best)
            last = int(best["n"])
        return out

    def at(self, what: str) -> float:
        return next(t for w, t in self.switches if w == what)
