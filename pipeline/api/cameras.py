"""Cameras and their footage: what exists and what is missing, for any time range.

The list of cameras is for the camera-wide roles; a camera's segments and gaps also answer an
officer who names their case (``case_id``) over a range inside its stays, the rule of playback
(:mod:`pipeline.api.footage_access`): the scrubber of what they may play shows what is there."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query

from domain.errors import NotFoundError, ValidationFailed
from domain.types import GapRecord, SegmentRecord, iso, utc
from pipeline.api.auth import CallerDep
from pipeline.api.deps import MaybeCaseApiDep, MaybeRuntimeDep, SettingsDep, StoreDep
from pipeline.api.footage_access import check_footage_access
from pipeline.settings import Settings

router = APIRouter(prefix="/api/v1/cameras", tags=["cameras"])

MAX_RANGE = timedelta(days=31)
CaseId = Annotated[
    int | None, Query(description="the case the footage is looked at for (needed by officers)")
]


def _range(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    fields = []
    if start.tzinfo is None:
        fields.append({"field": "query.start", "message": "needs a time zone (e.g. Z or +08:00)"})
    if end.tzinfo is None:
        fields.append({"field": "query.end", "message": "needs a time zone (e.g. Z or +08:00)"})
    if fields:
        raise ValidationFailed("times must carry a time zone", fields=fields)
    start, end = utc(start), utc(end)
    if end <= start:
        raise ValidationFailed(
            "end must be after start", fields=[{"field": "query.end", "message": "not after start"}]
        )
    if end - start > MAX_RANGE:
        raise ValidationFailed(
            "range longer than 31 days",
            fields=[{"field": "query.end", "message": "range longer than 31 days"}],
        )
    return start, end


def segment_json(rec: SegmentRecord) -> dict[str, Any]:
    return {
        "camera_id": rec.camera_id,
        "start": iso(rec.start),
        "end": iso(rec.end),
        "storage_key": rec.storage_key,
        "size": rec.size,
        "sha256": rec.sha256,
        "prev_sha256": rec.prev_sha256,
        "sm3": rec.sm3,
        "clock_source": rec.clock_source.value,
        "run_id": rec.run_id,
        "seq": rec.seq,
        "recovered": rec.recovered,
        "video_codec": rec.stream.video_codec,
        "width": rec.stream.width,
        "height": rec.stream.height,
        "audio_codec": rec.stream.audio_codec,
    }


def gap_json(gap: GapRecord) -> dict[str, Any]:
    return {
        "camera_id": gap.camera_id,
        "start": iso(gap.start),
        "end": iso(gap.end),
        "cause": gap.cause.value,
        "detail": gap.detail,
        "seconds": round(gap.seconds, 6),
    }


@router.get("", summary="All configured cameras with live recorder status")
def list_cameras(settings: SettingsDep, store: StoreDep, runtime: MaybeRuntimeDep) -> dict[str, Any]:
    statuses = runtime.camera_statuses() if runtime is not None else {}
    out = []
    for room, cam in settings.cameras():
        st = statuses.get(cam.id)
        last = store.last_segment(cam.id)
        out.append(
            {
                "id": cam.id,
                "name": cam.name or cam.id,
                "room_id": room.id,
                "room_name": room.name,
                "room_kind": room.kind.value,
                "state": st.state if st else "unknown",
                "connected": bool(st and st.connected),
                "reconnects": st.reconnects if st else 0,
                "last_error": st.last_error if st else None,
                "last_segment_end": iso(last.end) if last else None,
            }
        )
    return {"cameras": out}


def _known(settings: Settings, camera_id: str) -> None:
    if settings.camera(camera_id) is None:
        raise NotFoundError(f"unknown camera {camera_id!r}", camera_id=camera_id)


@router.get("/{camera_id}/segments", summary="Segments overlapping [start, end)")
def list_segments(
    settings: SettingsDep,
    store: StoreDep,
    caller: CallerDep,
    case_api: MaybeCaseApiDep,
    camera_id: str,
    start: Annotated[datetime, Query(description="ISO 8601 with time zone")],
    end: Annotated[datetime, Query(description="ISO 8601 with time zone")],
    limit: Annotated[int, Query(ge=1, le=10000)] = 1000,
    case_id: CaseId = None,
) -> dict[str, Any]:
    _known(settings, camera_id)
    lo, hi = _range(start, end)
    check_footage_access(caller, settings, store, case_api, camera_id, lo, hi, case_id)
    segs = store.segments(camera_id, lo, hi, limit=limit)
    return {
        "camera_id": camera_id,
        "start": iso(lo),
        "end": iso(hi),
        "segments": [segment_json(s) for s in segs],
    }


@router.get("/{camera_id}/gaps", summary="Gaps (with cause) overlapping [start, end)")
def list_gaps(
    settings: SettingsDep,
    store: StoreDep,
    caller: CallerDep,
    case_api: MaybeCaseApiDep,
    camera_id: str,
    start: Annotated[datetime, Query(description="ISO 8601 with time zone")],
    end: Annotated[datetime, Query(description="ISO 8601 with time zone")],
    case_id: CaseId = None,
) -> dict[str, Any]:
    _known(settings, camera_id)
    lo, hi = _range(start, end)
    check_footage_access(caller, settings, store, case_api, camera_id, lo, hi, case_id)
    gaps = store.gaps(camera_id, lo, hi)
    return {"camera_id": camera_id, "start": iso(lo), "end": iso(hi), "gaps": [gap_json(g) for g in gaps]}
