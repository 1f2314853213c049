"""The recorder host's wall clock steps +1 h and -1 h under a running recorder.

The clock is stepped through the clock source the recorder uses (``--clock-offset-file``, i.e.
``recorder.clock_offset_file``: system clock + the seconds in the file), never the host's clock,
which other processes share. Two ``python -m recorders`` processes run side by side, one per step.

Expected: the run splits at the first keyframe after the step (that keyframe starts the next run,
so no footage is lost), segments never overlap or run backwards, and a ``clock_step`` gap records
the discontinuity: +1 h leaves a gap of one hour in wall time with no footage missing; -1 h would
start the new run before the old one ended, so the new run is moved to the old end (never overlap)
and the gap is empty, a marker of where the clock stepped.
"""

from __future__ import annotations

import itertools
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from domain.types import GapCause
from tests.support.loss import RECOVERY_SECONDS, span
from tests.support.recorder_proc import Recorder, spool_records

pytestmark = [pytest.mark.faults, pytest.mark.integration]

STEP = 3600.0


def test_wall_clock_step_plus_and_minus_one_hour(tmp_path: Path, cameras: Any) -> None:
    procs: dict[float, tuple[Recorder, Path, str]] = {}
    try:
        for sign, name in ((1.0, "ahead"), (-1.0, "behind")):
            cam = cameras(name, tmp_path)
            offset_file = tmp_path / f"{name}.offset"
            offset_file.write_text("0")
            rec = Recorder(
                tmp_path / f"spool-{name}",
                name,
                cam.url,
                segment_seconds=2.0,
                extra=("--clock-offset-file", str(offset_file)),
            )
            procs[sign] = (rec, offset_file, name)
        for rec, _, _ in procs.values():
            assert rec.wait(lambda e: e["event"] == "segment_closed", 20)
        started = {sign: min(time.time(), rec.started) for sign, (rec, _, _) in procs.items()}
        time.sleep(2.5)
        stepped = time.time()
        for sign, (_, offset_file, _) in procs.items():
            offset_file.write_text(f"{sign * STEP}")
        time.sleep(6)
        stopped = time.time()
        for rec, _, _ in procs.values():
            assert rec.stop(signal.SIGTERM) == 0
    finally:
        for rec, _, _ in procs.values():
            rec.stop(signal.SIGKILL)

    for sign, (_, _, name) in procs.items():
        segments, gaps = spool_records(tmp_path / f"spool-{name}", name)
        segs = [span(s) for s in segments]
        assert len(gaps) == 1, (name, gaps)
        gap = span(gaps[0])
        assert gap.cause == GapCause.CLOCK_STEP.value, gap
        assert "stepped" in gaps[0]["detail"]
        # the step is seen at the first keyframe after it (GOP 1 s, offset file re-read every 0.2 s)
        assert -RECOVERY_SECONDS <= gap.start - stepped <= 1.5, gap.start - stepped
        expected_length = STEP if sign > 0 else 0.0
        assert abs((gap.end - gap.start) - expected_length) <= RECOVERY_SECONDS, gap
        # runs split; no negative or overlapping segment; only the recorded gap separates two
        assert len({s["run_id"] for s in segments}) == 2
        for s in segs:
            assert s.end > s.start, s
        for a, b in itertools.pairwise(segs):
            assert b.start >= a.end, (a, b)
            if b.start - a.end > 1e-6:
                assert abs(a.end - gap.start) < 1e-3 and abs(b.start - gap.end) < 1e-3, (a, b, gap)
        for a, b in itertools.pairwise(segments):
            assert b["prev_sha256"] == a["sha256"]  # one chain across the step
        # no footage lost at the step: the footage covers the real time recorded, to within 1 s
        # (first segment start is on the true clock; the recorder stopped at ``stopped``)
        footage = sum(s.end - s.start for s in segs)
        assert footage >= (stopped - segs[0].start) - RECOVERY_SECONDS, (footage, stopped - segs[0].start)
        assert segs[0].start >= started[sign] - 1  # sanity: the first run was on the true clock
        print(
            f"clock {sign * STEP:+.0f} s: gap {gap.end - gap.start:.3f} s at {gap.start - stepped:+.3f} s;"
            f" footage {footage:.3f} s of {stopped - segs[0].start:.3f} s"
        )
