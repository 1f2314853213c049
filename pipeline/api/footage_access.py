"""Who may play which footage: camera-wide roles anything, officers only their cases' stays.

An officer plays footage through one of their cases (``case_id``): the camera must be in a
room where a subject of that case stayed, and the requested ``[start, end)`` must lie within
that stay, padded by :data:`STAY_PAD` on both sides (the stay's bounds come from wristband and
door readings, which lag the person by a few seconds; the stream also starts at the keyframe
at or before ``start``). A stay still open lasts until now. Anything else is 403, so an
officer cannot walk a camera's whole day by naming their case.

The stays are computed without the readings the officer wrote themselves (unless a supervisor
confirmed them, ``POST /api/v1/readings/confirm``): only what the devices, other people and
supervisors say about where the subject was opens footage to that officer, so posting a
reading that puts their suspect in another room does not widen what they may play.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from domain.errors import Forbidden, NotFoundError
from domain.types import utc
from indexer.segment_store import SegmentStore
from pipeline.api.auth import CAMERA_WIDE, Caller
from pipeline.api.deps import CaseApi
from pipeline.settings import Settings

STAY_PAD = timedelta(seconds=30)


def _room_of(settings: Settings, store: SegmentStore, camera_id: str) -> str | None:
    found = settings.camera(camera_id)
    if found is not None:
        return found[0].id
    for cam in store.cameras():
        if cam.camera_id == camera_id:
            return cam.room_id
    return None


def check_footage_access(
    caller: Caller,
    settings: Settings,
    store: SegmentStore,
    case_api: CaseApi | None,
    camera_id: str,
    start: datetime,
    end: datetime,
    case_id: int | None,
) -> None:
    """Return if the caller may play ``camera_id`` over ``[start, end)``; else 403. ``case_api``:
    None on a node without the case index (no stay opens footage there)."""
    who = caller.who
    if who.role in CAMERA_WIDE:
        return
    if case_id is None:
        raise Forbidden("officers play footage of their own cases only: give case_id")
    caller.require_case(case_id)
    room = _room_of(settings, store, camera_id)
    if case_api is None or room is None or start.tzinfo is None or end.tzinfo is None:
        raise Forbidden(f"camera {camera_id} is not in a room of case {case_id}")
    lo_req, hi_req = utc(start), utc(end)
    now = datetime.now(UTC)
    footage = case_api.footage
    for subject in footage.store.subjects_of_case(case_id):
        try:
            stays = footage.trajectory(subject.id, distrust=who.user_id)
        except NotFoundError:
            continue
        for stay in stays:
            if stay.room_id != room:
                continue
            lo = stay.start - STAY_PAD
            hi = (stay.end if stay.end is not None else now) + STAY_PAD
            if lo <= lo_req and hi_req <= hi:
                return
    raise Forbidden(
        f"camera {camera_id} over this range is outside every stay of case {case_id}'s subjects"
        " (as readings not written by you alone place them)"
    )


def case_rooms(caller: Caller, case_api: CaseApi | None, case_id: int) -> set[str]:
    """The rooms whose footage ``case_id`` opens to the caller: where a subject of the case
    stayed, as the readings the caller did not write alone place them (the rule above); 403 for
    a case not the caller's."""
    caller.require_case(case_id)
    if case_api is None:
        return set()
    footage = case_api.footage
    distrust = None if caller.who.role in CAMERA_WIDE else caller.who.user_id
    rooms: set[str] = set()
    for subject in footage.store.subjects_of_case(case_id):
        try:
            stays = footage.trajectory(subject.id, distrust=distrust)
        except NotFoundError:
            continue
        rooms.update(stay.room_id for stay in stays)
    return rooms
