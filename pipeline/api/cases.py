"""Cases, people, procedure events, location observations, trajectories, footage and search.

Every write is idempotent by its key (case number, badge number, the client ``id`` of an
event or observation): the first write answers 201, a replay 200 with the stored row, a
different body under the same key 409 (which does not say what differs). References to unknown
rooms, subjects or officers and times too far in the future are 422 with ``details.fields``.
Request bodies larger than ``api.max_json_bytes`` are refused with 413 while they stream in,
before they are parsed (:mod:`pipeline.api.body_limit`, in front of every route).

Writes are case-scoped like reads: an officer writes only into cases they are attached to (a
subject id in a body stands for its case), and no late entries (older than
``api.late_entry_hours``, or inside a range already on a disc); 403 otherwise. Every write
stores its author and appends an audit row (object ``case:<number>`` when it is about a case).

The routes take their services as :data:`pipeline.api.deps.CaseApiDep` (put there by
:func:`install`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, Query, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy import Engine

from domain.errors import Forbidden, ValidationFailed
from domain.types import (
    CameraCoverage,
    EventType,
    ObservationSource,
    RoomStay,
    StayFootage,
    TimeRange,
    iso,
)
from indexer.case_records import (
    CaseInfo,
    Entry,
    NewCase,
    NewEvent,
    NewObservation,
    NewOfficer,
    NewSubject,
    OfficerInfo,
    StoredEvent,
    StoredObservation,
    SubjectInfo,
)
from indexer.case_store import CaseStore
from indexer.coverage import CameraRuns, StayCoverage, runs_of
from indexer.footage import CaseTimeline, FootageIndex
from indexer.search import MAX_LIMIT, CaseHit, CaseQuery, CaseSearch
from pipeline.api import bodycam
from pipeline.api.auth import Caller, CallerDep
from pipeline.api.bodycam import clip_json
from pipeline.api.cameras import gap_json, segment_json
from pipeline.api.deps import CaseApi, CaseApiDep, MaybeRiskDep
from pipeline.api.errors import REPLAY
from pipeline.intake.bodycam import BodycamImporter
from pipeline.risk.engine import RiskEngine
from pipeline.settings import Settings
from pipeline.storage import Storage

MAX_BATCH = 5000
MAX_RANGE = timedelta(days=31)


def install(
    app: FastAPI, engine: Engine, storage: Storage, settings: Settings, tmp_dir: Path | None = None
) -> None:
    """Put the case and body-camera services on ``app.state`` (routes take them through
    :mod:`pipeline.api.deps`).

    ``tmp_dir`` is where uploads are spooled while hashed and probed (default: the system
    temporary directory); it should be on a disk with room for one ``max_upload_bytes`` file
    per concurrent upload.
    """
    store = CaseStore(
        engine,
        max_future=timedelta(seconds=settings.api.max_future_seconds),
        late_after=timedelta(hours=settings.api.late_entry_hours),
    )
    # The segment a recorder is writing is indexed when it closes and is uploaded: up to about
    # two segment lengths behind now are not yet unexplained (indexer.footage.FootageIndex).
    footage = FootageIndex(store, index_lag=timedelta(seconds=2 * settings.recorder.segment_seconds))
    app.state.case_api = CaseApi(store, footage, CaseSearch(store), settings.api)
    app.state.bodycam = BodycamImporter(storage, footage, settings.api, tmp_dir)


def _feed_risk(
    risk: RiskEngine | None,
    events: list[StoredEvent] | None = None,
    observations: list[StoredObservation] | None = None,
) -> None:
    """Hand what was just stored to the risk engine, if this node runs one."""
    if risk is not None:
        if events:
            risk.observe_events(events)
        if observations:
            risk.observe_observations(observations)


router = APIRouter(prefix="/api/v1", tags=["cases"])
router.include_router(bodycam.router)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class CaseIn(_In):
    case_number: str = Field(min_length=1, max_length=64, description="Unique case number")
    title: str = Field(min_length=1, max_length=500)
    charge: str = Field(min_length=1, max_length=200, description="案由")
    recording_mandatory: bool = True
    serious: bool = Field(default=False, description="24 h custody limit instead of 12 h")


class SubjectIn(_In):
    name: str = Field(min_length=1, max_length=200)
    role: Literal["suspect", "witness", "victim"]
    id_number: str | None = Field(default=None, min_length=1, max_length=64)
    minor: bool = False
    guardian_name: str | None = Field(default=None, max_length=200)
    wristband_id: str | None = Field(default=None, max_length=64)


class OfficerIn(_In):
    name: str = Field(min_length=1, max_length=200)
    badge_number: str = Field(min_length=1, max_length=64)
    unit: str | None = Field(default=None, max_length=200)


class CaseOfficerIn(_In):
    officer_id: int
    role: str | None = Field(default=None, max_length=32, description="lead, assist, recorder, interpreter")


class EventIn(_In):
    id: str = Field(
        min_length=1, max_length=128, description="Client-supplied id; writes are idempotent by it"
    )
    type: EventType
    time: AwareDatetime = Field(description="ISO 8601 with time zone")
    room_id: str | None = Field(default=None, max_length=64)
    case_id: int | None = Field(default=None, description="Defaults to the subject's case")
    subject_id: int | None = None
    officer_ids: list[int] = Field(default_factory=list, max_length=50)
    payload: dict[str, Any] = Field(default_factory=dict)

    def new(self) -> NewEvent:
        return NewEvent(
            self.id,
            self.type,
            self.time,
            self.room_id,
            self.case_id,
            self.subject_id,
            tuple(self.officer_ids),
            self.payload,
        )


class ObservationIn(_In):
    id: str = Field(
        min_length=1, max_length=128, description="Client-supplied id; writes are idempotent by it"
    )
    room_id: str = Field(min_length=1, max_length=64)
    time: AwareDatetime = Field(description="ISO 8601 with time zone")
    source: ObservationSource
    subject_id: int | None = None
    officer_id: int | None = None

    def new(self) -> NewObservation:
        return NewObservation(self.id, self.room_id, self.time, self.source, self.subject_id, self.officer_id)


Doc = dict[str, Any]


def _status(response: Response, created: bool) -> None:
    response.status_code = 201 if created else 200


_AUDIT_IDS = 100  # client ids named in one audit row (a batch may hold thousands)


def _audit_readings(
    caller: Caller, store: CaseStore, action: str, written: list[tuple[int | None, str, bool]]
) -> None:
    """One audit row per case a request wrote readings into (``written``: case id, client id,
    late), naming the new ones; nothing when every item was a replay (nothing was written)."""
    by_case: dict[int | None, list[tuple[str, bool]]] = {}
    for case_id, client_id, late in written:
        by_case.setdefault(case_id, []).append((client_id, late))
    for case_id, items in by_case.items():
        obj = "readings" if case_id is None else f"case:{store.get_case(case_id).case_number}"
        late_ids = [cid for cid, is_late in items if is_late]
        caller.audit(
            action,
            obj,
            case_id=case_id,
            count=len(items),
            ids=[cid for cid, _ in items[:_AUDIT_IDS]],
            late=late_ids[:_AUDIT_IDS] or None,
        )


# --- cases, subjects, officers --------------------------------------------------------------------


@router.post("/cases", status_code=201, responses=REPLAY, summary="Create a case (idempotent by case number)")
def create_case(caller: CallerDep, api: CaseApiDep, response: Response, body: CaseIn) -> Doc:
    """An officer who creates a case is attached to it as lead (it is then theirs to write)."""
    case, created = api.store.create_case(NewCase(**body.model_dump()), caller.writer())
    if created:
        caller.audit("case_create", f"case:{case.case_number}", case_id=case.id)
    _status(response, created)
    return case_json(case)


@router.get("/cases", summary="Search cases (all filters combine; event filters hold for one event)")
def search_cases(
    caller: CallerDep,
    api: CaseApiDep,
    case_number: Annotated[str | None, Query(max_length=64, description="prefix")] = None,
    subject_name: Annotated[str | None, Query(max_length=200, description="substring")] = None,
    id_number: Annotated[str | None, Query(max_length=64)] = None,
    officer_id: Annotated[int | None, Query(description="the officer's database id")] = None,
    badge_number: Annotated[
        str | None, Query(max_length=64, description="the officer's badge number (警号)")
    ] = None,
    room_id: Annotated[
        str | None,
        Query(
            max_length=200,
            description="a room's id or name; without event_type also the subjects' stays in the room"
            " overlapping [start, end)",
        ),
    ] = None,
    event_type: EventType | None = None,
    start: Annotated[datetime | None, Query(description="events at or after (ISO 8601, time zone)")] = None,
    end: Annotated[datetime | None, Query(description="events before (ISO 8601, time zone)")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Doc:
    mine = caller.visible_cases()
    if mine is not None:  # an officer: only cases they are on
        officer_id = caller.who.officer_id or -1
    q = CaseQuery(
        case_number,
        subject_name,
        id_number,
        officer_id,
        room_id,
        event_type,
        start,
        end,
        limit,
        offset,
        badge_number=badge_number,
    )
    caller.audit(
        "search",
        "cases",
        case_number=case_number,
        subject_name=subject_name,
        id_number=id_number,
        officer_id=officer_id,
        badge_number=badge_number,
        room_id=room_id,
        event_type=event_type.value if event_type is not None else None,
        start=iso(start) if start is not None and start.tzinfo is not None else None,
        end=iso(end) if end is not None and end.tzinfo is not None else None,
    )
    page = api.search.search(q)
    items = [h for h in page.items if mine is None or h.case.id in mine]
    return {
        "total": page.total if len(items) == len(page.items) else len(items),
        "limit": page.limit,
        "offset": page.offset,
        "items": [hit_json(h) for h in items],
    }


@router.get("/cases/{case_id}", summary="A case with its subjects and officers")
def get_case(caller: CallerDep, api: CaseApiDep, case_id: int) -> Doc:
    store = api.store
    case = store.get_case(case_id)
    caller.require_case(case_id)
    caller.audit("view_case", f"case:{case.case_number}", case_id=case_id)
    return {
        **case_json(case),
        "subjects": [subject_json(s) for s in store.subjects_of_case(case_id)],
        "officers": [{**officer_json(o), "role": role} for o, role in store.case_officers(case_id)],
    }


@router.post(
    "/cases/{case_id}/subjects",
    status_code=201,
    responses=REPLAY,
    summary="Add a subject (suspect, witness, victim)",
)
def create_subject(
    caller: CallerDep, api: CaseApiDep, response: Response, case_id: int, body: SubjectIn
) -> Doc:
    caller.require_case(case_id)
    store = api.store
    subject, created = store.create_subject(NewSubject(case_id=case_id, **body.model_dump()), caller.writer())
    if created:
        number = store.get_case(case_id).case_number
        caller.audit("subject_create", f"case:{number}", case_id=case_id, subject_id=subject.id)
    _status(response, created)
    return subject_json(subject)


@router.post(
    "/cases/{case_id}/officers", status_code=201, responses=REPLAY, summary="Attach an officer to a case"
)
def attach_officer(
    caller: CallerDep, api: CaseApiDep, response: Response, case_id: int, body: CaseOfficerIn
) -> Doc:
    caller.require_case(case_id)
    store = api.store
    created = store.add_case_officer(case_id, body.officer_id, body.role, caller.writer())
    if created:
        number = store.get_case(case_id).case_number
        caller.audit("case_officer_add", f"case:{number}", case_id=case_id, officer_id=body.officer_id)
    _status(response, created)
    return {"case_id": case_id, "officer_id": body.officer_id, "role": body.role}


@router.get("/subjects/{subject_id}", summary="A subject")
def get_subject(caller: CallerDep, api: CaseApiDep, subject_id: int) -> Doc:
    subject = api.store.get_subject(subject_id)
    caller.require_case(subject.case_id)
    caller.audit("view_subject", f"subject:{subject_id}", case_id=subject.case_id)
    return subject_json(subject)


@router.post(
    "/officers", status_code=201, responses=REPLAY, summary="Create an officer (idempotent by badge number)"
)
def create_officer(caller: CallerDep, api: CaseApiDep, response: Response, body: OfficerIn) -> Doc:
    officer, created = api.store.create_officer(NewOfficer(**body.model_dump()), caller.writer())
    if created:
        caller.audit("officer_create", f"officer:{officer.badge_number}", officer_id=officer.id)
    _status(response, created)
    return officer_json(officer)


@router.get(
    "/officers/{officer_id}",
    summary="An officer (officers: themselves and the officers of their own cases only)",
)
def get_officer(caller: CallerDep, api: CaseApiDep, officer_id: int) -> Doc:
    store = api.store
    officer = store.get_officer(officer_id)
    mine = caller.visible_cases()
    if (
        mine is not None
        and officer_id != caller.who.officer_id
        and not store.officer_shares_case(officer_id, mine)
    ):
        raise Forbidden(f"officer {officer_id} is not on one of your cases")
    return officer_json(officer)


# --- events and observations ----------------------------------------------------------------------


@router.post(
    "/events", status_code=201, responses=REPLAY, summary="Record one procedure event (idempotent by id)"
)
def post_event(
    caller: CallerDep, api: CaseApiDep, risk: MaybeRiskDep, response: Response, body: EventIn
) -> Doc:
    stored = api.store.add_events([body.new()], caller.writer(), batch=False)[0]
    _audit_events(caller, api.store, [stored])
    _feed_risk(risk, events=[stored])
    _status(response, stored.created)
    return event_json(stored)


@router.post(
    "/events/batch", status_code=201, responses=REPLAY, summary="Record a batch of events, all or none"
)
def post_events(
    caller: CallerDep,
    api: CaseApiDep,
    risk: MaybeRiskDep,
    response: Response,
    body: Annotated[list[EventIn], Field(min_length=1, max_length=MAX_BATCH)],
) -> Doc:
    stored = api.store.add_events([e.new() for e in body], caller.writer())
    _audit_events(caller, api.store, stored)
    _feed_risk(risk, events=stored)
    created = sum(1 for s in stored if s.created)
    _status(response, created > 0)
    return {"created": created, "existing": len(stored) - created, "items": [event_json(s) for s in stored]}


@router.get("/cases/{case_id}/events", summary="Events of a case in time order")
def case_events(caller: CallerDep, api: CaseApiDep, case_id: int) -> Doc:
    case = api.store.get_case(case_id)
    caller.require_case(case_id)
    caller.audit("view_case", f"case:{case.case_number}", case_id=case_id, part="events")
    return {"case_id": case_id, "events": [event_json(e) for e in api.store.events(case_id=case_id)]}


@router.post(
    "/observations",
    status_code=201,
    responses=REPLAY,
    summary="Record one location observation (idempotent by id)",
)
def post_observation(
    caller: CallerDep, api: CaseApiDep, risk: MaybeRiskDep, response: Response, body: ObservationIn
) -> Doc:
    stored = api.store.add_observations([body.new()], caller.writer(), batch=False)[0]
    _audit_observations(caller, api.store, [stored])
    _feed_risk(risk, observations=[stored])
    _status(response, stored.created)
    return observation_json(stored)


@router.post(
    "/observations/batch",
    status_code=201,
    responses=REPLAY,
    summary="Record a batch of observations, all or none",
)
def post_observations(
    caller: CallerDep,
    api: CaseApiDep,
    risk: MaybeRiskDep,
    response: Response,
    body: Annotated[list[ObservationIn], Field(min_length=1, max_length=MAX_BATCH)],
) -> Doc:
    stored = api.store.add_observations([o.new() for o in body], caller.writer())
    _audit_observations(caller, api.store, stored)
    _feed_risk(risk, observations=stored)
    created = sum(1 for s in stored if s.created)
    _status(response, created > 0)
    return {
        "created": created,
        "existing": len(stored) - created,
        "items": [observation_json(s) for s in stored],
    }


def _audit_events(caller: Caller, store: CaseStore, stored: list[StoredEvent]) -> None:
    _audit_readings(
        caller,
        store,
        "event_write",
        [(s.case_id, s.event.event_id, s.entry.late) for s in stored if s.created],
    )


def _audit_observations(caller: Caller, store: CaseStore, stored: list[StoredObservation]) -> None:
    if not any(o.created for o in stored):
        return
    cases = {}
    for sid in {o.subject_id for o in stored if o.created and o.subject_id is not None}:
        cases[sid] = store.get_subject(sid).case_id
    _audit_readings(
        caller,
        store,
        "observation_write",
        [(cases.get(o.subject_id or -1), o.client_id, o.entry.late) for o in stored if o.created],
    )


class ConfirmIn(_In):
    events: list[Annotated[str, Field(min_length=1, max_length=128)]] = Field(
        default_factory=list, max_length=MAX_BATCH
    )
    observations: list[Annotated[str, Field(min_length=1, max_length=128)]] = Field(
        default_factory=list, max_length=MAX_BATCH
    )


@router.post(
    "/readings/confirm",
    summary="Vouch for events and observations (by client id) an officer wrote, so they count for that"
    " officer's footage window (supervisor, legal, admin; audited)",
)
def confirm_readings(caller: CallerDep, api: CaseApiDep, body: ConfirmIn) -> Doc:
    confirmed = api.store.confirm_readings(body.events, body.observations, caller.writer())
    caller.audit(
        "readings_confirm",
        "readings",
        events=body.events[:_AUDIT_IDS] or None,
        observations=body.observations[:_AUDIT_IDS] or None,
        confirmed=confirmed,
    )
    return {"confirmed": confirmed}


# --- trajectory, footage, timeline ----------------------------------------------------------------


@router.get("/subjects/{subject_id}/trajectory", summary="The subject's room stays (enter, leave)")
def subject_trajectory(caller: CallerDep, api: CaseApiDep, subject_id: int) -> Doc:
    caller.require_case(api.store.get_subject(subject_id).case_id)
    caller.audit("view_subject", f"subject:{subject_id}", part="trajectory")
    stays = api.footage.trajectory(subject_id)
    return {"subject_id": subject_id, "stays": [stay_json(s) for s in stays]}


@router.get(
    "/subjects/{subject_id}/footage",
    summary="Footage of every stay in [start, end): segments, gaps (causes), body-camera clips, unexplained",
)
def subject_footage(
    caller: CallerDep,
    api: CaseApiDep,
    subject_id: int,
    start: Annotated[datetime, Query(description="ISO 8601 with time zone")],
    end: Annotated[datetime, Query(description="ISO 8601 with time zone")],
    segments: Annotated[
        bool,
        Query(
            description="List every segment of every camera (default, as before). false: coverage runs,"
            " counts, gaps and unexplained only, read from the run summary: a few rows per camera"
            " instead of thousands (segments of one camera page by page: GET /cameras/{id}/segments)"
        ),
    ] = True,
) -> Doc:
    if start.tzinfo is not None and end.tzinfo is not None and end - start > MAX_RANGE:
        raise ValidationFailed(
            "range longer than 31 days",
            fields=[{"field": "query.end", "message": "range longer than 31 days"}],
        )
    caller.require_case(api.store.get_subject(subject_id).case_id)
    aware = start.tzinfo is not None and end.tzinfo is not None
    caller.audit(
        "view_subject",
        f"subject:{subject_id}",
        part="footage",
        start=iso(start) if aware else None,
        end=iso(end) if aware else None,
    )
    found: tuple[list[StayFootage] | list[StayCoverage], list[Any]]
    if segments:
        found = api.footage.subject_footage(subject_id, start, end)
    else:
        found = api.footage.subject_coverage(subject_id, start, end)
    stays, clips = found
    return {
        "subject_id": subject_id,
        "start": iso(start),
        "end": iso(end),
        "stays": [footage_json(f, detail=True) for f in stays],
        "clips": [clip_json(c) for c in clips],
    }


@router.get("/cases/{case_id}/timeline", summary="Events, trajectories and coverage of a case")
def case_timeline(caller: CallerDep, api: CaseApiDep, case_id: int) -> Doc:
    case = api.store.get_case(case_id)
    caller.require_case(case_id)
    caller.audit("view_case", f"case:{case.case_number}", case_id=case_id, part="timeline")
    return timeline_json(api.footage.case_timeline(case_id))


# --- JSON views (plain data → documents; times as ISO 8601 UTC) ------------------------------------


def case_json(c: CaseInfo) -> Doc:
    return {
        "id": c.id,
        "case_number": c.case_number,
        "title": c.title,
        "charge": c.charge,
        "recording_mandatory": c.recording_mandatory,
        "serious": c.serious,
        "created": iso(c.created) if c.created else None,
    }


def subject_json(s: SubjectInfo) -> Doc:
    return {
        "id": s.id,
        "case_id": s.case_id,
        "name": s.name,
        "role": s.role,
        "id_number": s.id_number,
        "minor": s.minor,
        "guardian_name": s.guardian_name,
        "wristband_id": s.wristband_id,
    }


def officer_json(o: OfficerInfo) -> Doc:
    return {"id": o.id, "name": o.name, "badge_number": o.badge_number, "unit": o.unit, "active": o.active}


def entry_json(e: Entry) -> Doc:
    """Who entered a reading and when; ``late``: a late entry (marked on the timeline and disc)."""
    return {
        "late": e.late,
        "entered_by": e.by,
        "entered_at": iso(e.at) if e.at is not None else None,
        "confirmed_by": e.confirmed_by,
        "confirmed_at": iso(e.confirmed_at) if e.confirmed_at is not None else None,
    }


def event_json(s: StoredEvent) -> Doc:
    e = s.event
    return {
        "id": e.event_id,
        "type": e.type.value,
        "time": iso(e.time),
        "room_id": e.room_id,
        "case_id": s.case_id,
        "subject_id": e.subject_id,
        "officer_ids": list(e.officer_ids),
        "payload": e.payload,
        "created": s.created,
        **entry_json(s.entry),
    }


def observation_json(o: StoredObservation) -> Doc:
    return {
        "id": o.client_id,
        "room_id": o.room_id,
        "time": iso(o.time),
        "source": o.source.value,
        "subject_id": o.subject_id,
        "officer_id": o.officer_id,
        "created": o.created,
        **entry_json(o.entry),
    }


def hit_json(h: CaseHit) -> Doc:
    subjects = [{"id": s.id, "name": s.name, "role": s.role, "id_number": s.id_number} for s in h.subjects]
    return {**case_json(h.case), "subjects": subjects}


def stay_json(s: RoomStay) -> Doc:
    return {
        "room_id": s.room_id,
        "room_kind": s.room_kind.value,
        "start": iso(s.start),
        "end": iso(s.end) if s.end else None,
        "opened_by": s.opened_by,
        "closed_by": s.closed_by,
    }


def range_json(r: TimeRange) -> Doc:
    return {"start": iso(r.start), "end": iso(r.end), "seconds": round(r.seconds, 6)}


def coverage_json(c: CameraCoverage | CameraRuns, detail: bool) -> Doc:
    """One camera over a stay; ``runs``: the stretches its footage covers (clipped to the stay).
    From a run-level answer (CameraRuns) the same fields but ``segments``."""
    if isinstance(c, CameraRuns):
        count, covered, runs = c.segment_count, c.footage_seconds, c.runs
    else:
        count, runs = len(c.segments), runs_of(c.segments, c.interval)
        covered = sum(part.seconds for seg in c.segments if (part := seg.range.clip(c.interval)) is not None)
    doc: Doc = {
        "camera_id": c.camera_id,
        "segment_count": count,
        "footage_seconds": round(covered, 6),
        "runs": [range_json(r) for r in runs],
        "gaps": [gap_json(g) for g in c.gaps],
        "unexplained": [range_json(r) for r in c.unexplained],
        "unexplained_seconds": round(sum(r.seconds for r in c.unexplained), 6),
    }
    if detail and isinstance(c, CameraCoverage):
        doc["segments"] = [{"source": "camera", **segment_json(s)} for s in c.segments]
    return doc


def footage_json(f: StayFootage | StayCoverage, detail: bool) -> Doc:
    holes = f.unexplained
    return {
        "stay": stay_json(f.stay),
        "interval": range_json(f.interval),
        "cameras": [coverage_json(c, detail) for c in f.cameras],
        "clips": [clip_json(c) for c in f.clips],
        "unexplained": [range_json(r) for r in holes],
        "unexplained_seconds": round(sum(r.seconds for r in holes), 6),
        # the tail before now that may not be indexed yet (still being recorded), or null
        "pending": range_json(f.pending) if f.pending is not None else None,
    }


def timeline_json(tl: CaseTimeline) -> Doc:
    return {
        "case": case_json(tl.case),
        "events": [event_json(e) for e in tl.events],
        "subjects": [
            {
                "subject": subject_json(st.subject),
                "stays": [footage_json(f, detail=False) for f in st.footage],
                "clips": [clip_json(c) for c in st.clips],
                "unexplained_seconds": round(sum(r.seconds for f in st.footage for r in f.unexplained), 6),
                "late_readings": [observation_json(o) for o in st.late_readings],
            }
            for st in tl.subjects
        ],
    }
