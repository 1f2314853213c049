"""Recording in child processes (``[recorder] processes = N``): the plain parts on plain data, and
``vaudit run`` end to end with real simulated cameras: both cameras recorded and indexed, a killed
recorder process restarted with a ``recorder_restart`` gap for its cameras only, no recorder left
behind when the pipeline itself is killed, and a clean stop that closes every open segment."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from domain.credentials import CameraLogin
from domain.types import UTC, iso
from pipeline.recording.processes import cameras_stdin, recorder_command, spread
from pipeline.simulator.camera import SimulatedCamera, free_port
from recorders.options import RecorderOptions
from recorders.sync_point import SyncPointSpec, sync_points_from_json, sync_points_json
from tests.support.centre_files import CamSpec, write_centre
from tests.support.vaudit_proc import VauditRun


def test_cameras_are_dealt_over_the_processes() -> None:
    cams = [(f"c{i}", f"rtsp://h/{i}") for i in range(5)]
    assert spread(cams, 2) == [[cams[0], cams[2], cams[4]], [cams[1], cams[3]]]
    assert spread(cams, 9) == [[c] for c in cams]  # never an empty process
    assert spread(cams[:1], 0) == [cams[:1]]


def test_options_travel_whole_and_unknown_ones_are_refused(tmp_path: Path) -> None:
    opts = RecorderOptions(segment_seconds=4.0, stall_seconds=3.0, spool=tmp_path, compute_sm3=True,
                           clock_offset_file=tmp_path / "offset")  # fmt: skip
    assert RecorderOptions.from_json_text(opts.to_json_text(), tmp_path) == opts
    with pytest.raises(ValueError, match="unknown options: colour"):
        RecorderOptions.from_json_text(json.dumps({"colour": "red"}), tmp_path)
    with pytest.raises(ValueError, match="unknown options: spool"):
        RecorderOptions.from_json_text(json.dumps({"spool": "/elsewhere"}), tmp_path)
    cams = [("a", "rtsp://x/a?pwd=q-secret", CameraLogin("admin", "l-secret")), ("b", "rtsp://x/b", None)]
    cmd = recorder_command(cams, tmp_path, opts)
    assert cmd[cmd.index("--parent-pid") + 1] == str(os.getpid()) and cmd[-2:] == ["--cameras-stdin", "a,b"]
    # URLs and logins travel on stdin, not where every user's `ps` shows them
    assert not any("rtsp://" in part or "secret" in part for part in cmd)
    assert json.loads(cameras_stdin(cams)) == [
        {"id": "a", "url": "rtsp://x/a?pwd=q-secret", "user": "admin", "password": "l-secret"},
        {"id": "b", "url": "rtsp://x/b"},
    ]


def test_keyframe_requests_travel_to_the_recorder_process(tmp_path: Path) -> None:
    opts = RecorderOptions(spool=tmp_path)
    spec = SyncPointSpec("http://127.0.0.1:8080/onvif/media_service", "Profile_1")
    cmd = recorder_command(
        [("a", "rtsp://x/a", None), ("b", "rtsp://x/b", None)], tmp_path, opts, sync_points={"a": spec}
    )
    assert sync_points_from_json(cmd[cmd.index("--sync-points-json") + 1]) == {"a": spec}
    assert "--sync-points-json" not in recorder_command([("b", "rtsp://x/b", None)], tmp_path, opts)
    with pytest.raises(ValueError, match="camera 'a': want exactly url and profile"):
        sync_points_from_json(json.dumps({"a": {"url": spec.url}}))
    with pytest.raises(ValueError, match="not an http"):
        sync_points_from_json(json.dumps({"a": {"url": "ftp://x", "profile": "P"}}))
    # a keyframe request for a camera the process does not record is a mistake, said at start
    only_b = [("b", "rtsp://127.0.0.1:1/b", None)]
    bad = [*recorder_command(only_b, tmp_path, opts), "--sync-points-json", sync_points_json({"a": spec})]
    done = subprocess.run(
        bad, input=cameras_stdin(only_b), capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2 and "names cameras this process does not record: a" in done.stderr
    # the cameras on stdin must be the ones the command line names
    done = subprocess.run(
        recorder_command(only_b, tmp_path, opts),
        input=cameras_stdin([("c", "rtsp://h/c", None)]),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2 and "the command line names ['b']" in done.stderr


def _recorder_children(pid: int) -> list[int]:
    """The ``python -m recorders`` processes whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid and b"recorders" in cmdline:
            found.append(int(entry.name))
    return sorted(found)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def cameras() -> Iterator[list[SimulatedCamera]]:
    with contextlib.ExitStack() as started:  # a SimulatedCamera starts on enter, stops on exit
        yield [
            started.enter_context(SimulatedCamera(f"cam-{n}", free_port(), width=320, height=240))
            for n in "ab"
        ]


@pytest.mark.integration
def test_recorder_processes_record_restart_and_die_with_the_pipeline(
    tmp_path: Path, cameras: list[SimulatedCamera], db_url: str
) -> None:
    specs = [CamSpec(c.camera_id, "wait-1", "waiting", c.url) for c in cameras]
    config = write_centre(tmp_path / "centre.toml", specs, db_url, segment_seconds=2.0, extra="processes = 2")
    run = VauditRun(config, tmp_path / "run.log")
    run.start()
    try:
        deadline = time.monotonic() + 20
        while (
            len(children := _recorder_children(run.proc.pid if run.proc else -1)) < 2
            and time.monotonic() < deadline
        ):
            time.sleep(0.2)
        assert len(children) == 2, children
        time.sleep(7)
        listing = {c["id"]: c for c in run.get("/api/v1/cameras").json()["cameras"]}
        assert all(listing[c.camera_id]["connected"] for c in cameras), listing

        # One recorder process killed: restarted by the supervisor; its camera gets one
        # recorder_restart gap covering the downtime, the other camera none.
        victim = children[0]
        victim_cam = next(c for c in cameras if c.camera_id in Path(f"/proc/{victim}/cmdline").read_text())
        os.kill(victim, signal.SIGKILL)
        killed_at = time.time()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            now = _recorder_children(run.proc.pid if run.proc else -1)
            if len(now) == 2 and victim not in now:
                break
            time.sleep(0.2)
        assert victim not in now and len(now) == 2, now
        time.sleep(8)
        start, end = (
            iso(datetime.now(UTC) - timedelta(minutes=5)),
            iso(datetime.now(UTC) + timedelta(minutes=1)),
        )
        for cam in cameras:
            segs = run.get(f"/api/v1/cameras/{cam.camera_id}/segments", start=start, end=end).json()[
                "segments"
            ]
            gaps = run.get(f"/api/v1/cameras/{cam.camera_id}/gaps", start=start, end=end).json()["gaps"]
            restarts = [g for g in gaps if g["cause"] == "recorder_restart"]
            if cam is victim_cam:
                assert len(restarts) == 1, gaps
                gap_start = datetime.fromisoformat(restarts[0]["start"]).timestamp()
                assert abs(gap_start - killed_at) < 1.5, (gap_start, killed_at)
                # from the end of the last footage before the kill (the killed partial, recovered,
                # unless the kill fell before its first write) to the first footage after it
                before = [s for s in segs if s["end"] <= restarts[0]["start"]]
                assert before and before[-1]["end"] == restarts[0]["start"], (before[-1:], restarts)
                assert [s for s in segs if s["start"] >= restarts[0]["end"]], "recording did not resume"
            else:
                assert restarts == [], gaps
            assert len(segs) >= 5, (cam.camera_id, segs)

        # The pipeline killed outright: its recorders stop too (nothing left to compete with the
        # next pipeline for the spool), within their own stop bound (stall 5 s + 5 s) and start-up.
        survivors = _recorder_children(run.proc.pid if run.proc else -1)
        run.kill()
        deadline = time.monotonic() + 25
        while any(_alive(p) for p in survivors) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [p for p in survivors if _alive(p)], survivors

        # Started again, then stopped cleanly: the children close their open segments (no partial
        # marker left on the spool) and exit with the pipeline, which exits 0.
        run.start()
        time.sleep(6)
        children = _recorder_children(run.proc.pid if run.proc else -1)
        assert len(children) == 2, children
        assert run.stop() == 0
        assert not [p for p in children if _alive(p)], children
        assert sorted(p.name for p in (tmp_path / "spool").rglob("*.partial.json")) == []
    finally:
        run.stop()
