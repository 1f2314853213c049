"""Live routes: rooms with their cameras, who is in each room now, and each camera's newest
picture (see :mod:`pipeline.live` for how the latency stays under 3 s)."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response

from domain.errors import IndexStoreError, NotFoundError
from domain.types import iso
from pipeline.api.auth import audit, principal
from pipeline.live import LiveFrames, frame_age, occupants

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1/live", tags=["live"])
AUDIT_EVERY = 300.0  # one live-view audit row per user and camera per 5 minutes of watching


class _Watchers:
    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def first_in_a_while(self, user: str, camera_id: str) -> bool:
        now = time.monotonic()
        with self._lock:
            last = self._seen.get((user, camera_id))
            if last is not None and now - last < AUDIT_EVERY:
                return False
            self._seen[(user, camera_id)] = now
            return True


def install(app: FastAPI) -> None:
    rt = app.state.runtime
    app.state.live_frames = LiveFrames(rt.spool) if rt is not None else None
    app.state.live_watchers = _Watchers()


@router.get("/rooms", summary="Rooms, their cameras and who is in each room now")
def live_rooms(request: Request) -> dict[str, Any]:
    settings = request.app.state.settings
    case_api = getattr(request.app.state, "case_api", None)
    present = occupants(case_api.footage, datetime.now(UTC)) if case_api is not None else {}
    return {
        "rooms": [
            {
                "id": room.id,
                "name": room.name,
                "kind": room.kind.value,
                "cameras": [{"id": c.id, "name": c.name or c.id} for c in room.cameras],
                "occupants": present.get(room.id, []),
            }
            for room in settings.rooms
        ]
    }


@router.get(
    "/{camera_id}.jpg", summary="The camera's newest keyframe (JPEG); X-Frame-Time is when it was taken"
)
def live_frame(request: Request, camera_id: str) -> Response:
    frames: LiveFrames | None = getattr(request.app.state, "live_frames", None)
    if frames is None:
        raise IndexStoreError("live view needs the recording node (vaudit run)")
    if request.app.state.settings.camera(camera_id) is None:
        raise NotFoundError(f"unknown camera {camera_id!r}")
    who = principal(request)
    if request.app.state.live_watchers.first_in_a_while(who.name, camera_id):
        audit(request, "live_view", f"camera:{camera_id}")
    frame = frames.frame(camera_id)
    age = frame_age(frame)
    headers = {"Cache-Control": "no-store"}
    if frame.wall is not None:
        headers["X-Frame-Time"] = iso(frame.wall)
    if age is not None:
        headers["X-Frame-Age"] = f"{age:.3f}"
    return Response(frame.jpeg, media_type="image/jpeg", headers=headers)
