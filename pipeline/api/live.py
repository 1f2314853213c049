"""Live routes: rooms with their cameras, who is in each room now, each camera's live video as
fragmented MP4 over a WebSocket (:mod:`pipeline.viewing.live_video`), and its newest keyframe as JPEG
(the page's fallback where Media Source Extensions are missing; :mod:`pipeline.viewing.live_frames`).

WebSocket ``/api/v1/live/{camera}/video``: a text message ``hello`` (``mime``, ``origin``: the
wall time of media time 0), then the init segment (binary), then one binary ``moof``+``mdat``
per frame; a text ``clock`` message (``server_ms``) about once a second. A new ``hello`` means a
new stream (the page starts a new source buffer). A viewer that falls behind is closed (1013).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import anyio.to_thread
from fastapi import APIRouter, FastAPI, Response, WebSocket, WebSocketDisconnect

from domain.errors import NotFoundError
from domain.types import iso
from indexer.users import Principal
from pipeline.api.auth import CallerDep
from pipeline.api.deps import (
    LiveFramesDep,
    LiveWatchers,
    LiveWatchersDep,
    MaybeCaseApiDep,
    MaybeLiveVideoDep,
    SecurityDep,
    SettingsDep,
)
from pipeline.api.runtime import Runtime
from pipeline.viewing.live_frames import frame_age
from pipeline.viewing.live_video import LiveVideo, Viewer, server_time

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1/live", tags=["live"])
AUDIT_EVERY = 300.0  # one live-view audit row per user and camera per 5 minutes of watching


def install(app: FastAPI, runtime: Runtime | None) -> None:
    """Live pictures and video from the runtime's spool (none on an API-only node)."""
    app.state.live_frames = runtime.live_frames if runtime is not None else None  # one cache per node
    app.state.live_video = LiveVideo(runtime.spool) if runtime is not None else None
    app.state.live_watchers = LiveWatchers(AUDIT_EVERY)

    def stop_live() -> None:
        hub: LiveVideo | None = getattr(app.state, "live_video", None)
        if hub is not None:
            hub.stop()

    app.router.on_shutdown.append(stop_live)


@router.get("/rooms", summary="Rooms, their cameras and who is in each room now")
def live_rooms(settings: SettingsDep, case_api: MaybeCaseApiDep) -> dict[str, Any]:
    present = case_api.footage.occupants(datetime.now(UTC)) if case_api is not None else {}
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
    "/{camera_id}.jpg",
    summary="The camera's newest keyframe (JPEG); X-Frame-Time is when it was taken",
    response_class=Response,
    responses={200: {"content": {"image/jpeg": {}}, "description": "The newest keyframe"}},
)
def live_frame(
    frames: LiveFramesDep,
    settings: SettingsDep,
    watchers: LiveWatchersDep,
    caller: CallerDep,
    camera_id: str,
) -> Response:
    if settings.camera(camera_id) is None:
        raise NotFoundError(f"unknown camera {camera_id!r}")
    if watchers.first_in_a_while(caller.who.name, camera_id):
        caller.audit("live_view", f"camera:{camera_id}")
    frame = frames.frame(camera_id)
    age = frame_age(frame)
    headers = {"Cache-Control": "no-store"}
    if frame.wall is not None:
        headers["X-Frame-Time"] = iso(frame.wall)
    if age is not None:
        headers["X-Frame-Age"] = f"{age:.3f}"
    return Response(frame.jpeg, media_type="image/jpeg", headers=headers)


CLOCK_EVERY = 1.0  # seconds between clock messages (also how fast a vanished client is noticed)


def _same_origin(ws: WebSocket) -> bool:
    """Browsers send the page's Origin on a WebSocket handshake and no CORS applies: refuse
    other sites (the SameSite=Strict cookie already stays home; this does not rely on it)."""
    origin = ws.headers.get("origin")
    if origin is None:  # not a browser (API clients authenticate with a bearer token)
        return True
    return urlsplit(origin).netloc == ws.headers.get("host", "")


@router.websocket("/{camera_id}/video")
async def live_video(
    ws: WebSocket, camera_id: str, hub: MaybeLiveVideoDep, settings: SettingsDep, sec: SecurityDep
) -> None:
    """The camera's live video: fMP4 fragments as they are recorded (see the module docstring).

    A WebSocket is refused with a close code, not the error shape, so what it may lack (the
    principal, a live hub on this node) is checked here rather than by raising dependencies."""
    who: Principal | None = ws.scope.get("state", {}).get("principal")
    if who is None or not _same_origin(ws):
        await ws.close(code=1008)
        return
    if hub is None or settings.camera(camera_id) is None:
        await ws.close(code=1011)
        return
    await ws.accept()
    client = ws.client.host if ws.client is not None else None

    def audit_view(opened: bool) -> None:
        # A failed append fails the view (no access without a row): the exception closes it.
        sec.audit.append(
            who.name, "live_view", f"camera:{camera_id}", client, {"via": "websocket", "opened": opened}
        )

    await anyio.to_thread.run_sync(audit_view, True)
    audited = time.monotonic()
    viewer = Viewer(asyncio.get_running_loop())
    channel = hub.channel(camera_id)
    channel.subscribe(viewer)
    try:
        clocked = 0.0
        while True:
            if time.monotonic() - clocked >= CLOCK_EVERY:
                await ws.send_text(json.dumps(server_time()))
                clocked = time.monotonic()
            try:
                kind, payload = await asyncio.wait_for(viewer.queue.get(), CLOCK_EVERY)
            except TimeoutError:
                continue
            if kind == "dropped":
                logger.info("live viewer %s of %s fell behind; closed", who.name, camera_id)
                await ws.close(code=1013, reason="too slow: reconnect")
                return
            if kind == "hello":
                await ws.send_text(json.dumps({**payload, **server_time(), "type": "hello"}))
            else:
                await ws.send_bytes(payload)
            if time.monotonic() - audited > AUDIT_EVERY:
                await anyio.to_thread.run_sync(audit_view, False)
                audited = time.monotonic()
    except (WebSocketDisconnect, RuntimeError, OSError) as exc:
        logger.debug("live viewer of %s left: %s", camera_id, exc)
    finally:
        channel.unsubscribe(viewer)
