"""``python -m recorders --spool DIR --camera ID=URL [...]``: record cameras into a spool, nothing else.

``--cameras-stdin ID,ID`` reads those cameras (with their logins) as one JSON line from standard
input instead: a login in ``--camera`` shows in every user's process list (``ps``,
/proc/PID/cmdline); the ids stay there, so an operator sees which process records which camera.

One process, one thread per camera, events as JSON lines on stdout (``segment_closed``,
``gap_recorded``, and ``status`` with ``--status``). SIGTERM/SIGINT close every open segment
cleanly and exit 0. Used by the crash-recovery test and the benchmark; the pipeline embeds
:class:`recorders.worker.CameraWorker` directly instead.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from domain.credentials import CameraLogin, Redactor, url_secrets
from domain.errors import SpoolError
from domain.types import GapRecord, SegmentRecord
from recorders.events import CameraStatus
from recorders.heap import limit_malloc_arenas
from recorders.options import RecorderOptions
from recorders.spool import prepare_spool_root
from recorders.sync_point import SyncPointSpec, sync_points_from_json
from recorders.worker import CameraWorker


class JsonLinesSink:
    """A RecorderSink printing one JSON object per event (thread-safe, flushed per line)."""

    def __init__(self, out: TextIO, statuses: bool) -> None:
        self._out = out
        self._statuses = statuses
        self._lock = threading.Lock()

    def _print(self, data: dict[str, Any]) -> None:
        line = json.dumps(data, ensure_ascii=False, sort_keys=True)
        with self._lock:
            self._out.write(line + "\n")
            self._out.flush()

    def segment_closed(self, record: SegmentRecord, media_path: Path, sidecar_path: Path) -> None:
        self._print(
            {
                "event": "segment_closed",
                "record": record.to_json(),
                "media_path": str(media_path),
                "sidecar_path": str(sidecar_path),
            }
        )

    def gap_recorded(self, gap: GapRecord, sidecar_path: Path) -> None:
        self._print({"event": "gap_recorded", "gap": gap.to_json(), "sidecar_path": str(sidecar_path)})

    def status(self, status: CameraStatus) -> None:
        if self._statuses:
            self._print({"event": "status", **asdict(status)})


class _JsonLogFormatter(logging.Formatter):
    _skip = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message"}

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self._redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {"level": record.levelname, "logger": record.name, "msg": record.getMessage()}
        data.update({k: v for k, v in record.__dict__.items() if k not in self._skip})
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        # The last line of defence: the cameras' secrets, whatever wrote them (libav's texts
        # in a traceback), never reach the log (the line is JSON: escaped spellings included).
        return self._redactor.text(json.dumps(data, default=str, ensure_ascii=False))


CameraSpec = tuple[str, str, CameraLogin | None]  # id, URL, login


def _cameras_from_stdin(text: str, ids: list[str]) -> list[CameraSpec]:
    """``[{"id", "url", "user"?, "password"?}, ...]`` -> camera specs; ValueError if malformed or
    if the cameras are not exactly ``ids``."""
    data = json.loads(text)
    if not isinstance(data, list) or not data:
        raise ValueError("want a non-empty JSON list of cameras")
    out: list[CameraSpec] = []
    for item in data:
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("id"), str)
            or not isinstance(item.get("url"), str)
        ):
            raise ValueError("every camera needs a string id and url")
        user = item.get("user")
        login = None if user is None else CameraLogin(str(user), str(item.get("password") or ""))
        out.append((item["id"], item["url"], login))
    if sorted(c[0] for c in out) != sorted(ids):
        raise ValueError(
            f"stdin has cameras {sorted(c[0] for c in out)}, the command line names {sorted(ids)}"
        )
    return out


def _camera(text: str) -> tuple[str, str]:
    camera_id, sep, url = text.partition("=")
    if not sep or not camera_id or not url:
        raise argparse.ArgumentTypeError(f"--camera wants ID=URL, got {text!r}")
    return camera_id, url


def _exit_with_parent(parent: int, stop: threading.Event) -> None:
    """Stop like on SIGTERM when the parent dies: a pipeline killed with SIGKILL must not leave a
    recorder behind, which its successor would duplicate on the same spool. The kernel sends
    SIGTERM on the parent's death (Linux PR_SET_PDEATHSIG); the parent may have died before that
    was set (then we were re-parented already), and a poll covers systems without prctl."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:
        stop.set()
        return

    def watch() -> None:
        while not stop.wait(1.0):
            if os.getppid() != parent:
                stop.set()

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recorders", description=__doc__.splitlines()[0])
    parser.add_argument("--spool", type=Path, required=True, help="spool directory")
    parser.add_argument("--camera", type=_camera, action="append", default=[], metavar="ID=URL")
    parser.add_argument(
        "--cameras-stdin",
        default=None,
        metavar="ID,ID",
        help='read these cameras from one JSON line on stdin: [{"id", "url", "user", "password"}]',
    )
    parser.add_argument("--segment-seconds", type=float, default=10.0)
    parser.add_argument("--stall-seconds", type=float, default=5.0)
    parser.add_argument(
        "--clock-offset-file",
        type=Path,
        default=None,
        help="test/ops hook: wall clock = system clock + the seconds in this file",
    )
    parser.add_argument(
        "--write-buffer-seconds",
        type=float,
        default=0.25,
        help="media a crash may lose, as seconds of the camera's bitrate (0: a write per packet)",
    )
    parser.add_argument(
        "--read-pause-seconds",
        type=float,
        default=RecorderOptions().read_pause_seconds,
        help="after a read that waited for the network, pause this long (0: none)",
    )
    parser.add_argument(
        "--options-json",
        default=None,
        help="every RecorderOptions field as one JSON object (the pipeline's way; "
        "replaces the option flags above, --spool still names the spool)",
    )
    parser.add_argument(
        "--sync-points-json",
        default=None,
        help='{"camera id": {"url": ONVIF media service, "profile": token}}: cameras to ask '
        "for a keyframe when a session starts mid-GOP",
    )
    parser.add_argument(
        "--parent-pid",
        type=int,
        default=None,
        help="stop (closing segments) when this process, our parent, dies",
    )
    parser.add_argument("--status", action="store_true", help="also print status events (~1/s/camera)")
    parser.add_argument("--log-level", default="WARNING")
    args = parser.parse_args(argv)

    cameras: list[CameraSpec] = [(camera_id, url, None) for camera_id, url in args.camera]
    if args.cameras_stdin is not None:
        try:
            cameras += _cameras_from_stdin(sys.stdin.readline(), args.cameras_stdin.split(","))
        except (ValueError, TypeError) as exc:
            parser.error(f"--cameras-stdin: {exc}")
    if not cameras:
        parser.error("no camera: give --camera ID=URL or --cameras-stdin")
    limit_malloc_arenas()
    redactor = Redactor()
    for _camera_id, url, login in cameras:
        redactor.add(*url_secrets(url, login))
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonLogFormatter(redactor))
    logging.basicConfig(level=args.log_level.upper(), handlers=[handler])
    try:
        prepare_spool_root(args.spool)
    except SpoolError as exc:
        parser.error(exc.message)

    if args.options_json is not None:
        try:
            opts = RecorderOptions.from_json_text(args.options_json, args.spool)
        except (ValueError, TypeError) as exc:
            parser.error(f"--options-json: {exc}")
    else:
        opts = RecorderOptions(
            segment_seconds=args.segment_seconds,
            stall_seconds=args.stall_seconds,
            spool=args.spool,
            write_buffer_seconds=args.write_buffer_seconds,
            read_pause_seconds=args.read_pause_seconds,
            clock_offset_file=args.clock_offset_file,
        )
    sync_points: dict[str, SyncPointSpec] = {}
    if args.sync_points_json is not None:
        try:
            sync_points = sync_points_from_json(args.sync_points_json)
        except ValueError as exc:
            parser.error(f"--sync-points-json: {exc}")
    unknown = sorted(set(sync_points) - {camera_id for camera_id, _url, _login in cameras})
    if unknown:
        parser.error(f"--sync-points-json names cameras this process does not record: {', '.join(unknown)}")
    sink = JsonLinesSink(sys.stdout, args.status)
    stop = threading.Event()
    received: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        # Only a flag: Event.set() in a handler deadlocked when the signal landed while the main
        # thread held the Event's lock inside stop.wait() (seen: a recorder hung on SIGTERM forever).
        received.append(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if args.parent_pid is not None:
        _exit_with_parent(args.parent_pid, stop)
    threads = []
    for camera_id, url, login in cameras:
        worker = CameraWorker(
            camera_id, url, args.spool, opts, sink, sync_point=sync_points.get(camera_id), login=login
        )
        thread = threading.Thread(target=worker.run, args=(stop,), name=f"rec-{camera_id}", daemon=True)
        thread.start()
        threads.append(thread)
    while not received and not stop.is_set():
        time.sleep(0.2)
    stop.set()
    # One deadline for all cameras (not one per thread: 16 stuck threads would be minutes). A
    # worker still busy after it (a camera's TEARDOWN or a read that ignores its timeout) is left:
    # its open segment stays marked partial and the next start recovers it, as after a crash.
    deadline = time.monotonic() + max(opts.stall_seconds, 5.0) + 5.0
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    stuck = [t.name for t in threads if t.is_alive()]
    if stuck:
        logging.getLogger("recorders").error(
            "workers did not stop in time; exiting without them", extra={"threads": stuck}
        )
        logging.shutdown()
        os._exit(1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
