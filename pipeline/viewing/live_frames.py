"""Live view: the newest picture of each camera, and who is in each room now.

**Picture (latency ≤ 3 s).** The recorder writes the open segment into the spool as it goes (at
most a quarter second of the camera's bitrate waits in its buffer), so the spool already holds the
last second of every camera. :class:`LiveFrames` decodes only the newest complete keyframe of the
camera's open segment (the picture checks' reader) and returns it as JPEG, cached for ``ttl`` seconds so any number of
viewers costs one decode per camera per ``ttl``. Age of a frame ≤ GOP (1 s on the centre's
cameras) + ``ttl`` (0.5 s); the page polls every second, so the picture on screen is at most
about 2.5 s old. The response says the frame's wall time (``X-Frame-Time``) so the page shows
the real latency.

Who is in each room now is the index's answer (:meth:`indexer.footage.FootageIndex.occupants`).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import av

from domain.errors import NotFoundError
from recorders.spool import growing_segment

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LiveFrame:
    jpeg: bytes
    wall: datetime | None  # when the camera took it (None: unknown)
    grabbed: float  # time.time() of the decode


def last_keyframe(media: Path, start: datetime | None, quality: int = 80) -> LiveFrame:
    """The last complete keyframe of a (growing) MPEG-TS file, as JPEG: the picture checks' reader
    (:func:`pipeline.pictures.watcher.newest_keyframe`: a small probe, only that keyframe decoded)."""
    # Imported here: OpenCV is only needed once someone watches, and keeping it off ``vaudit run``'s
    # start-up keeps a restart's gap short.
    from pipeline.pictures.watcher import newest_keyframe, snapshot

    try:
        found = newest_keyframe(media, start)
    except av.FFmpegError as exc:
        raise NotFoundError(f"no picture yet in {media.name}: {exc}") from exc
    if found is None:
        raise NotFoundError(f"no keyframe yet in {media.name}")
    jpeg = snapshot(found.frame, quality)
    if not jpeg:
        raise NotFoundError("JPEG encoding failed")
    return LiveFrame(jpeg, found.wall, time.time())


class LiveFrames:
    """Newest keyframe per camera, decoded at most once per ``ttl`` whatever the viewers."""

    def __init__(self, spool: Path, ttl: float = 0.5) -> None:
        self.spool = spool
        self.ttl = ttl
        self._cache: dict[str, LiveFrame] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def frame(self, camera_id: str) -> LiveFrame:
        with self._guard:
            lock = self._locks.setdefault(camera_id, threading.Lock())
        with lock:
            cached = self._cache.get(camera_id)
            if cached is not None and time.time() - cached.grabbed < self.ttl:
                return cached
            found = growing_segment(self.spool, camera_id)
            if found is None:
                raise NotFoundError(f"camera {camera_id} is not recording now (no open segment)")
            frame = last_keyframe(*found)
            self._cache[camera_id] = frame
            return frame


def frame_age(frame: LiveFrame) -> float | None:
    return None if frame.wall is None else max(0.0, time.time() - frame.wall.timestamp())
