"""Court disc exports as background jobs: start, watch progress, cancel, download the images."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, Query
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from domain.errors import NotFoundError, ValidationFailed
from domain.types import TimeRange, utc
from exporter.plan import AcceptedInterval
from indexer.users import Principal
from pipeline.api.auth import CallerDep
from pipeline.api.deps import ExportJobsDep
from pipeline.export.service import ExportJob, ExportJobs, ExportService, ExportSpec

router = APIRouter(prefix="/api/v1/exports", tags=["exports"])


class AcceptIn(BaseModel):
    """Unexplained seconds accepted for the disc, with the reason the court reads there."""

    model_config = ConfigDict(extra="forbid")

    start: Annotated[datetime, Field(description="ISO 8601 with zone")]
    end: Annotated[datetime, Field(description="ISO 8601 with zone, after start")]
    note: Annotated[str, Field(min_length=1, max_length=500, description="why these seconds have no footage")]


class ExportIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    case: Annotated[str, Field(min_length=1, max_length=64, description="case number or case id")]
    subject: Annotated[str, Field(min_length=1, max_length=200, description="subject id, ID number or name")]
    from_: Annotated[
        datetime | None, Field(alias="from", description="ISO 8601 with zone; default: first footage")
    ] = None
    to: Annotated[
        datetime | None, Field(description="ISO 8601 with zone; default: end of last interrogation")
    ] = None
    media: Literal["dvd5", "dvd9", "bd25", "bd50"] | None = None
    allow_unexplained: bool = False
    accept: Annotated[
        list[AcceptIn],
        Field(
            max_length=50,
            description="unexplained intervals accepted with a note (on the statement and gap report)",
        ),
    ] = []
    originals_on_working: Annotated[
        bool | None, Field(description="originals on the working copy too; default: [export] setting")
    ] = None


def install(app: FastAPI, service: ExportService) -> ExportJobs:
    # The journal keeps jobs across restarts (an export interrupted by a crash is reported so).
    jobs = ExportJobs(service, journal=service.settings.export.out_dir / ".jobs")
    app.state.exports = jobs
    return jobs


def _zoned(where: str, value: datetime | None) -> None:
    if value is not None and value.tzinfo is None:
        raise ValidationFailed(
            f"{where} needs a time zone", fields=[{"field": where, "message": "needs a time zone"}]
        )


def _accepted(body: ExportIn, who: str) -> tuple[AcceptedInterval, ...]:
    out = []
    for n, a in enumerate(body.accept):
        _zoned(f"body.accept.{n}.start", a.start)
        _zoned(f"body.accept.{n}.end", a.end)
        if a.end <= a.start:
            raise ValidationFailed(
                "an accepted interval must end after it starts",
                fields=[{"field": f"body.accept.{n}.end", "message": "not after start"}],
            )
        if not a.note.strip():
            raise ValidationFailed(
                "an accepted interval needs a note",
                fields=[{"field": f"body.accept.{n}.note", "message": "empty"}],
            )
        out.append(AcceptedInterval(TimeRange(utc(a.start), utc(a.end)), a.note.strip(), who))
    return tuple(out)


@router.get("/plan", summary="What an export would hold: range, stages, unexplained intervals")
def plan_export(
    caller: CallerDep,
    jobs: ExportJobsDep,
    case: Annotated[str, Query(min_length=1, max_length=64)],
    subject: Annotated[str, Query(min_length=1, max_length=200)],
    from_: Annotated[datetime | None, Query(alias="from")] = None,
    to: datetime | None = None,
) -> dict[str, Any]:
    """The plan the export itself builds, so what it would refuse (``unexplained``) is known
    before it starts; also the media and copies a request may choose."""
    _zoned("query.from", from_)
    _zoned("query.to", to)
    case_id = jobs.service.case_id(case)
    caller.require_case(case_id)
    return jobs.service.preview(ExportSpec(case=case, subject=subject, start=from_, end=to))


@router.post("", status_code=202, summary="Start a full-process disc export of one subject")
def start_export(caller: CallerDep, jobs: ExportJobsDep, body: ExportIn) -> dict[str, Any]:
    _zoned("body.from", body.from_)
    _zoned("body.to", body.to)
    accepted = _accepted(body, caller.who.name)
    case_id = jobs.service.case_id(body.case)
    caller.require_case(case_id)
    spec = ExportSpec(
        case=body.case,
        subject=body.subject,
        start=body.from_,
        end=body.to,
        media=body.media,
        allow_unexplained=body.allow_unexplained,
        exported_by=caller.who.name,
        accepted=accepted,
        originals_on_working=body.originals_on_working,
    )
    job = jobs.submit(spec)
    number = jobs.service.cases.get_case(case_id).case_number
    caller.audit(
        "export",
        f"case:{number}",
        case_id=case_id,
        job=job.job_id,
        subject=body.subject,
        accepted=[
            {"start": a.start.isoformat(), "end": a.end.isoformat(), "note": a.note} for a in body.accept
        ]
        or None,
    )
    return job.to_json()


def _own(who: Principal, job: ExportJob) -> ExportJob:
    """Officers see only the jobs they started; everyone else sees all."""
    if not who.sees_all_cases and job.spec.exported_by != who.name:
        raise NotFoundError(f"no export job {job.job_id!r}", job_id=job.job_id)
    return job


@router.get("", summary="Export jobs, newest first")
def list_exports(caller: CallerDep, jobs: ExportJobsDep) -> dict[str, Any]:
    who = caller.who
    mine = [j for j in jobs.list() if who.sees_all_cases or j.spec.exported_by == who.name]
    return {"exports": [j.to_json() for j in mine]}


@router.get("/{job_id}", summary="One export job: state and progress")
def get_export(caller: CallerDep, jobs: ExportJobsDep, job_id: str) -> dict[str, Any]:
    return _own(caller.who, jobs.get(job_id)).to_json()


@router.post("/{job_id}/cancel", summary="Cancel a queued or running export")
def cancel_export(caller: CallerDep, jobs: ExportJobsDep, job_id: str) -> dict[str, Any]:
    _own(caller.who, jobs.get(job_id))
    caller.audit("export_cancel", f"export_job:{job_id}")
    return jobs.cancel(job_id).to_json()


@router.get("/{job_id}/files/{name}", summary="Download one disc image of a finished export")
def download(caller: CallerDep, jobs: ExportJobsDep, job_id: str, name: str) -> FileResponse:
    job = _own(caller.who, jobs.get(job_id))
    if job.result is None:
        raise NotFoundError(f"export {job_id} has no files yet (state {job.state})")
    images: dict[str, Path] = {p.name: p for p in (*job.result.master_images, *job.result.working_images)}
    path = images.get(name)  # only names the job produced: no path from the request reaches the disk
    if path is None:
        raise NotFoundError(f"export {job_id} has no file {name!r}", files=sorted(images))
    caller.audit("download", f"export:{job.result.export_id}/{name}", job=job_id)
    return FileResponse(path, media_type="application/x-iso9660-image", filename=name)
