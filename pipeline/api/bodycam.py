"""Body-worn camera (执法记录仪) clip upload: streamed, hashed, probed, stored, indexed.

The request body is read by :class:`pipeline.intake.bodycam.BodycamImporter` as it streams
(the framework's form parser would spool the whole upload before any limit applies), so this
route declares its multipart body in ``openapi_extra`` for the documentation only.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from domain.types import ImportedClip, iso
from pipeline.api.auth import CallerDep
from pipeline.api.deps import BodycamDep
from pipeline.api.errors import REPLAY

router = APIRouter(prefix="/bodycam", tags=["bodycam"])

_FORM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["file", "device_id"],
    "properties": {
        "file": {"type": "string", "format": "binary", "description": "The clip (MP4, MOV, TS, MKV, AVI)"},
        "device_id": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"},
        "officer_id": {"type": "integer", "description": "The officer who wore the camera"},
        "subject_ids": {
            "type": "string",
            "description": "Subjects filmed: comma-separated ids, or the field repeated",
        },
        "start_time": {
            "type": "string",
            "format": "date-time",
            "description": "ISO 8601 with time zone; default: the file's creation_time",
        },
        "evidence": {"type": "boolean", "description": "Keep permanently (evidence)"},
    },
    "additionalProperties": False,
}


@router.post(
    "/clips",
    status_code=201,
    summary="Upload a body-camera clip (multipart; 201 new, 200 same bytes already imported)",
    openapi_extra={
        "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": _FORM_SCHEMA}}}
    },
    responses={
        **REPLAY,
        413: {"description": "Larger than api.max_upload_bytes"},
        422: {"description": "Not a video"},
    },
)
async def upload_clip(
    request: Request, response: Response, importer: BodycamDep, caller: CallerDep
) -> dict[str, Any]:
    clip, created = await importer.import_request(request, caller.writer())
    if created:
        caller.audit(
            "bodycam_upload", f"clip:{clip.clip_id}", storage_key=clip.storage_key, sha256=clip.sha256
        )
    response.status_code = 201 if created else 200
    return {**clip_json(clip), "created": created}


def clip_json(c: ImportedClip) -> dict[str, Any]:
    st = c.stream
    return {
        "source": "bodycam",
        "clip_id": c.clip_id,
        "device_id": c.device_id,
        "officer_id": c.officer_id,
        "storage_key": c.storage_key,
        "start": iso(c.start),
        "end": iso(c.end),
        "size": c.size,
        "sha256": c.sha256,
        "sm3": c.sm3,
        "container": c.container,
        "video_codec": st.video_codec if st else None,
        "width": st.width if st else None,
        "height": st.height if st else None,
        "audio_codec": st.audio_codec if st else None,
    }
