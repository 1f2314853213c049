"""Upload-lag and spool-space alerts (pipeline/ingest/spool_watch.py)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from pipeline.ingest.spool_watch import SpoolLimits, SpoolWatch, check_spool
from pipeline.ingest.uploader import SpoolUploader, UploaderStats
from pipeline.ops.health_alerts import AlertBook
from pipeline.settings import UploadConfig
from pipeline.storage import LocalStorage
from recorders.clock import SystemClock

LIMITS = SpoolLimits(lag_alert_seconds=300.0, low_fraction=0.1, check_seconds=10.0)
GB = 1024**3


def _stats(age: float | None, files: int = 3, size: int = 30 * 1024**2) -> UploaderStats:
    return UploaderStats(
        pending_files=files,
        spool_bytes=size,
        uploaded=0,
        failures=0,
        quarantined=0,
        storage_ok=True,
        oldest_pending_age=age,
        last_error=None,
        in_flight=0,
    )


def _open(book: AlertBook) -> dict[str, str]:
    return {a.kind: a.message for a in book.open_alerts()}


def test_lag_raised_past_the_limit_and_resolved_when_caught_up() -> None:
    book = AlertBook(SystemClock())
    kinds = check_spool(_stats(120.0), 50 * GB, 100 * GB, LIMITS, book, set())
    assert kinds == set() and _open(book) == {}
    kinds = check_spool(_stats(301.0, files=3133, size=17 * GB), 50 * GB, 100 * GB, LIMITS, book, kinds)
    assert kinds == {"upload_lagging"}
    message = _open(book)["upload_lagging"]
    assert "301 s behind" in message and "3133 segment(s), 17.0 GB" in message and "50.0 GB free" in message
    kinds = check_spool(_stats(400.0), 50 * GB, 100 * GB, LIMITS, book, kinds)  # still open, not twice
    assert len([a for a in book.recent() if a.kind == "upload_lagging"]) == 1
    kinds = check_spool(_stats(None, files=0, size=0), 50 * GB, 100 * GB, LIMITS, book, kinds)
    assert kinds == set() and _open(book) == {}
    assert [a.kind for a in book.recent() if a.kind == "upload_lagging"] == ["upload_lagging"]


def test_low_space_raised_and_resolved() -> None:
    book = AlertBook(SystemClock())
    kinds = check_spool(_stats(1.0), 5 * GB, 100 * GB, LIMITS, book, set())
    assert kinds == {"spool_low_space"} and "5.0% free (5.0 GB of 100.0 GB)" in _open(book)["spool_low_space"]
    kinds = check_spool(_stats(1.0), 20 * GB, 100 * GB, LIMITS, book, kinds)
    assert kinds == set() and _open(book) == {}


def test_zero_limits_never_alert() -> None:
    book = AlertBook(SystemClock())
    off = SpoolLimits(lag_alert_seconds=0.0, low_fraction=0.0, check_seconds=10.0)
    assert check_spool(_stats(1e6), 0, 100 * GB, off, book, set()) == set() and _open(book) == {}


def test_watch_reads_the_real_spool_and_uploader(tmp_path: Path) -> None:
    """A segment older than the limit waits in a real spool (the uploader is not running): the
    watch raises upload_lagging from the uploader's own figures; once it is stored, it resolves."""
    spool, store = tmp_path / "spool", tmp_path / "store"
    cam = spool / "cam-a"
    cam.mkdir(parents=True)
    media = cam / "seg.ts"
    media.write_bytes(b"\x47" * 188 * 10)
    sidecar = cam / "seg.json"
    sidecar.write_text(json.dumps({"kind": "gap", "camera_id": "cam-a"}), encoding="utf-8")
    old = time.time() - 120
    for path in (media, sidecar):
        os.utime(path, (old, old))
    book = AlertBook(SystemClock())
    uploader = SpoolUploader(spool, LocalStorage(store), on_stored=lambda _record: None, cfg=UploadConfig())
    watch = SpoolWatch(spool, uploader.stats, SpoolLimits(60.0, 0.0, 10.0), book)
    assert watch.check() == {"upload_lagging"}
    assert "1 segment(s)" in _open(book)["upload_lagging"]
    sidecar.unlink()
    media.unlink()
    assert watch.check() == set() and _open(book) == {}
