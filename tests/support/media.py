"""Real media for upload tests: a small H.264+AAC MP4 (what a body camera writes) and the multipart
body that carries it (for the tests that send raw bytes rather than the test client's files=)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import av
import numpy as np

CREATION = "2026-03-01T08:05:00.000000Z"


def make_clip(path: Path, seconds: float = 2.0, creation: str | None = CREATION) -> bytes:
    """A small real MP4: 320x240 H.264 at 25 fps plus mono AAC, moov at the end (no faststart)."""
    with av.open(str(path), "w", format="mp4") as out:
        if creation:
            out.metadata["creation_time"] = creation
        v: Any = out.add_stream("libx264", rate=25)
        v.width, v.height, v.pix_fmt = 320, 240, "yuv420p"
        a: Any = out.add_stream("aac", rate=48000)
        a.layout = "mono"
        for i in range(int(seconds * 25)):
            frame = av.VideoFrame.from_ndarray(
                np.full((240, 320, 3), (i * 5) % 255, dtype=np.uint8), format="rgb24"
            )
            frame.pts = i
            for p in v.encode(frame):
                out.mux(p)
        for p in v.encode():
            out.mux(p)
        for t in range(0, int(seconds * 48000), 1024):
            wave = (np.sin(np.arange(t, t + 1024) / 48000 * 2 * np.pi * 440) * 0.3).astype(np.float32)
            af = av.AudioFrame.from_ndarray(wave.reshape(1, -1), format="fltp", layout="mono")
            af.sample_rate, af.pts = 48000, t
            for p in a.encode(af):
                out.mux(p)
        for p in a.encode():
            out.mux(p)
    return path.read_bytes()


BOUNDARY = "vaudit-test-boundary"


def multipart(data: bytes, **fields: str) -> bytes:
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields.items()
    ]
    head = f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="c.mp4"\r\n\r\n'.encode()
    return b"".join(parts) + head + data + f"\r\n--{BOUNDARY}--\r\n".encode()
