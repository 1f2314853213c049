"""Originals with their sound: per stage and camera, a Matroska file holding the camera's video
and its G.711 audio copied unchanged from the original segments.

Why it exists: the recorder's MPEG-TS carries G.711 (A-law, µ-law) as a private-data PES
(stream_type 0x06) without a descriptor, and no TS demuxer can tell what it is: libavformat's
MPEG-TS demuxer knows no stream type, registration descriptor or probe for G.711 and reports a
``bin_data`` data stream; VLC's TS demuxer calls the PID "unknown" (docs/design/export.md). Matroska
labels it (``A_MS/ACM`` with WAVE format tag 6 or 7), and ffplay and VLC play it with sound.

Nothing is decoded: video packets are copied (Annex B becomes length-prefixed, as Matroska
requires; the NAL units are the camera's), audio packets are copied byte for byte. Timestamps
are the wall-clock offset from the file start, so consecutive segments join without a jump; a
recording gap starts the next file, whose title and start time say when. The G.711 payload of
every source is hashed on the way; the manifest records it so the verifiers can show that the
remux and the originals carry the same sound (exporter/disc_verifier.py).

Why Debian's ``ffmpeg`` does the last step: PyAV refuses ``pcm_alaw`` in Matroska (its
``add_stream`` asks ``avformat_query_codec`` at normal compliance, and libavformat's Matroska
muxer admits ACM codecs only below it), so PyAV writes NUT, which labels G.711 and keeps every
packet's time, into a pipe, and ``ffmpeg -c copy`` turns it into Matroska without touching a
packet (``-fflags +bitexact``: the same input gives the same bytes).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import IO, Any, BinaryIO
from zoneinfo import ZoneInfo

import av

from domain.types import iso
from exporter.errors import MediaError, ToolMissing
from exporter.lanes import local_stamp
from exporter.manifest import FileEntry, entry_for
from exporter.remux import SourceMedia

log = logging.getLogger(__name__)

REMUX_DIR = "originals-with-sound"  # beside originals/ on the disc: the name says what a clerk finds
TB = Fraction(1, 90000)  # MPEG-TS time base; kept through NUT, ffmpeg rounds to Matroska's 1 ms
# Segments of one run share their cut instant (docs/design/recorder.md); anything later is a gap.
CONTIGUOUS = timedelta(milliseconds=1)
G711_NAMES = {
    "pcm_alaw": "pcm_alaw",
    "alaw": "pcm_alaw",
    "g711a": "pcm_alaw",
    "pcma": "pcm_alaw",
    "pcm_mulaw": "pcm_mulaw",
    "mulaw": "pcm_mulaw",
    "g711u": "pcm_mulaw",
    "pcmu": "pcm_mulaw",
}
TRACK_TITLES = {
    "pcm_alaw": "G.711 A-law 原始声音 (original sound, unchanged)",
    "pcm_mulaw": "G.711 µ-law 原始声音 (original sound, unchanged)",
}
_STDERR_TAIL = 600


def g711_codec(name: str | None) -> str | None:
    """``pcm_alaw``/``pcm_mulaw`` for any name a sidecar may use for G.711; None otherwise."""
    return G711_NAMES.get((name or "").lower())


def needs_remux(src: SourceMedia) -> bool:
    """G.711 in MPEG-TS: unlabelled there. (A clip in a container that labels it plays as it is.)"""
    return src.container == "mpegts" and g711_codec(src.audio_codec) is not None


def find_ffmpeg(path: str | None = None) -> str:
    exe = path or shutil.which("ffmpeg")
    if exe is None or not os.access(exe, os.X_OK):
        raise ToolMissing(
            "ffmpeg is needed to write the originals with their G.711 sound as Matroska "
            "(apt install ffmpeg), or set [export] g711_remux = false"
        )
    return exe


@dataclass(frozen=True, slots=True)
class PayloadPart:
    """The G.711 bytes one source contributed: their count and SHA-256."""

    key: str
    size: int
    sha256: str

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "bytes": self.size, "sha256": self.sha256}


@dataclass(slots=True)
class RemuxedOriginal:
    path: Path
    video_codec: str
    audio_codec: str  # pcm_alaw | pcm_mulaw
    sample_rate: int
    start: datetime
    end: datetime
    parts: list[PayloadPart] = field(default_factory=list)
    sha256: str = ""  # of all the G.711 bytes in file order (what ``ffmpeg -map 0:a -f data`` prints)

    @property
    def duration(self) -> float:
        return (self.end - self.start).total_seconds()

    def g711(self) -> dict[str, Any]:
        """The manifest's record of the sound: codec, rate, the whole payload's digest and each
        source's share (so a verifier can match the file against each original)."""
        return {
            "codec": self.audio_codec,
            "sample_rate": self.sample_rate,
            "bytes": sum(p.size for p in self.parts),
            "sha256": self.sha256,
            "parts": [p.to_json() for p in self.parts],
        }


def _ticks(delta: timedelta) -> int:
    return delta // timedelta(microseconds=1) * 9 // 100


class _Part:
    """One Matroska file being written: PyAV muxes NUT into ffmpeg's stdin."""

    def __init__(
        self, path: Path, ffmpeg: str, vin: Any, codec: str, rate: int, start: datetime, title: str
    ) -> None:
        self.path, self.start = path, start
        self.file = RemuxedOriginal(path, vin.codec_context.name, codec, rate, start, start)
        self.bytes_in = 0
        self.next_start = start  # where the next segment starts if the recording goes on
        self.payload = hashlib.sha256()
        self.last_dts: dict[str, int] = {"video": -1, "audio": -1}
        self.end_ticks = 0
        self._stderr: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close/abort)
        cmd = [
            ffmpeg,
            "-nostdin",
            "-v",
            "error",
            "-f",
            "nut",
            "-i",
            "pipe:0",
            "-map",
            "0",
            "-c",
            "copy",
            "-map_metadata",
            "-1",
            "-metadata",
            f"title={title}",
            "-metadata",
            f"creation_time={iso(start)}",
            "-metadata:s:a:0",
            f"title={TRACK_TITLES[codec]}",
            "-fflags",
            "+bitexact",
            "-f",
            "matroska",
            "-y",
            str(path),
        ]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=self._stderr)
        assert self.proc.stdin is not None
        self.oc: Any = av.open(self.proc.stdin, "w", format="nut")
        self.video = self.oc.add_stream_from_template(vin)
        self.video.time_base = TB
        self.audio = self.oc.add_stream(codec, rate=rate, layout="mono")
        self.audio.time_base = TB

    def write(self, packet: Any, kind: str, dts: int, pts: int) -> None:
        last = self.last_dts[kind]
        if dts <= last:  # overlapping segments or a camera's jitter: keep each stream rising
            pts, dts = pts + last + 1 - dts, last + 1
        self.last_dts[kind] = dts
        packet.stream = self.video if kind == "video" else self.audio
        packet.time_base = TB
        packet.dts, packet.pts = dts, max(pts, dts)
        self.end_ticks = max(self.end_ticks, packet.pts + (packet.duration or 0))
        self.oc.mux(packet)

    def _stderr_text(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace").strip()

    def close(self, max_file_bytes: int) -> RemuxedOriginal:
        try:
            self.oc.close()
            assert self.proc.stdin is not None
            self.proc.stdin.close()
        except (OSError, av.FFmpegError) as exc:
            self.abort()
            raise MediaError(f"cannot write {self.path.name}: {exc}", path=str(self.path)) from exc
        code = self.proc.wait()
        said = self._stderr_text()
        self._stderr.close()
        if code != 0 or said:  # -v error: anything printed is a fault, the disc must not carry it
            self.path.unlink(missing_ok=True)
            raise MediaError(
                f"ffmpeg could not write {self.path.name} (exit {code}): {said[-_STDERR_TAIL:]}",
                path=str(self.path),
            )
        size = self.path.stat().st_size
        if size >= max_file_bytes:
            raise MediaError(
                f"{self.path.name} is {size} bytes, over the {max_file_bytes} limit", path=str(self.path)
            )
        self.file.end = self.start + timedelta(microseconds=self.end_ticks * 100 // 9)
        self.file.sha256 = self.payload.hexdigest()
        return self.file

    def abort(self) -> None:
        """Stop the child and remove the partial file (a cancel or a failure elsewhere)."""
        self.proc.kill()
        self.proc.wait()
        try:
            self.oc.close()  # the pipe's reader is gone: this only frees the muxer
        except Exception:  # any failure here is secondary to the one being handled
            log.debug("closing the NUT pipe of %s after a failure", self.path.name)
        self._stderr.close()
        self.path.unlink(missing_ok=True)


def remux_g711(
    sources: Sequence[SourceMedia],
    open_source: Callable[[SourceMedia], BinaryIO | str],
    out_dir: Path,
    stem: str,
    title: str,
    tz: ZoneInfo,
    max_file_bytes: int,
    ffmpeg: str,
    tick: Callable[[int], None] = lambda _n: None,
) -> list[RemuxedOriginal]:
    """``stem.mkv`` from the G.711 sources in time order, and ``stem.partNN.mkv`` after each
    recording gap, format change or ``max_file_bytes``; sources without G.711 are left out (they
    play as they are). Each file's title says its local start time.

    A file holds one continuous stretch of recording: segments of a run join without a jump, and
    a gap starts a new file (VLC loses sound blocks after a hole in a file's timestamps, and the
    file list then shows the gap plainly). A part grows by whole segments: a Matroska file is
    smaller than the TS it comes from (no 188-byte packet headers and stuffing), so summing the
    sources' sizes keeps it under the limit; the written size is checked all the same.
    ``tick(bytes)`` after each source is where the caller cancels.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    files: list[RemuxedOriginal] = []
    part: _Part | None = None
    fmt: tuple[Any, ...] | None = None
    try:
        for src in sorted(sources, key=lambda s: s.start):
            codec = g711_codec(src.audio_codec)
            if codec is None or not needs_remux(src):
                continue
            rate = src.audio_rate or 8000
            handle = open_source(src)
            try:
                ic: Any = av.open(handle, "r", options={"analyzeduration": "0"})
            except av.FFmpegError as exc:
                raise MediaError(f"cannot open {src.key}: {exc}", key=src.key) from exc
            try:
                others = [s for s in ic.streams if s.type in ("audio", "data")]
                if not ic.streams.video or not others:
                    log.info("%s: no video or no audio stream, left out of the G.711 remux", src.key)
                else:
                    vin, ain = ic.streams.video[0], others[0]
                    ctx = vin.codec_context
                    this = (ctx.name, ctx.width, ctx.height, codec, rate)
                    if part is not None and (
                        src.start - part.next_start > CONTIGUOUS
                        or this != fmt
                        or part.bytes_in + src.size > max_file_bytes
                    ):
                        files.append(part.close(max_file_bytes))
                        part = None
                    if part is None:
                        n = len(files) + 1
                        name = f"{stem}.mkv" if n == 1 else f"{stem}.part{n:02d}.mkv"
                        named = f"{title} · {local_stamp(src.start, tz)}"
                        part = _Part(out_dir / name, ffmpeg, vin, codec, rate, src.start, named)
                        fmt = this
                    part.file.parts.append(_copy_source(part, ic, vin, ain, src))
                    part.bytes_in += src.size
                    part.next_start = src.end
            except av.FFmpegError as exc:
                raise MediaError(f"cannot remux {src.key}: {exc}", key=src.key) from exc
            finally:
                ic.close()
                if not isinstance(handle, str):
                    handle.close()
            tick(src.size)
        if part is not None:
            files.append(part.close(max_file_bytes))
            part = None
    except BaseException:
        if part is not None:
            part.abort()
        for f in files:
            f.path.unlink(missing_ok=True)
        raise
    return files


def _copy_source(part: _Part, ic: Any, vin: Any, ain: Any, src: SourceMedia) -> PayloadPart:
    """Every packet of one segment into the part; returns its G.711 payload's size and digest."""
    anchor = (ic.start_time or 0) * 9 // 100  # µs -> ticks: the segment's earliest timestamp
    offset = _ticks(src.start - part.start)
    sha, size = hashlib.sha256(), 0
    for packet in ic.demux(vin, ain):
        if packet.size == 0:
            continue  # the demuxer's end-of-stream marker carries no bytes
        kind = "video" if packet.stream is vin else "audio"
        if kind == "audio":
            data = bytes(packet)
            sha.update(data)
            part.payload.update(data)
            size += len(data)
        if packet.dts is None and packet.pts is None:
            # No time at all: place it just after its predecessor rather than drop its bytes.
            dts = pts = part.last_dts[kind] + 1
        else:
            dts = offset + (packet.dts if packet.dts is not None else packet.pts) - anchor
            pts = offset + (packet.pts if packet.pts is not None else packet.dts) - anchor
        part.write(packet, kind, dts, pts)
    return PayloadPart(src.key, size, sha.hexdigest())


def remux_entry(
    content: Path, f: RemuxedOriginal, stage: str, camera: str, originals: Mapping[str, FileEntry]
) -> FileEntry:
    """The manifest entry of one remux file. Each original it came from gets its own record of
    the sound it holds: what the verifiers hold the remux against."""
    sources = []
    for part in f.parts:
        original = originals[part.key]
        original.g711 = {
            "codec": f.audio_codec,
            "sample_rate": f.sample_rate,
            "bytes": part.size,
            "sha256": part.sha256,
        }
        sources.append(
            {"key": part.key, "sha256": original.sha256, "start": original.start, "end": original.end}
        )
    entry = entry_for(
        content,
        f.path.relative_to(content).as_posix(),
        "original_remux",
        f"matroska ({f.video_codec} copied, {f.audio_codec} {f.sample_rate} Hz copied byte for byte)",
        duration=round(f.duration, 3),
        stage=stage,
        camera=camera,
        start=iso(f.start),
        end=iso(f.end),
        sources=sources,
    )
    entry.g711 = f.g711()
    return entry
