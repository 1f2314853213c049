"""Playback routes: a camera's [start, end) as one MP4 streamed as it is built, its wall-clock
time as WebVTT subtitles (see :mod:`pipeline.viewing.playback`), and the cameras a caller may
play (officers: those of their case's rooms, with the rooms' names).

The page reads the stream's origin (``X-Playback-Origin``) from the stream's own response: it
fetches the bytes into Media Source Extensions, so no request goes before the stream."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import PlainTextResponse, Response, StreamingResponse
from starlette.concurrency import iterate_in_threadpool

from domain.errors import Forbidden, NotFoundError, ValidationFailed, VauditError
from domain.names import gap_heading
from domain.types import BlobReader, GapRecord, iso, utc
from indexer.alert_store import AlertStore, NewAlert
from indexer.segment_store import SegmentStore
from pipeline.api.auth import CAMERA_WIDE, Caller, CallerDep
from pipeline.api.deps import (
    CaseApiDep,
    MaybeAlertStoreDep,
    MaybeCaseApiDep,
    MaybeRiskDep,
    PlaybackReaderDep,
    SettingsDep,
    StoreDep,
)
from pipeline.api.footage_access import case_rooms, check_footage_access
from pipeline.api.playback_views import PlaybackViews
from pipeline.risk.engine import RiskEngine
from pipeline.settings import Settings
from pipeline.viewing.clips import clip_chunks
from pipeline.viewing.playback import (
    CaptureCheck,
    FootageAltered,
    mp4_chunks,
    plan_playback,
    plan_segments,
    skip_bytes,
)

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1/playback", tags=["playback"])
_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")

# Opens a stream's first segment while the request thread writes the audit row.
_HEAD = ThreadPoolExecutor(max_workers=8, thread_name_prefix="playback-head")

When = Annotated[datetime, Query(description="ISO 8601 with time zone")]
CaseId = Annotated[int | None, Query(description="the case this footage is played for (needed by officers)")]
Lang = Annotated[str, Query(description="zh-CN (default) or en: the language of the subtitles' words")]


def gap_text(gap: GapRecord, lang: str) -> str:
    """The subtitle of a gap, in the disc's words (domain.names): "录像中断：连接中断" or, with
    ``lang`` en…, "gap: disconnected"."""
    return gap_heading(gap.cause, "en" if lang.lower().startswith("en") else "zh-CN")


def install(app: FastAPI, reader: BlobReader) -> None:
    app.state.playback_reader = reader
    app.state.playback_views = PlaybackViews()


def _views(request: Request) -> PlaybackViews:
    views: PlaybackViews | None = getattr(request.app.state, "playback_views", None)
    if views is None:  # an app wired without install(): remember views from now on
        views = request.app.state.playback_views = PlaybackViews()
    return views


def _first(body: Iterator[bytes]) -> tuple[bytes, float]:
    return next(body, b""), time.perf_counter()


def footage_alert(
    store: AlertStore | None, risk: RiskEngine | None, settings: Settings, exc: FootageAltered
) -> None:
    """Raise the ``footage_integrity`` alert for a segment that failed its hash check (high
    severity, on the camera and its room, one per segment however often it is played), through
    the risk engine where this node runs one (its live stream shows it), else in the store."""
    if store is None:
        return
    camera_id = str(exc.details["camera_id"])
    found = settings.camera(camera_id)
    now = datetime.now(UTC)
    new = NewAlert(
        "footage_integrity",
        f"footage_integrity:{exc.details['key']}",
        "high",
        exc.message,
        now,
        room_id=None if found is None else found[0].id,
        camera_id=camera_id,
        details=dict(exc.details),
    )
    if risk is not None:
        risk.record_external(new)
    else:
        store.raise_or_continue(new, now)


def _on_altered(
    caller: Caller, alerts: AlertStore | None, risk: RiskEngine | None, settings: Settings, camera_id: str
) -> Callable[[FootageAltered], None]:
    def report(exc: FootageAltered) -> None:
        logger.error(
            "playback refused a segment that no longer matches its hash: %s",
            exc.message,
            extra={"camera_id": camera_id, "key": exc.details["key"]},
        )
        try:
            footage_alert(alerts, risk, settings, exc)
            caller.audit("playback_refused", f"camera:{camera_id}", key=exc.details["key"], reason=exc.code)
        except VauditError as err:  # the refusal stands; the client still gets the error
            logger.error("could not record the refused playback: %s", err.message)

    return report


def _known(settings: Settings, store: SegmentStore, camera_id: str) -> None:
    if settings.camera(camera_id) is None and camera_id not in {c.camera_id for c in store.cameras()}:
        raise ValidationFailed(
            f"unknown camera {camera_id!r}", fields=[{"field": "path.camera_id", "message": "unknown camera"}]
        )


@router.get(
    "/{camera_id}.mp4",
    summary="[start, end) of one camera as one fragmented MP4 (H.264 + AAC), streamed while built",
    response_class=Response,
    responses={
        409: {
            "description": "A segment no longer matches the hash recorded at capture "
            "(footage_altered, naming it); nothing of it is served"
        }
    },
)
def playback_mp4(
    request: Request,
    reader: PlaybackReaderDep,
    store: StoreDep,
    settings: SettingsDep,
    caller: CallerDep,
    case_api: MaybeCaseApiDep,
    alerts: MaybeAlertStoreDep,
    risk: MaybeRiskDep,
    camera_id: str,
    start: When,
    end: When,
    case_id: CaseId = None,
) -> Response:
    t0 = time.perf_counter()
    _known(settings, store, camera_id)
    check_footage_access(caller, settings, store, case_api, camera_id, start, end, case_id)
    plan = plan_playback(store, camera_id, start, end)
    t_plan = time.perf_counter()
    wanted = request.headers.get("range")
    first, last = 0, None
    if wanted:
        m = _RANGE.match(wanted.strip())
        if m is None:
            return Response(status_code=416, headers={"Content-Range": "bytes */*"})
        first = int(m.group(1))
        last = int(m.group(2)) if m.group(2) else None
        if last is not None and last < first:
            return Response(status_code=416, headers={"Content-Range": "bytes */*"})
        if last is None:
            # "bytes=N-": a 206 must name its last byte, which is unknown until the stream is
            # built; the whole stream (200) is a valid answer to any range request.
            wanted, first = None, 0
    origin: list[datetime] = []
    chunks = mp4_chunks(
        plan,
        reader,
        origin,
        plan_segments(store, plan),
        on_altered=_on_altered(caller, alerts, risk, settings, camera_id),
        vouch=CaptureCheck(reader, store.segments_by_seq),
    )
    body = skip_bytes(chunks, first, last) if wanted else chunks
    # The first chunk (the first segment opened, ftyp + moov) is made while the audit row is
    # written; no byte leaves before the row is in (a failed append fails the request).
    head_job = _HEAD.submit(_first, body)
    view = (caller.who.name, camera_id, iso(start), iso(end), case_id)
    views = _views(request)
    try:
        if views.starts_view(*view):  # the probe, the load and Range requests of one view: one row
            try:
                caller.audit(
                    "playback",
                    f"camera:{camera_id}",
                    start=iso(start),
                    end=iso(end),
                    range=wanted,
                    rendition="h264" if plan.transcode else "copy",
                    case=case_id,
                )
            except BaseException:
                views.forget(*view)
                raise
    except BaseException:
        if not head_job.cancel():
            head_job.exception()  # a running generator cannot be closed: let the head finish
        body.close()
        raise
    t_audit = time.perf_counter()
    head, t_first = head_job.result()  # errors (no picture) become a JSON error; origin known
    t_head = time.perf_counter()
    # where the first byte's time goes (bench/playback.py collects these)
    logger.debug(
        "playback %s first byte after %.1f ms",
        camera_id,
        (t_head - t0) * 1000,
        extra={
            "steps_ms": {
                "checks_and_index_query": (t_plan - t0) * 1000,
                "audit_append": (t_audit - t_plan) * 1000,
                "first_segment_open_to_header": (t_first - t_plan) * 1000,
                "route_total": (t_head - t0) * 1000,
            }
        },
    )
    headers = {
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, no-store",
        "X-Playback-Origin": iso(origin[0]) if origin else iso(start),
        "X-Playback-Rendition": "h264" if plan.transcode else "copy",
    }

    async def stream() -> AsyncIterator[bytes]:
        yield head  # made already: no thread hop before the first byte
        async for chunk in iterate_in_threadpool(body):
            yield chunk

    if wanted:
        # The total length is not known until the stream is built: "*" (RFC 9110 §14.4).
        headers["Content-Range"] = f"bytes {first}-{'' if last is None else last}/*"
        return StreamingResponse(stream(), status_code=206, media_type="video/mp4", headers=headers)
    return StreamingResponse(stream(), media_type="video/mp4", headers=headers)


def _vtt_time(us: int) -> str:
    ms = max(us, 0) // 1000
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}.{ms:03d}"


@router.get("/{camera_id}.vtt", summary="Wall-clock time (centre time zone) and gaps as WebVTT subtitles")
def playback_vtt(
    _reader: PlaybackReaderDep,  # unused: subtitles only where the video is served (else 503 as it)
    store: StoreDep,
    settings: SettingsDep,
    caller: CallerDep,
    case_api: MaybeCaseApiDep,
    camera_id: str,
    start: When,
    end: When,
    origin: Annotated[datetime | None, Query(description="media time 0 (X-Playback-Origin)")] = None,
    case_id: CaseId = None,
    lang: Lang = "zh-CN",
) -> PlainTextResponse:
    _known(settings, store, camera_id)
    check_footage_access(caller, settings, store, case_api, camera_id, start, end, case_id)
    plan = plan_playback(store, camera_id, start, end)
    zero = utc(origin) if origin is not None and origin.tzinfo is not None else utc(plan.start)
    tz = ZoneInfo(settings.centre.timezone)
    gaps = store.gaps(camera_id, start, end)
    lines = ["WEBVTT", ""]
    t = zero.replace(microsecond=0)
    stop = min(utc(plan.end), max(s.end for s in plan_segments(store, plan)))  # all pages
    while t < stop:
        a, b = t - zero, t + timedelta(seconds=1) - zero
        note = next((g for g in gaps if g.start <= t < g.end), None)
        text = t.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")
        if note is not None:
            text += f"  [{gap_text(note, lang)}]"
        lines += [
            f"{_vtt_time(a // timedelta(microseconds=1))} --> {_vtt_time(b // timedelta(microseconds=1))}",
            text,
            "",
        ]
        t += timedelta(seconds=1)
    return PlainTextResponse("\n".join(lines), media_type="text/vtt")


@router.get(
    "/clips/{clip_id}.mp4",
    summary="A body-camera clip of a case as one fragmented MP4 (H.264 copied); media time 0 is its start",
    response_class=Response,
)
def clip_mp4(
    reader: PlaybackReaderDep,
    caller: CallerDep,
    case_api: CaseApiDep,
    clip_id: int,
    case_id: Annotated[int, Query(description="the case whose subject the clip shows")],
) -> Response:
    """Anyone who may see the case (officers: their own) plays the clips of its subjects."""
    caller.require_case(case_id)
    timeline = case_api.footage.case_timeline(case_id)
    clip = next((c for st in timeline.subjects for c in st.clips if c.clip_id == clip_id), None)
    if clip is None:
        raise NotFoundError(f"case {case_id} has no body-camera clip {clip_id}", clip_id=clip_id)
    body = clip_chunks(reader, clip)
    head = next(body, b"")  # a refused clip (hash, codec) is a JSON error, not a broken stream
    caller.audit("playback", f"clip:{clip_id}", case=case_id, storage_key=clip.storage_key)

    async def stream() -> AsyncIterator[bytes]:
        yield head
        async for chunk in iterate_in_threadpool(body):
            yield chunk

    headers = {"Cache-Control": "private, no-store", "X-Playback-Origin": iso(clip.start)}
    return StreamingResponse(stream(), media_type="video/mp4", headers=headers)


@router.get("/cameras", summary="The cameras the caller may play, with their rooms' names")
def playable_cameras(
    store: StoreDep,
    caller: CallerDep,
    case_api: MaybeCaseApiDep,
    case_id: CaseId = None,
) -> dict[str, object]:
    """Camera-wide roles: every camera of the index (those no longer configured too: their
    footage stays). Officers, who may not list the cameras: those of the rooms their case
    ``case_id`` stayed in, so that the play page names them."""
    rooms: set[str] | None = None
    if caller.who.role not in CAMERA_WIDE:
        if case_id is None:
            raise Forbidden("officers play footage of their own cases only: give case_id")
        rooms = case_rooms(caller, case_api, case_id)
    out = [
        {
            "id": cam.camera_id,
            "name": cam.name or cam.camera_id,
            "room_id": cam.room_id,
            "room_name": cam.room_name or cam.room_id,
            "room_kind": cam.room_kind,
            "active": cam.active,
        }
        for cam in store.cameras()
        if rooms is None or cam.room_id in rooms
    ]
    return {"cameras": out}
