"""Court disc exports as background jobs: start, watch progress, cancel, download the images."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field

from domain.errors import NotFoundError, ValidationFailed
from indexer.users import Principal
from pipeline.api.auth import CallerDep
from pipeline.api.deps import ExportJobsDep
from pipeline.export.service import ExportJob, ExportJobs, ExportService, ExportSpec

router = APIRouter(prefix="/api/v1/exports", tags=["exports"])


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


def install(app: FastAPI, service: ExportService) -> ExportJobs:
    # The journal keeps jobs across restarts (an export interrupted by a crash is reported so).
    jobs = ExportJobs(service, journal=service.settings.export.out_dir / ".jobs")
    app.state.exports = jobs
    return jobs


@router.post("", status_code=202, summary="Start a full-process disc export of one subject")
def start_export(caller: CallerDep, jobs: ExportJobsDep, body: ExportIn) -> dict[str, Any]:
    for name, value in (("from", body.from_), ("to", body.to)):
        if value is not None and value.tzinfo is None:
            raise ValidationFailed(
                f"{name} needs a time zone",
                fields=[{"field": f"body.{name}", "message": "needs a time zone"}],
            )
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
    )
    job = jobs.submit(spec)
    number = jobs.service.cases.get_case(case_id).case_number
    caller.audit("export", f"case:{number}", case_id=case_id, job=job.job_id, subject=body.subject)
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
