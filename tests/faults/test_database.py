"""The index database goes away under ``vaudit run``: PostgreSQL stopped for 5 s and started again
(a private server, never the shared one), and an SQLite index locked by another connection
(BEGIN EXCLUSIVE) for 5 s. Two independent centres, one camera each, run side by side.

Expected: recording never notices (no gap at all: the recorder writes only to the spool), segments
closed while the database is away wait in the spool and reach the index after it is back, so the
indexed footage is continuous across the outage and the spool drains.
"""

from __future__ import annotations

import itertools
import sqlite3
import threading
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from domain.types import UTC, iso, parse_iso
from pipeline.simulator.camera import SimulatedCamera, free_port
from tests.support.centre_files import CamSpec, write_centre
from tests.support.private_pg import PrivatePostgres
from tests.support.vaudit_proc import VauditRun

pytestmark = [pytest.mark.faults, pytest.mark.integration]

START_TIMEOUT = 120.0  # vaudit run start (and restart) under a loaded machine; not a speed check

OUTAGE_SECONDS = 5.0


def _footage(run: VauditRun, camera_id: str) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    now = datetime.now(UTC)
    window = {"start": iso(now - timedelta(minutes=5)), "end": iso(now + timedelta(minutes=1))}
    segs = run.get(f"/api/v1/cameras/{camera_id}/segments", **window).json()["segments"]
    gaps = run.get(f"/api/v1/cameras/{camera_id}/gaps", **window).json()["gaps"]
    return segs, gaps


def _wait_drained(run: VauditRun, timeout: float = 40) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if run.get("/healthz").json()["upload"]["pending_files"] == 0:
            return
        time.sleep(0.5)
    raise AssertionError(f"spool not drained: {run.get('/healthz').json()['upload']}")


def test_postgres_restart_and_sqlite_lock(tmp_path: Path) -> None:
    cams = {
        k: SimulatedCamera(f"db-{k}", free_port(), width=320, height=240, bitrate_kbps=400)
        for k in ("pg", "lite")
    }
    sqlite_path = tmp_path / "lite" / "index.db"
    outages: dict[str, tuple[float, float]] = {}
    with PrivatePostgres() as pg, cams["pg"], cams["lite"]:
        runs = {}
        for kind, url in (("pg", pg.url), ("lite", f"sqlite:///{sqlite_path}")):
            (tmp_path / kind).mkdir(exist_ok=True)
            config = write_centre(
                tmp_path / kind / "centre.toml",
                [CamSpec(f"db-{kind}", f"room-{kind}", "waiting", cams[kind].url)],
                url,
                segment_seconds=2.0,
                # index retries capped at 1 s (default 10 s) so the drain is quick
                extra="[upload]\nretry_max_seconds = 1.0",
            )
            runs[kind] = VauditRun(config, tmp_path / kind / "run.log", start_timeout=START_TIMEOUT)
        try:
            starters = [threading.Thread(target=run.start) for run in runs.values()]  # both at once
            for t in starters:
                t.start()
            for t in starters:
                t.join()
            for run in runs.values():
                assert run.headers, "vaudit run did not start"  # start() failed in its thread
            time.sleep(5)

            def lock_sqlite() -> None:
                conn = sqlite3.connect(sqlite_path, timeout=30, isolation_level=None)
                try:
                    conn.execute("BEGIN EXCLUSIVE")
                    began = time.time()
                    time.sleep(OUTAGE_SECONDS)
                    conn.execute("COMMIT")
                    outages["lite"] = (began, time.time())
                finally:
                    conn.close()

            locker = threading.Thread(target=lock_sqlite)
            locker.start()
            stopped = time.time()
            pg.stop()
            time.sleep(OUTAGE_SECONDS)
            pg.start()
            outages["pg"] = (stopped, time.time())
            locker.join()
            time.sleep(3)
            for run in runs.values():
                _wait_drained(run)
            footage = {kind: _footage(run, f"db-{kind}") for kind, run in runs.items()}
        finally:
            for run in runs.values():
                run.stop()

    for kind, (segs, gaps) in footage.items():
        lo, hi = outages[kind]
        assert gaps == [], (kind, gaps)  # a database outage never costs footage
        for a, b in itertools.pairwise(segs):
            assert a["end"] == b["start"], (kind, a, b)  # continuous: every segment reached the index
        during = [s for s in segs if lo <= parse_iso(s["start"]).timestamp() <= hi - 2]
        assert len(during) >= (hi - lo) / 2 - 2, (kind, len(during))  # closed while away, indexed after
        assert parse_iso(segs[0]["start"]).timestamp() < lo and parse_iso(segs[-1]["end"]).timestamp() > hi
