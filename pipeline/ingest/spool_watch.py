"""Early warnings about the local spool, before anything can be lost.

The spool is where every segment waits until the uploader has stored and verified it. Two things
make it fill: storage that is down (already alerted as ``storage_unavailable``) and an uploader
that stays up but cannot keep pace: a machine short of CPU or disk bandwidth, a slow link to the
object store. The second is silent otherwise: nothing fails, the backlog just grows until the
disk is full and recording stops (``spool_failure``). So, every ``check_seconds``:

* ``upload_lagging`` while the oldest segment waiting in the spool is older than
  ``lag_alert_seconds`` (resolved by ``upload_caught_up``);
* ``spool_low_space`` while the spool's file system has less than ``spool_low_fraction`` free
  (resolved by ``spool_space_ok``).

Both name the figures an operator needs: how much is waiting, since when, how much room is left.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pipeline.ingest.uploader import UploaderStats
from pipeline.ops.health_alerts import AlertBook

log = logging.getLogger(__name__)

SUBJECT = "spool"


@dataclass(frozen=True)
class SpoolLimits:
    lag_alert_seconds: float  # 0: never
    low_fraction: float  # 0: never
    check_seconds: float


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"  # pragma: no cover - the loop returns at GB


def check_spool(
    stats: UploaderStats, free: int, total: int, limits: SpoolLimits, alerts: AlertBook, open_kinds: set[str]
) -> set[str]:
    """One check; returns the kinds now open (pure apart from the alert calls)."""
    age = stats.oldest_pending_age
    waiting = f"{stats.pending_files} segment(s), {_size(stats.spool_bytes)}"
    fraction = free / total if total > 0 else 1.0
    lagging = limits.lag_alert_seconds > 0 and age is not None and age > limits.lag_alert_seconds
    low = limits.low_fraction > 0 and fraction < limits.low_fraction
    conditions = (
        (
            "upload_lagging",
            lagging,
            f"uploads are {age or 0:.0f} s behind: {waiting} waiting in the spool "
            f"({_size(free)} free); nothing is lost while the spool has room",
            "upload_caught_up",
            f"uploads caught up ({waiting} waiting)",
        ),
        (
            "spool_low_space",
            low,
            f"spool file system {fraction:.1%} free ({_size(free)} of {_size(total)}); "
            f"{waiting} waiting to be stored",
            "spool_space_ok",
            f"spool file system {fraction:.1%} free again",
        ),
    )
    now_open: set[str] = set()
    for kind, holds, message, resolved_by, all_clear in conditions:
        if holds:
            alerts.raise_(kind, SUBJECT, message)
            now_open.add(kind)
        elif kind in open_kinds:  # resolves the open alert (pipeline.ops.health_alerts._RESOLVES)
            alerts.raise_(resolved_by, SUBJECT, all_clear)
    return now_open


class SpoolWatch:
    """Runs :func:`check_spool` every ``limits.check_seconds`` on a daemon thread."""

    def __init__(
        self, spool: Path, stats: Callable[[], UploaderStats], limits: SpoolLimits, alerts: AlertBook
    ) -> None:
        self._spool = spool
        self._stats = stats
        self._limits = limits
        self._alerts = alerts
        self._open: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check(self) -> set[str]:
        usage = shutil.disk_usage(self._spool)
        self._open = check_spool(
            self._stats(), usage.free, usage.total, self._limits, self._alerts, self._open
        )
        return self._open

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="spool-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._limits.check_seconds):
            try:
                self.check()
            except OSError as exc:  # the spool's own failures are alerted by the recorder's sink
                log.warning("spool check failed: %s", exc)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
