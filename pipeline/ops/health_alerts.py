"""Operational alerts raised by the running pipeline (storage down, spool full, camera lost).

Kept in memory, deduplicated by (kind, subject) while open, logged, and counted in metrics.
The risk-alert engine of later work persists case alerts; these are the system's own.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

from domain.types import Clock, from_unix, iso

logger = logging.getLogger(__name__)

# Kinds that close an open alert of another kind for the same subject.
_RESOLVES = {
    "storage_restored": "storage_unavailable",
    "camera_recording": "camera_lost",
    "spool_writable": "spool_failure",
    "upload_caught_up": "upload_lagging",
    "spool_space_ok": "spool_low_space",
}


@dataclass
class Alert:
    kind: str
    subject: str
    message: str
    raised_at: datetime
    count: int = 1
    resolved_at: datetime | None = None
    last_seen: datetime | None = field(default=None)

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "subject": self.subject,
            "message": self.message,
            "raised_at": iso(self.raised_at),
            "last_seen": iso(self.last_seen or self.raised_at),
            "resolved_at": iso(self.resolved_at) if self.resolved_at else None,
            "count": self.count,
            "open": self.resolved_at is None,
        }


class AlertBook:
    """Thread-safe record of system alerts; recent history bounded in memory."""

    def __init__(self, clock: Clock, history: int = 1000) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._open: dict[tuple[str, str], Alert] = {}
        self._history: deque[Alert] = deque(maxlen=history)
        self.raised_total: dict[str, int] = {}

    def raise_(self, kind: str, subject: str, message: str) -> None:
        now = from_unix(self._clock.wall())
        with self._lock:
            target = _RESOLVES.get(kind)
            if target is not None:
                alert = self._open.pop((target, subject), None)
                if alert is not None:
                    alert.resolved_at = now
                    logger.warning("alert resolved", extra={"alert": target, "subject": subject})
                return
            key = (kind, subject)
            existing = self._open.get(key)
            if existing is not None:
                existing.count += 1
                existing.last_seen = now
                return
            alert = Alert(kind=kind, subject=subject, message=message, raised_at=now, last_seen=now)
            self._open[key] = alert
            self._history.append(alert)
            self.raised_total[kind] = self.raised_total.get(kind, 0) + 1
        logger.error("alert raised: %s", message, extra={"alert": kind, "subject": subject})

    def open_alerts(self) -> list[Alert]:
        with self._lock:
            return list(self._open.values())

    def recent(self) -> list[Alert]:
        with self._lock:
            return list(self._history)
