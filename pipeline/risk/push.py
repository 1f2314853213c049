"""Where alert changes go besides the database: live subscribers (SSE) and an outbound webhook.

Neither may slow the engine down: publishing only puts a document on bounded queues
(a subscriber or webhook that cannot keep up loses the oldest documents, and says so in
the log); the webhook's HTTP calls, retries and back-off run on their own thread.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any

import httpx

from domain.types import iso
from indexer.alert_store import AlertRecord
from pipeline.risk.rules import RULE_LABELS

logger = logging.getLogger(__name__)

Doc = dict[str, Any]


def alert_json(a: AlertRecord) -> Doc:
    """The one JSON view of an alert (API, SSE and webhook)."""
    zh, en = RULE_LABELS.get(a.rule, (a.rule, a.rule))
    return {
        "id": a.id,
        "rule": a.rule,
        "label": {"zh-CN": zh, "en": en},
        "severity": a.severity,
        "state": a.state,
        "message": a.message,
        "dedup_key": a.dedup_key,
        "case_id": a.case_id,
        "subject_id": a.subject_id,
        "room_id": a.room_id,
        "camera_id": a.camera_id,
        "start": iso(a.start),
        "end": iso(a.end) if a.end else None,
        "raised": iso(a.raised),
        "last_seen": iso(a.last_seen),
        "occurrences": a.occurrences,
        "details": a.details,
        "acknowledged_by": a.acknowledged_by,
        "acknowledged": iso(a.acknowledged) if a.acknowledged else None,
        "resolved_by": a.resolved_by,
        "resolved": iso(a.resolved) if a.resolved else None,
        "note": a.note,
        "snapshot": f"/api/v1/alerts/{a.id}/snapshot.jpg" if a.has_snapshot else None,
    }


class AlertHub:
    """Fan-out of alert changes to live subscribers (one bounded queue each)."""

    def __init__(self, depth: int = 1000) -> None:
        self._depth = depth
        self._lock = threading.Lock()
        self._subscribers: list[queue.Queue[Doc | None]] = []

    def subscribe(self) -> queue.Queue[Doc | None]:
        """A queue of alert changes; None on it means the hub closed (the engine stopped)."""
        q: queue.Queue[Doc | None] = queue.Queue(self._depth)
        with self._lock:
            self._subscribers.append(q)
        return q

    def close(self) -> None:
        """Tell every subscriber the stream ends."""
        with self._lock:
            targets, self._subscribers = self._subscribers, []
        for q in targets:
            _put_dropping_oldest(q, None, "subscriber")

    def unsubscribe(self, q: queue.Queue[Doc | None]) -> None:
        with self._lock:
            if q in self._subscribers:
                self._subscribers.remove(q)

    @property
    def subscribers(self) -> int:
        with self._lock:
            return len(self._subscribers)

    def publish(self, doc: Doc) -> None:
        with self._lock:
            targets = list(self._subscribers)
        for q in targets:
            _put_dropping_oldest(q, doc, "subscriber")


def _put_dropping_oldest(q: queue.Queue[Doc | None], doc: Doc | None, who: str) -> None:
    while True:
        try:
            q.put_nowait(doc)
            return
        except queue.Full:
            try:
                q.get_nowait()
                logger.warning("alert %s queue full: oldest change dropped", who)
            except queue.Empty:
                pass


class WebhookSender:
    """POSTs each alert change as JSON to one URL, in order, retried with exponential back-off.

    A document that still fails after ``max_attempts`` is dropped (logged with the alert id):
    the database and the web remain the record; the webhook is a notification.
    """

    def __init__(
        self,
        url: str,
        timeout: float = 5.0,
        retry_initial: float = 1.0,
        retry_max: float = 60.0,
        max_attempts: int = 8,
        depth: int = 10_000,
    ) -> None:
        self.url = url
        self._timeout = timeout
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._max_attempts = max_attempts
        self._queue: queue.Queue[Doc | None] = queue.Queue(depth)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.delivered = 0
        self.dropped = 0

    def enqueue(self, doc: Doc) -> None:
        _put_dropping_oldest(self._queue, doc, "webhook")

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="alert-webhook", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        with httpx.Client(timeout=self._timeout) as client:
            while not self._stop.is_set():
                try:
                    doc = self._queue.get(timeout=0.5)
                except queue.Empty:
                    continue
                if doc is not None:
                    self._deliver(client, doc)

    def _deliver(self, client: httpx.Client, doc: Doc) -> None:
        delay = self._retry_initial
        for attempt in range(1, self._max_attempts + 1):
            try:
                response = client.post(self.url, json=doc)
                if response.status_code < 300:
                    self.delivered += 1
                    return
                problem = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                problem = str(exc) or type(exc).__name__
            logger.warning(
                "alert webhook attempt %d failed: %s",
                attempt,
                problem,
                extra={"alert_id": doc["alert"]["id"]},
            )
            if self._stop.wait(delay):
                return
            delay = min(delay * 2, self._retry_max)
        self.dropped += 1
        logger.error(
            "alert webhook gave up after %d attempts",
            self._max_attempts,
            extra={"alert_id": doc["alert"]["id"]},
        )
