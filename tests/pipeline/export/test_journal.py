"""Export jobs outlive the process through their journal (export.out_dir/.jobs): a finished job keeps
its images after a restart, a job that was running when the process died is reported interrupted.
The SIGKILL of the real ``vaudit run`` mid-export is tests/faults/test_export_kill.py."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from domain.types import TimeRange
from exporter.errors import ExportCancelled
from exporter.job import ExportResult
from exporter.plan import AcceptedInterval
from pipeline.export.service import ExportJobs, ExportSpec


class _Service:
    """Plans instantly; 'exports' (writes two image files) when released."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.release = threading.Event()

    def plan(self, spec: ExportSpec) -> None:
        return None

    def run(self, spec: ExportSpec, progress: Any, cancel: threading.Event) -> ExportResult:
        while not self.release.wait(0.01):
            if cancel.is_set():
                raise ExportCancelled("export cancelled")
        d = self.out / "x-1"
        d.mkdir(parents=True, exist_ok=True)
        for name in ("master.iso", "working.iso", "manifest.json"):
            (d / name).write_bytes(b"x")
        return ExportResult(
            "x-1", d, (d / "master.iso",), (d / "working.iso",), d / "manifest.json", {"n": 1}
        )


def _wait(jobs: ExportJobs, job_id: str, state: str) -> None:
    deadline = time.monotonic() + 5
    while jobs.get(job_id).state != state and time.monotonic() < deadline:
        time.sleep(0.01)
    assert jobs.get(job_id).state == state


def test_finished_job_survives_a_restart_and_running_one_is_interrupted(tmp_path: Path) -> None:
    journal = tmp_path / ".jobs"
    svc = _Service(tmp_path)
    first = ExportJobs(svc, journal=journal)  # type: ignore[arg-type]
    done = first.submit(ExportSpec(case="A-1", subject="1"))
    svc.release.set()
    _wait(first, done.job_id, "done")
    svc.release.clear()
    running = first.submit(ExportSpec(case="A-1", subject="2"))
    _wait(first, running.job_id, "running")
    try:
        # a new process on the same journal while the old one is mid-export (as after a SIGKILL)
        second = ExportJobs(_Service(tmp_path), journal=journal)  # type: ignore[arg-type]
        try:
            kept = second.get(done.job_id).to_json()
            assert kept["state"] == "done" and kept["files"] == ["master.iso", "working.iso"]
            lost = second.get(running.job_id).to_json()
            assert lost["state"] == "failed" and lost["error"]["code"] == "interrupted"
            assert "files" not in lost and second.get(running.job_id).result is None
        finally:
            second.stop()
    finally:
        first.stop()


def test_done_job_whose_images_are_gone_is_not_offered(tmp_path: Path) -> None:
    journal = tmp_path / ".jobs"
    svc = _Service(tmp_path)
    svc.release.set()
    first = ExportJobs(svc, journal=journal)  # type: ignore[arg-type]
    job = first.submit(ExportSpec(case="A-1", subject="1"))
    _wait(first, job.job_id, "done")
    first.stop()
    (tmp_path / "x-1" / "master.iso").unlink()
    second = ExportJobs(svc, journal=journal)  # type: ignore[arg-type]
    try:
        again = second.get(job.job_id)
        assert again.state == "failed" and again.result is None
        assert again.error is not None and again.error["code"] == "files_missing"
    finally:
        second.stop()


def test_accepted_intervals_and_copies_survive_the_journal(tmp_path: Path) -> None:
    journal = tmp_path / ".jobs"
    svc = _Service(tmp_path)
    note = AcceptedInterval(
        TimeRange(datetime(2026, 5, 1, 1, 0, 3, tzinfo=UTC), datetime(2026, 5, 1, 1, 0, 5, tzinfo=UTC)),
        "押解途中",
        "zhang",
    )
    spec = ExportSpec(
        case="A-1", subject="1", exported_by="zhang", accepted=(note,), originals_on_working=True
    )
    first = ExportJobs(svc, journal=journal)  # type: ignore[arg-type]
    try:
        job = first.submit(spec)
        svc.release.set()
        _wait(first, job.job_id, "done")
    finally:
        first.stop()
    second = ExportJobs(_Service(tmp_path), journal=journal)  # type: ignore[arg-type]
    try:
        again = second.get(job.job_id)
        assert again.spec.accepted == (note,) and again.spec.originals_on_working is True
        body = again.to_json()
        assert body["exported_by"] == "zhang" and body["finished"] is not None
        assert body["accepted"] == [
            {
                "start": "2026-05-01T01:00:03.000000Z",
                "end": "2026-05-01T01:00:05.000000Z",
                "note": "押解途中",
                "accepted_by": "zhang",
            }
        ]
        assert body["master_files"] == ["master.iso"] and body["working_files"] == ["working.iso"]
    finally:
        second.stop()
