"""A body-camera clip as a fragmented MP4 for the browser's player (the arrest before the centre's
cameras, the first scene of 全程回放).

Clips are stored as the camera wrote them (MP4, MOV, TS, MKV, AVI; the index in ``moov`` often at
the end), so the clip is read whole, checked against the hash taken at import (as every segment
is before playback), then remuxed without decoding: H.264 video and AAC audio copied into
fragments, media time 0 at the clip's first instant (its ``start`` in the index). A clip in
another video codec is refused with a clear error rather than transcoded (body cameras write
H.264; the disc's remux handles the rest); audio in another codec is left out.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Generator
from typing import IO, Any

import av

from domain.errors import ValidationFailed
from domain.types import BlobReader, ImportedClip, iso
from pipeline.viewing.playback import MOVFLAGS, VERIFY_IN_MEMORY, FootageAltered

PLAYABLE_VIDEO = {"h264"}
COPIED_AUDIO = {"aac"}


def verified_clip(reader: BlobReader, clip: ImportedClip) -> IO[bytes]:
    """The clip's bytes, read once and checked against the import hash and size; caller closes."""
    out = tempfile.SpooledTemporaryFile(max_size=VERIFY_IN_MEMORY)  # noqa: SIM115 (returned open)
    sha = hashlib.sha256()
    try:
        with reader.open(clip.storage_key) as src:
            while chunk := src.read(1 << 20):
                sha.update(chunk)
                out.write(chunk)
    except BaseException:
        out.close()
        raise
    if sha.hexdigest() != clip.sha256 or out.tell() != clip.size:
        out.close()
        raise FootageAltered(
            f"body-camera clip {clip.storage_key} ({iso(clip.start)}) no longer matches the hash taken at"
            " import; it is not played",
            key=clip.storage_key,
            clip_id=clip.clip_id,
            recorded_sha256=clip.sha256,
            actual_sha256=sha.hexdigest(),
        )
    out.seek(0)
    return out


class _Sink:
    def __init__(self) -> None:
        self.buf = bytearray()

    def write(self, data: bytes) -> int:
        self.buf += data
        return len(data)

    def take(self) -> bytes:
        out = bytes(self.buf)
        self.buf.clear()
        return out


def clip_chunks(reader: BlobReader, clip: ImportedClip) -> Generator[bytes, None, None]:
    """The clip as fragmented MP4 byte chunks (ftyp + moov first); media time 0 is ``clip.start``."""
    handle = verified_clip(reader, clip)
    try:
        ic: Any = av.open(handle, "r")
        try:
            if not ic.streams.video:
                raise ValidationFailed(f"body-camera clip {clip.clip_id} has no picture")
            vin = ic.streams.video[0]
            if vin.codec_context.name not in PLAYABLE_VIDEO:
                raise ValidationFailed(
                    f"body-camera clip {clip.clip_id} is {vin.codec_context.name}: the browser plays H.264 only;"
                    " export the case's disc to see it",
                    fields=[{"field": "path.clip_id", "message": "video codec not playable in the browser"}],
                )
            ains = [s for s in ic.streams.audio if s.codec_context.name in COPIED_AUDIO]
            sink = _Sink()
            oc: Any = av.open(
                sink,
                "w",
                format="mp4",
                options={"movflags": MOVFLAGS, "avoid_negative_ts": "make_non_negative"},
            )
            outs = {vin.index: oc.add_stream_from_template(vin)}
            if ains:
                outs[ains[0].index] = oc.add_stream_from_template(ains[0])
            zero = ic.start_time or 0  # µs: the file's first instant is the clip's start
            oc.start_encoding()
            yield sink.take()
            for packet in ic.demux([s for s in ic.streams if s.index in outs]):
                if packet.dts is None or packet.size == 0:
                    continue
                tb = packet.stream.time_base
                shift = int(zero * tb.denominator / (tb.numerator * 1_000_000))
                packet.dts -= shift
                if packet.pts is not None:
                    packet.pts -= shift
                packet.stream = outs[packet.stream.index]
                packet.time_base = tb
                oc.mux(packet)
                if sink.buf:
                    yield sink.take()
            oc.close()
            tail = sink.take()
            if tail:
                yield tail
        finally:
            ic.close()
    finally:
        handle.close()
