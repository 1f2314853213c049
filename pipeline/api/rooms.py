"""The rooms of the centre with their names and cameras, for every logged-in role.

Pages show rooms and cameras by name (讯问室1), while the API speaks ids (``int-1``): a case
timeline, an alert, an audit row. This is where a page turns one into the other. It reads the
index, which keeps rooms the configuration no longer lists (``active`` false) so that history
still has names; it says nothing about recording status or camera addresses (``/api/v1/cameras``,
not for officers, has those).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from pipeline.api.deps import StoreDep

router = APIRouter(prefix="/api/v1/rooms", tags=["rooms"])


@router.get("", summary="Every room (id, name, kind) with its cameras (id, name)")
def list_rooms(store: StoreDep) -> dict[str, Any]:
    cameras: dict[str, list[dict[str, Any]]] = {}
    for cam in sorted(store.cameras(), key=lambda c: c.camera_id):
        if cam.room_id is not None:
            cameras.setdefault(cam.room_id, []).append(
                {"id": cam.camera_id, "name": cam.name, "active": cam.active}
            )
    rooms = [
        {"id": rid, "name": name, "kind": kind, "cameras": cameras.get(rid, [])}
        for rid, name, kind in sorted(store.room_kinds())
    ]
    return {"rooms": rooms}
