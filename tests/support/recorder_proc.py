"""``python -m recorders`` as a subprocess for crash tests, its JSON-line events collected."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


class Recorder:
    """``python -m recorders`` in a subprocess, its JSON-line events collected with arrival times."""

    def __init__(
        self, spool: Path, camera_id: str, url: str, segment_seconds: float = 4.0, extra: tuple[str, ...] = ()
    ) -> None:
        self.events: list[tuple[float, dict[str, Any]]] = []
        self.started = time.time()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "recorders",
                "--spool",
                str(spool),
                "--camera",
                f"{camera_id}={url}",
                "--segment-seconds",
                str(segment_seconds),
                "--status",
                *extra,
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.events.append((time.time(), json.loads(line)))

    def wait(self, predicate: Any, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(predicate(e) for _, e in list(self.events)):
                return True
            time.sleep(0.05)
        return False

    def segments(self) -> list[dict[str, Any]]:
        return [e["record"] for _, e in self.events if e["event"] == "segment_closed"]

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=15)
        finally:
            self._reader.join(timeout=5)


def spool_records(spool: Path, camera_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The closed segment and gap sidecars of a camera in a spool nobody drains (segments by seq)."""
    segments: list[dict[str, Any]] = []
    gaps: list[dict[str, Any]] = []
    for path in (spool / camera_id).rglob("*.json"):
        if path.name == "state.json" or path.name.endswith(".partial.json") or "quarantine" in path.parts:
            continue
        data = json.loads(path.read_text())
        (segments if data["kind"] == "segment" else gaps).append(data)
    return sorted(segments, key=lambda r: r["seq"]), sorted(gaps, key=lambda g: g["start"])
