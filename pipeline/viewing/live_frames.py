"""Live view: the newest picture of each camera, and who is in each room now.

**Picture (latency ≤ 3 s).** The recorder writes the open segment into the spool as it goes (at
most a quarter second of the camera's bitrate waits in its buffer), so the spool already holds the
last second of every camera. :class:`LiveFrames` decodes only the newest complete keyframe of the
camera's open segment (the picture checks' reader) and returns it as JPEG, cached for ``ttl`` seconds so any number of
viewers costs one decode per camera per ``ttl``. Age of a frame ≤ GOP (1 s on the centre's
cameras) + ``ttl`` (0.5 s); the page polls every second, so the picture on screen is at most
about 2.5 s old. The response says the frame's wall time (``X-Frame-Time``) so the page shows
the real latency.

**Occupancy.** A subject is in a room now when their trajectory (observations and events)
ends in an open stay there; subjects with readings in the last ``window`` are considered.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import av

from domain.errors import NotFoundError
from domain.types import parse_iso
from indexer.footage import FootageIndex
from indexer.models import LocationObservation, ProcedureEvent, to_us

logger = logging.getLogger(__name__)

PARTIAL_SUFFIX = ".partial.json"


@dataclass(frozen=True, slots=True)
class LiveFrame:
    jpeg: bytes
    wall: datetime | None  # when the camera took it (None: unknown)
    grabbed: float  # time.time() of the decode


def open_segment(spool: Path, camera_id: str) -> tuple[Path, datetime | None] | None:
    """The camera's open (growing) segment in the spool and its start, if it is recording."""
    markers = sorted((spool / camera_id).glob(f"*/*/*/*{PARTIAL_SUFFIX}"))
    for marker in reversed(markers):
        media = marker.with_name(marker.name[: -len(PARTIAL_SUFFIX)] + ".ts")
        if media.exists():
            start: datetime | None = None
            try:
                doc = json.loads(marker.read_text(encoding="utf-8"))
                raw = doc.get("start")
                start = parse_iso(raw) if isinstance(raw, str) else None
            except (OSError, ValueError):
                start = None
            return media, start
    return None


def last_keyframe(media: Path, start: datetime | None, quality: int = 80) -> LiveFrame:
    """The last complete keyframe of a (growing) MPEG-TS file, as JPEG: the picture checks' reader
    (:func:`pipeline.pictures.watcher.newest_keyframe`: a small probe, only that keyframe decoded)."""
    # Imported here: OpenCV is only needed once someone watches, and keeping it off ``vaudit run``'s
    # start-up keeps a restart's gap short (picture_watch also imports this module).
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
            found = open_segment(self.spool, camera_id)
            if found is None:
                raise NotFoundError(f"camera {camera_id} is not recording now (no open segment)")
            frame = last_keyframe(*found)
            self._cache[camera_id] = frame
            return frame


def occupants(
    footage: FootageIndex, now: datetime, window: timedelta = timedelta(hours=24)
) -> dict[str, list[dict[str, Any]]]:
    """room id → subjects whose trajectory is in that room now (open stay)."""
    from sqlalchemy import select, union

    since = to_us(now - window)
    store = footage.store
    q = union(
        select(LocationObservation.subject_id).where(
            LocationObservation.time_us >= since, LocationObservation.subject_id.is_not(None)
        ),
        select(ProcedureEvent.subject_id).where(
            ProcedureEvent.time_us >= since, ProcedureEvent.subject_id.is_not(None)
        ),
    )
    with store.session("recent subjects") as s:
        ids = sorted({int(sid) for (sid,) in s.execute(q) if sid is not None})
    rooms: dict[str, list[dict[str, Any]]] = {}
    for sid in ids[:500]:
        stays = footage.trajectory(sid)
        if stays and stays[-1].end is None:
            subject = store.get_subject(sid)
            rooms.setdefault(stays[-1].room_id, []).append(
                {
                    "subject_id": sid,
                    "name": subject.name,
                    "role": subject.role,
                    "case_id": subject.case_id,
                    "since": stays[-1].start.isoformat(),
                }
            )
    return rooms


def frame_age(frame: LiveFrame) -> float | None:
    return None if frame.wall is None else max(0.0, time.time() - frame.wall.timestamp())
