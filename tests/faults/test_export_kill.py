"""The whole pipeline (``vaudit run``) SIGKILLed while an export job is running, then restarted.

Expected: after the restart the job is reported ``failed`` with error code ``interrupted`` (the
job journal in ``export.out_dir/.jobs``), none of its half-written images is offered for download,
and recording resumed with one ``recorder_restart`` gap covering only the downtime.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from domain.types import GapCause, iso
from pipeline.simulator.camera import SimulatedCamera, free_port
from tests.support.centre_files import CamSpec, write_centre
from tests.support.loss import assert_loss_bounded
from tests.support.vaudit_proc import VauditRun

pytestmark = [pytest.mark.faults, pytest.mark.integration]

START_TIMEOUT = 120.0  # vaudit run start (and restart) under a loaded machine; not a speed check


def _post(run: VauditRun, path: str, body: dict[str, Any]) -> dict[str, Any]:
    resp = httpx.post(f"{run.base}/api/v1{path}", json=body, headers=run.headers, timeout=30.0)
    assert resp.status_code in (200, 201, 202), (path, resp.status_code, resp.text)
    return dict(resp.json())


def test_pipeline_sigkilled_during_export(tmp_path: Path) -> None:
    cam = SimulatedCamera("exp-1", free_port(), width=640, height=360, bitrate_kbps=1500)
    extra = (
        f'[export]\nout_dir = "{tmp_path / "exports"}"\nsigning_key = "{tmp_path / "keys" / "ed25519.pem"}"'
    )
    config = write_centre(
        tmp_path / "centre.toml",
        [CamSpec("exp-1", "wait-1", "waiting", cam.url)],
        f"sqlite:///{tmp_path / 'index.db'}",
        segment_seconds=2.0,
        extra=extra,
    )
    run = VauditRun(config, tmp_path / "run.log", start_timeout=START_TIMEOUT)
    with cam:
        run.start()
        try:
            t0 = datetime.now(UTC)
            stamp = t0.strftime("%H%M%S")
            officers = [
                _post(run, "/officers", {"name": n, "badge_number": f"9{stamp}{i}"})
                for i, n in enumerate(("李明", "王芳"))
            ]
            case = _post(
                run,
                "/cases",
                {"case_number": f"F{stamp}", "title": "故障测试案", "charge": "盗窃", "serious": False},
            )
            for officer, role in zip(officers, ("interrogator", "recorder"), strict=True):
                _post(run, f"/cases/{case['id']}/officers", {"officer_id": officer["id"], "role": role})
            subject = _post(
                run,
                f"/cases/{case['id']}/subjects",
                {"name": "张三", "role": "suspect", "id_number": f"110101199001011{stamp[-3:]}"},
            )
            _post(
                run,
                "/observations",
                {
                    "id": f"F{stamp}-o1",
                    "room_id": "wait-1",
                    "time": iso(t0),
                    "source": "wristband",
                    "subject_id": subject["id"],
                },
            )
            time.sleep(8)
            left = datetime.now(UTC) - timedelta(seconds=3)
            _post(
                run,
                "/events",
                {
                    "id": f"F{stamp}-e1",
                    "type": "exit",
                    "time": iso(left),
                    "room_id": "wait-1",
                    "subject_id": subject["id"],
                    "officer_ids": [o["id"] for o in officers],
                },
            )
            job = _post(
                run,
                "/exports",
                {
                    "case": case["case_number"],
                    "subject": str(subject["id"]),
                    "from": iso(t0),
                    "to": iso(left),
                    "allow_unexplained": True,
                },
            )
            deadline = time.monotonic() + 60
            while job["state"] == "queued" and time.monotonic() < deadline:
                time.sleep(0.05)
                job = run.get(f"/api/v1/exports/{job['id']}").json()
            assert job["state"] == "running", job
            run.kill()  # SIGKILL mid-export: the whole pipeline, recorder threads included
            killed = time.time()
            time.sleep(1)
            run.start()
            restarted = time.time()
            after = run.get(f"/api/v1/exports/{job['id']}").json()
            files = run.get(f"/api/v1/exports/{job['id']}/files/master.iso")
            time.sleep(6)
            now = datetime.now(UTC)
            window = {"start": iso(now - timedelta(minutes=5)), "end": iso(now + timedelta(minutes=1))}
            segs = run.get("/api/v1/cameras/exp-1/segments", **window).json()["segments"]
            gaps = run.get("/api/v1/cameras/exp-1/gaps", **window).json()["gaps"]
        finally:
            run.stop()

    assert after["state"] == "failed" and after["error"]["code"] == "interrupted", after
    assert "files" not in after and files.status_code == 404  # nothing half-written offered as done
    # recording resumed after the restart; the downtime is one recorder_restart gap
    assert_loss_bounded(segs, gaps, (killed, restarted), GapCause.RECORDER_RESTART.value)
