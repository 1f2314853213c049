"""Recording in child processes (``[recorder] processes = N``): the cameras spread over N
``python -m recorders`` processes, each reporting segments, gaps and status as JSON lines.

Why: in one process the cameras' remuxing threads share the interpreter lock with everything
else ``vaudit run`` does — uploading, the index writes, playback, exports. At 64 cameras on two
cores the uploader fell to a quarter of the segments the cameras closed (docs/bench/load.md), starved of
the lock rather than limited by its own work. A recorder process has its own lock; the pipeline
keeps the upload, index, alerts and API, and learns of every segment the moment it is closed,
as an in-process worker's sink would be told.

Each process is one supervisor slot: if it dies it is restarted with back-off, and on start it
recovers its cameras' partial segments and records the downtime as a ``recorder_restart`` gap
(what ``CameraWorker`` does on every start). It is told our pid (``--parent-pid``) so that a
pipeline killed with SIGKILL takes its recorders with it instead of leaving them to compete with
the next pipeline for the same spool.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

from domain.credentials import CameraLogin
from domain.errors import VauditError
from domain.types import GapRecord, SegmentRecord
from recorders.events import CameraStatus, RecorderSink
from recorders.options import RecorderOptions
from recorders.sync_point import SyncPointSpec, sync_points_json

logger = logging.getLogger(__name__)


class RecorderProcessError(VauditError):
    """A recorder process ended without being asked to (the supervisor restarts it)."""


Camera = tuple[str, str, CameraLogin | None]  # id, URL, login
_T = TypeVar("_T")


def spread(cameras: Sequence[_T], processes: int) -> list[list[_T]]:
    """Cameras dealt round-robin over at most ``processes`` groups, none empty."""
    groups: list[list[_T]] = [[] for _ in range(max(1, min(processes, len(cameras))))]
    for i, cam in enumerate(cameras):
        groups[i % len(groups)].append(cam)
    return [g for g in groups if g]


def recorder_command(
    cameras: Sequence[Camera],
    spool: Path,
    options: RecorderOptions,
    log_level: str = "INFO",
    sync_points: Mapping[str, SyncPointSpec] | None = None,
) -> list[str]:
    """The child's command line: camera ids only; URLs and logins go on its stdin
    (:func:`cameras_stdin`), out of every user's process list."""
    cmd = [sys.executable, "-m", "recorders", "--spool", str(spool), "--status",
           "--options-json", options.to_json_text(), "--parent-pid", str(os.getpid()),
           "--log-level", log_level, "--cameras-stdin", ",".join(c[0] for c in cameras)]  # fmt: skip
    if sync_points:
        cmd += ["--sync-points-json", sync_points_json(sync_points)]
    return cmd


def cameras_stdin(cameras: Sequence[Camera]) -> str:
    """What the child reads on stdin: its cameras with URLs and logins, one JSON line."""
    items = []
    for camera_id, url, login in cameras:
        item: dict[str, str] = {"id": camera_id, "url": url}
        if login is not None:
            item |= {"user": login.user, "password": login.password}
        items.append(item)
    return json.dumps(items) + "\n"


class RecorderProcess:
    """A supervisor Runnable: one recorder process for a group of cameras, its reports relayed to
    ``sink`` until ``stop`` is set (then SIGTERM: the child closes its segments and exits)."""

    def __init__(
        self,
        name: str,
        cameras: Sequence[Camera],
        spool: Path,
        options: RecorderOptions,
        sink: RecorderSink,
        sync_points: Mapping[str, SyncPointSpec] | None = None,
    ) -> None:
        self.name = name
        self.cameras = [c[0] for c in cameras]
        self._cmd = recorder_command(
            cameras, spool, options, logging.getLevelName(logger.getEffectiveLevel()), sync_points
        )
        self._stdin = cameras_stdin(cameras)
        self._sink = sink
        # The child's own bound for its threads to close segments, plus start-up slack.
        self._grace = max(options.stall_seconds, 5.0) + 10.0

    def run(self, stop: threading.Event) -> None:
        proc = subprocess.Popen(
            # Its own session: a terminal's Ctrl-C reaches us, and we stop it in order (not both at once).
            self._cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            start_new_session=True,
        )
        assert proc.stdin is not None
        try:
            proc.stdin.write(self._stdin)
        except OSError as exc:  # the child died at once: its exit code says why (below)
            logger.warning(
                "could not hand the cameras to the recorder process",
                extra={"recorder": self.name, "error": str(exc)},
            )
        finally:
            with contextlib.suppress(OSError):
                proc.stdin.close()
        logger.info(
            "recorder process started",
            extra={"recorder": self.name, "pid": proc.pid, "cameras": len(self.cameras)},
        )
        stopper = threading.Thread(
            target=self._stop_on, args=(stop, proc), name=f"{self.name}-stop", daemon=True
        )
        stopper.start()
        assert proc.stdout is not None
        try:
            self._relay(proc.stdout)
        finally:
            code = proc.wait()  # stdout ended: the child exited or is about to
            stopper.join(self._grace + 5.0)
        if not stop.is_set():
            raise RecorderProcessError(
                f"recorder process {self.name} (pid {proc.pid}) exited with {code}",
                recorder=self.name,
                exit_code=code,
            )
        logger.info("recorder process stopped", extra={"recorder": self.name, "exit_code": code})

    def _relay(self, lines: IO[str]) -> None:
        for line in lines:
            try:
                self._dispatch(json.loads(line))
            except (ValueError, KeyError, TypeError) as exc:
                # A report we cannot read loses nothing: the sidecars on the spool are the record,
                # and the uploader finds them on its next scan.
                logger.warning(
                    "unreadable recorder report",
                    extra={"recorder": self.name, "line": line[:200], "error": str(exc)},
                )
            except Exception:  # the sink's own failure must not stop the relay of the others
                logger.exception("recorder report failed", extra={"recorder": self.name})

    def _dispatch(self, data: dict[str, Any]) -> None:
        event = data.get("event")
        if event == "segment_closed":
            record = SegmentRecord.from_json(data["record"])
            self._sink.segment_closed(record, Path(data["media_path"]), Path(data["sidecar_path"]))
        elif event == "gap_recorded":
            self._sink.gap_recorded(GapRecord.from_json(data["gap"]), Path(data["sidecar_path"]))
        elif event == "status":
            fields = {k: v for k, v in data.items() if k != "event"}
            self._sink.status(CameraStatus(**fields))
        else:
            raise ValueError(f"unknown event {event!r}")

    def _stop_on(self, stop: threading.Event, proc: subprocess.Popen[str]) -> None:
        """On ``stop``: SIGTERM, and SIGKILL if the child overstays the grace (its stdout then
        ends, which ends the relay)."""
        while not stop.wait(0.5):
            if proc.poll() is not None:
                return
        if proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(self._grace)
        except subprocess.TimeoutExpired:
            logger.error(
                "recorder process did not stop; killed", extra={"recorder": self.name, "pid": proc.pid}
            )
            proc.kill()
