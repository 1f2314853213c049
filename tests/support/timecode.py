"""Footage whose pictures say when they were taken: each frame carries its wall-clock frame number
(25 fps since :data:`EPOCH`) as 16 black or white blocks, so a browser test can read, from the
picture on screen, which instant a player shows (``READ_JS``), independent of the page's own idea
of its clock. Segments are real MPEG-TS (H.264 or H.265, G.711 A-law) with sidecars and a hash
chain, stored under a directory the way the recorder and the uploader leave them.

    segs = write_camera(root, "cam-a", "h264", [(0, 30), (40, 80)])  # two runs, a 10 s hole
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np

from domain.types import ClockSource, SegmentRecord, StreamInfo, segment_key, sidecar_key

EPOCH = datetime(2024, 5, 1, 1, 0, 0, tzinfo=UTC)
FPS = 25
W, H = 320, 192
BLOCK = 40  # 8 blocks a row, 2 rows: 16 bits, 2,621 s of frame numbers
SEGMENT_SECONDS = 10


def at(seconds: float) -> datetime:
    return EPOCH + timedelta(seconds=seconds)


def _picture(n: int) -> Any:
    img = np.full((H, W, 3), 96, np.uint8)
    for bit in range(16):
        row, col = divmod(bit, 8)
        y = 16 + row * (BLOCK + 16)
        img[y : y + BLOCK, col * BLOCK : (col + 1) * BLOCK, :] = 255 if (n >> bit) & 1 else 0
    img[150 + (n % 30) : 152 + (n % 30), :, 1] = 200  # motion, so frames differ elsewhere too
    return av.VideoFrame.from_ndarray(img, format="rgb24")


def encode_segment(path: Path, codec: str, start: float, seconds: float) -> None:
    """``seconds`` of timecoded picture from wall second ``start`` (since EPOCH), plus a tone."""
    oc: Any = av.open(str(path), "w", format="mpegts")
    vs = oc.add_stream("libx264" if codec == "h264" else "libx265", rate=FPS)
    vs.width, vs.height, vs.pix_fmt = W, H, "yuv420p"
    vs.options = (
        {"g": str(FPS), "preset": "ultrafast", "bf": "0"}
        if codec == "h264"
        else {"preset": "ultrafast", "x265-params": f"keyint={FPS}:bframes=0:log-level=error"}
    )
    aus = oc.add_stream("pcm_alaw", rate=8000, layout="mono")
    first = round(start * FPS)
    apts = 0
    for i in range(round(seconds * FPS)):
        frame = _picture(first + i)
        frame.pts = i
        frame.time_base = Fraction(1, FPS)
        oc.mux(vs.encode(frame))
        tone = (np.sin(np.arange(apts, apts + 320) * 2 * np.pi * 440 / 8000) * 6000).astype(np.int16)
        af = av.AudioFrame.from_ndarray(tone.reshape(1, -1), format="s16", layout="mono")
        af.sample_rate, af.pts = 8000, apts
        apts += 320
        oc.mux(aus.encode(af))
    oc.mux(vs.encode(None))
    oc.mux(aus.encode(None))
    oc.close()


def write_camera(
    root: Path, camera_id: str, codec: str, runs: list[tuple[float, float]]
) -> list[SegmentRecord]:
    """Segments of ``camera_id`` covering each ``(start, end)`` run (wall seconds since EPOCH) in
    pieces of at most SEGMENT_SECONDS, stored with sidecars under ``root``; the records in order."""
    out: list[SegmentRecord] = []
    prev: str | None = None
    for a, b in runs:
        t = a
        while t < b:
            n = min(SEGMENT_SECONDS, b - t)
            key = segment_key(camera_id, at(t), len(out) + 1)
            path = root / key
            path.parent.mkdir(parents=True, exist_ok=True)
            encode_segment(path, codec, t, n)
            data = path.read_bytes()
            rec = SegmentRecord(
                camera_id=camera_id,
                run_id=f"{camera_id}-run1",
                seq=len(out) + 1,
                start=at(t),
                end=at(t + n),
                storage_key=key,
                size=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                prev_sha256=prev,
                clock_source=ClockSource.RTCP,
                stream=StreamInfo(codec, W, H, "pcm_alaw", 8000, 1),
                packets=0,
            )
            (root / sidecar_key(key)).write_text(json.dumps(rec.to_json(), sort_keys=True), encoding="utf-8")
            prev = rec.sha256
            out.append(rec)
            t += n
    return out


# In the page: the wall time (ms since the Unix epoch) of the picture a <video> shows, read from
# its blocks; null while it shows nothing. Argument: [video element, EPOCH in ms].
READ_JS = """([v, epoch]) => {
    if (!v || v.readyState < 2 || !v.videoWidth) return null;
    const c = document.createElement('canvas');
    c.width = v.videoWidth; c.height = v.videoHeight;
    const g = c.getContext('2d', {willReadFrequently: true});
    g.drawImage(v, 0, 0);
    let n = 0;
    for (let bit = 0; bit < 16; bit++) {
        const row = Math.floor(bit / 8), col = bit % 8;
        const x = Math.round((col * 40 + 20) * v.videoWidth / 320);
        const y = Math.round((16 + row * 56 + 20) * v.videoHeight / 192);
        const p = g.getImageData(x, y, 1, 1).data;
        if ((p[0] + p[1] + p[2]) / 3 > 128) n |= (1 << bit);
    }
    return epoch + n * 40;
}"""
