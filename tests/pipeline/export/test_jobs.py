"""Export jobs behind POST /api/v1/exports: the job state machine (queued → running → done,
failed or cancelled) and the API's refusals. The full export through the API is exercised by
tests/e2e/test_full_process.py."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from domain.errors import NotFoundError, VauditError
from exporter.errors import ExportCancelled
from exporter.job import ExportResult
from pipeline.export.service import ExportJobs, ExportSpec


class _Service:
    """Stands in for ExportService: plans instantly, 'exports' until released or cancelled."""

    def __init__(self, fail_plan: bool = False) -> None:
        self.release = threading.Event()
        self.fail_plan = fail_plan

    def plan(self, spec: ExportSpec) -> None:
        if self.fail_plan:
            raise NotFoundError(f"no case with number or id {spec.case!r}")

    def run(self, spec: ExportSpec, progress: Any, cancel: threading.Event) -> ExportResult:
        for i in range(200):
            if cancel.is_set():
                raise ExportCancelled("export cancelled")
            progress(i / 200, f"step {i}")
            if self.release.wait(0.01):
                return ExportResult(
                    "x-1",
                    Path("/nonexistent"),
                    (Path("/a/m.iso"),),
                    (Path("/a/w.iso"),),
                    Path("/a/manifest.json"),
                )
        raise VauditError("ran too long")


def _wait(job: Any, states: set[str], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while job.state not in states and time.monotonic() < deadline:
        time.sleep(0.01)
    assert job.state in states, job.state


def test_job_runs_reports_progress_and_finishes() -> None:
    svc = _Service()
    jobs = ExportJobs(svc)  # type: ignore[arg-type]
    try:
        job = jobs.submit(ExportSpec(case="A-1", subject="1"))
        _wait(job, {"running"})
        time.sleep(0.1)
        assert 0 < job.progress < 1 and job.message.startswith("step")
        svc.release.set()
        _wait(job, {"done"})
        body = job.to_json()
        assert body["state"] == "done" and body["progress"] == 1.0 and body["files"] == ["m.iso", "w.iso"]
    finally:
        jobs.stop()


def test_cancel_running_and_queued_jobs() -> None:
    svc = _Service()
    jobs = ExportJobs(svc)  # type: ignore[arg-type]
    try:
        first = jobs.submit(ExportSpec(case="A-1", subject="1"))
        second = jobs.submit(ExportSpec(case="A-1", subject="2"))  # waits: one export at a time
        _wait(first, {"running"})
        assert second.state == "queued"
        jobs.cancel(second.job_id)
        assert second.state == "cancelled"
        jobs.cancel(first.job_id)
        _wait(first, {"cancelled"})
        assert first.error is not None and first.error["code"] == "export_cancelled"
        assert [j.job_id for j in jobs.list()] == [second.job_id, first.job_id]
    finally:
        jobs.stop()


def test_bad_requests_are_refused_before_queueing() -> None:
    jobs = ExportJobs(_Service(fail_plan=True))  # type: ignore[arg-type]
    try:
        with pytest.raises(NotFoundError):
            jobs.submit(ExportSpec(case="nope", subject="1"))
        assert jobs.list() == []
        with pytest.raises(NotFoundError):
            jobs.get("missing")
    finally:
        jobs.stop()


def test_download_through_the_api_serves_only_the_jobs_images(
    engine: Any, store: Any, tmp_path: Path
) -> None:
    from fastapi.testclient import TestClient

    from pipeline.api.app import create_app
    from pipeline.settings import Settings
    from pipeline.storage import LocalStorage
    from tests.support.auth import log_in

    master, working = tmp_path / "M_1OF1.iso", tmp_path / "W_1OF1.iso"
    master.write_bytes(bytes(range(256)) * 64)
    working.write_bytes(b"working copy")
    (tmp_path / "secret.txt").write_text("not part of any export")

    class _Done(_Service):
        def run(self, spec: ExportSpec, progress: Any, cancel: threading.Event) -> ExportResult:
            return ExportResult("x-1", tmp_path, (master,), (working,), tmp_path / "manifest.json")

    app = create_app(Settings(), store, engine=engine, storage=LocalStorage(tmp_path / "store"))
    with TestClient(app) as client:
        app.state.exports.stop()
        app.state.exports = jobs = ExportJobs(_Done())  # type: ignore[arg-type]
        try:
            log_in(client, engine)
            # the job itself is the fake's; what is tested is the download route over it
            job_id = jobs.submit(ExportSpec(case="A-1", subject="1", exported_by="admin")).job_id
            _wait(jobs.get(job_id), {"done"})
            assert client.get(f"/api/v1/exports/{job_id}").json()["files"] == ["M_1OF1.iso", "W_1OF1.iso"]
            whole = client.get(f"/api/v1/exports/{job_id}/files/M_1OF1.iso")
            assert whole.status_code == 200 and whole.content == master.read_bytes()
            part = client.get(
                f"/api/v1/exports/{job_id}/files/M_1OF1.iso", headers={"Range": "bytes=256-511"}
            )
            assert part.status_code == 206 and part.content == master.read_bytes()[256:512]
            for name in ("secret.txt", "..%2Fsecret.txt", "manifest.json"):
                refused = client.get(f"/api/v1/exports/{job_id}/files/{name}")
                assert refused.status_code == 404, (name, refused.status_code)
                assert b"not part of any export" not in refused.content
            assert client.get("/api/v1/exports/nope/files/M_1OF1.iso").status_code == 404
        finally:
            jobs.stop()


def test_stopped_jobs_refuse_work_and_run_again_once_started() -> None:
    """An app served twice (the demo: its own export, then serving the centre) stops the jobs at
    the first shutdown and starts them at the next startup: a job must never sit queued in silence."""
    svc = _Service()
    svc.release.set()
    jobs = ExportJobs(svc)  # type: ignore[arg-type]
    try:
        _wait(jobs.submit(ExportSpec(case="A-1", subject="1")), {"done"})
        jobs.stop()
        with pytest.raises(VauditError) as refused:
            jobs.submit(ExportSpec(case="A-1", subject="1"))
        assert refused.value.code == "service_stopped" and refused.value.http_status == 503
        jobs.start()
        _wait(jobs.submit(ExportSpec(case="A-1", subject="1")), {"done"})
    finally:
        jobs.stop()
