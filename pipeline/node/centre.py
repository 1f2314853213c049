"""The running centre: recorder workers → spool → uploader → storage and index.

Composes the packages; the only place that knows all of them. Built from the one
``Settings`` object that ``main()`` made.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from domain.errors import VauditError
from domain.types import Clock, GapCause, GapRecord, SegmentRecord, from_unix, to_unix
from indexer.audit import AuditLog
from indexer.database import create_engine_for, upgrade
from indexer.segment_store import SegmentStore
from pipeline.ingest.spool_watch import SpoolLimits, SpoolWatch
from pipeline.ingest.uploader import SpoolUploader
from pipeline.ops.health_alerts import AlertBook
from pipeline.ops.logs import protect_secrets
from pipeline.ops.metrics import CameraBook, CentreCollector, build_registry
from pipeline.recording.processes import Camera, RecorderProcess, spread
from pipeline.recording.threads import Runnable, WorkerSupervisor
from pipeline.retention import CapacityWatch
from pipeline.risk.engine import RiskEngine, rooms_of
from pipeline.settings import Settings
from pipeline.storage import Storage
from pipeline.storage.anchors import AnchorBook, AnchorWriter
from pipeline.storage.worm import open_evidence_storage
from pipeline.viewing import audio as playback_audio
from pipeline.viewing.live_frames import LiveFrames
from recorders.clock import clock_for
from recorders.events import CameraStatus
from recorders.options import RecorderOptions
from recorders.spool import prepare_spool_root
from recorders.worker import CameraWorker

if TYPE_CHECKING:
    from pipeline.pictures.watcher import PictureWatcher

logger = logging.getLogger(__name__)


class PipelineSink:
    """Receives worker reports: wakes the uploader, feeds metrics, raises alerts."""

    def __init__(
        self, uploader: SpoolUploader, book: CameraBook, alerts: AlertBook, risk: RiskEngine | None = None
    ) -> None:
        self._uploader = uploader
        self._book = book
        self._alerts = alerts
        self._risk = risk
        self._connected: dict[str, bool] = {}
        self._audio_lost: dict[str, float | None] = {}
        self._unrecordable: set[str] = set()  # cameras that failed before they ever recorded
        self._lock = threading.Lock()

    def segment_closed(self, record: SegmentRecord, media_path: Path, sidecar_path: Path) -> None:
        self._book.segment(record.camera_id, to_unix(record.end))
        self._uploader.notify()

    def gap_recorded(self, gap: GapRecord, sidecar_path: Path) -> None:
        self._book.gap(gap.camera_id, gap.cause.value)
        self._uploader.notify()
        if self._risk is not None:
            self._risk.observe_gap(gap)
        if gap.cause is GapCause.STORAGE_FAILURE:
            # The gap is written when footage has resumed: the spool is writable again. Raised
            # first in case no failure status reached us (then the alert shows in the history).
            self._alerts.raise_(
                "spool_failure", gap.camera_id, f"spool write failed for camera {gap.camera_id}: {gap.detail}"
            )
            self._alerts.raise_("spool_writable", gap.camera_id, "")

    def status(self, status: CameraStatus) -> None:
        self._book.update(status)
        with self._lock:
            was = self._connected.get(status.camera_id)
            self._connected[status.camera_id] = status.connected
            audio_was = self._audio_lost.get(status.camera_id)
            self._audio_lost[status.camera_id] = status.audio_lost_since
        if status.state == "stopped":
            return  # we are shutting down: not a camera failure
        if self._risk is not None and audio_was != status.audio_lost_since:
            since = status.audio_lost_since
            self._risk.audio_status(status.camera_id, None if since is None else from_unix(since))
        if self._risk is not None and was is not None and was != status.connected:
            self._risk.camera_status(status.camera_id, status.connected)
        storage = (status.last_error or "").startswith(GapCause.STORAGE_FAILURE.value)
        if storage and status.state in ("backoff", "storage_wait"):
            # Raised while the spool cannot be written (disk full, read-only), not only once
            # recording has resumed; the camera itself is fine, so this is not a camera_lost.
            self._alerts.raise_(
                "spool_failure",
                status.camera_id,
                f"spool write failed for camera {status.camera_id}: {status.last_error}",
            )
        elif was and not status.connected:
            self._alerts.raise_(
                "camera_lost",
                status.camera_id,
                f"camera {status.camera_id} lost: {status.last_error or 'no data'}",
            )
        elif (
            not was
            and status.state == "backoff"
            and status.last_error
            and status.packets == 0
            and status.camera_id not in self._unrecordable
        ):
            # Never recorded since the start: without this a camera whose stream cannot be
            # recorded at all (a codec the recorder cannot store, a wrong password) stays silent.
            self._unrecordable.add(status.camera_id)
            self._alerts.raise_(
                "camera_lost",
                status.camera_id,
                f"camera {status.camera_id} cannot be recorded: {status.last_error}",
            )
            if self._risk is not None:
                self._risk.camera_status(status.camera_id, False)
        elif was is False and status.connected:
            self._alerts.raise_("camera_recording", status.camera_id, "")


class CentreRuntime:
    """Everything ``vaudit run`` keeps alive."""

    def __init__(
        self,
        settings: Settings,
        clock: Clock | None = None,
        migrate: bool = True,
        assign_cameras: bool = True,
        risk_people: bool = True,
        anchor_audit: bool = True,
    ) -> None:
        """``assign_cameras=False``: no camera is recorded until :meth:`record` is called (a
        fleet node records the cameras it holds leases for). ``risk_people=False``: this node
        never sees the centre's events (a fleet recording node), so its risk engine raises only
        the camera alerts that need no knowledge of people (docs/design/alerts.md). ``anchor_audit``:
        this node signs the audit trail's head into storage (pipeline/storage/anchors.py); the API
        node does, fleet recording nodes (which write no audit rows) do not."""
        self.settings = settings
        protect_secrets(*settings.secrets())  # masked in every log line before anything can log them
        self.clock: Clock = clock or clock_for(settings.recorder.clock_offset_file)
        self.spool = settings.recorder.spool
        prepare_spool_root(self.spool)
        self.storage: Storage = open_evidence_storage(settings)
        self.engine = create_engine_for(settings.database.url)
        if migrate:
            upgrade(self.engine)
        self.store = SegmentStore(self.engine)
        self.store.sync_rooms(settings.room_rows())
        self.alerts = AlertBook(self.clock)
        self.book = CameraBook(self.clock)
        self.uploader = SpoolUploader(
            self.spool,
            self.storage,
            on_stored=self._index,
            cfg=settings.upload,
            alert=lambda kind, message: self.alerts.raise_(kind, "storage", message),
        )
        # Risk alerts (docs/design/alerts.md); the picture watcher feeds ``self.risk.observe_picture``.
        self.live_frames = LiveFrames(self.spool)
        self.risk = RiskEngine(
            settings.risk, rooms_of(settings), self.engine, self.clock, self._snapshot, people=risk_people
        )
        self.sink = PipelineSink(self.uploader, self.book, self.alerts, self.risk)
        self.supervisor = WorkerSupervisor()
        self._options = RecorderOptions.from_config(settings.recorder)
        self._sync_points = {
            cam.id: spec for _room, cam in settings.cameras() if (spec := cam.sync_point()) is not None
        }
        # Camera ids recorded here, whatever runs them (threads are named by camera, recorder
        # processes by group).
        self._process_cameras: list[str] = []
        if assign_cameras and settings.recorder.processes > 0:
            cameras = [(cam.id, cam.url, settings.camera_login(cam)) for _room, cam in settings.cameras()]
            for i, group in enumerate(spread(cameras, settings.recorder.processes), 1):
                self._process_cameras += [c[0] for c in group]
                self.supervisor.add(f"recorders-{i}", self._process_factory(f"recorders-{i}", group))
        elif assign_cameras:
            for _room, cam in settings.cameras():
                self.supervisor.add(cam.id, self._worker_factory(cam.id, cam.url, self._options))
        self.registry = build_registry(
            CentreCollector(
                self.book,
                lambda: [c.id for _r, c in settings.cameras()],
                self.spool,
                self.clock,
                self._uploader_stats,
                gauges={
                    "vaudit_playback_audio_cache_bytes": (
                        "Bytes held by the playback AAC cache (bounded LRU)",
                        lambda: playback_audio.CACHE.size_bytes,
                    )
                },
            )
        )
        self.started_at: float | None = None
        self.capacity = CapacityWatch(self.storage, settings.retention, self.alerts)
        up = settings.upload
        self.spool_watch = SpoolWatch(
            self.spool,
            self.uploader.stats,
            SpoolLimits(up.lag_alert_seconds, up.spool_low_fraction, up.spool_check_seconds),
            self.alerts,
        )
        self.pictures: PictureWatcher | None = None  # made in start(): see there
        self.anchors = (
            AnchorWriter(
                AuditLog(self.engine, None),
                AnchorBook.for_settings(settings, self.storage),
                settings.audit.anchor_interval_seconds,
            )
            if anchor_audit
            else None
        )

    def _worker_factory(
        self,
        camera_id: str,
        url: str,
        options: RecorderOptions,
        restart_cause: tuple[GapCause, str] | None = None,
    ) -> Callable[[], Runnable]:
        found = self.settings.camera(camera_id)
        login = None if found is None else self.settings.camera_login(found[1])

        def make() -> Runnable:
            return CameraWorker(
                camera_id,
                url,
                self.spool,
                options,
                self.sink,
                self.clock,
                restart_cause,
                self._sync_points.get(camera_id),
                login=login,
            )

        return make

    def _process_factory(self, name: str, group: list[Camera]) -> Callable[[], Runnable]:
        def make() -> Runnable:
            return RecorderProcess(
                name,
                group,
                self.spool,
                self._options,
                self.sink,
                {c[0]: self._sync_points[c[0]] for c in group if c[0] in self._sync_points},
            )

        return make

    def recorded_cameras(self) -> list[str]:
        """The cameras this node records (in threads or in recorder processes)."""
        if self._process_cameras:
            return list(self._process_cameras)
        return self.supervisor.names()

    def record(self, camera_id: str, restart_cause: tuple[GapCause, str] | None = None) -> None:
        """Start recording one configured camera (started at once if the runtime runs)."""
        found = self.settings.camera(camera_id)
        if found is None:
            raise KeyError(camera_id)
        if camera_id in self._process_cameras:
            raise ValueError(f"camera {camera_id} is recorded by a recorder process")
        self.supervisor.add(
            camera_id, self._worker_factory(camera_id, found[1].url, self._options, restart_cause)
        )

    def stop_recording(self, camera_id: str, timeout: float = 10.0) -> bool:
        """Stop one camera's worker (its open segment is closed); True if it stopped in time."""
        return self.supervisor.remove(camera_id, timeout)

    def _snapshot(self, camera_id: str) -> bytes | None:
        """The camera's newest keyframe as JPEG: an alert's evidence when it has no picture."""
        try:
            return self.live_frames.frame(camera_id).jpeg
        except VauditError as exc:
            logger.info("no snapshot of camera %s: %s", camera_id, exc)
            return None

    def _uploader_stats(self) -> dict[str, float]:
        stats = asdict(self.uploader.stats())
        return {k: float(v) for k, v in stats.items() if isinstance(v, (int, float, bool))}

    def _index(self, record: SegmentRecord | GapRecord) -> None:
        if isinstance(record, SegmentRecord):
            self.store.add_segment(record)
        else:
            self.store.add_gap(record)

    def start(self) -> None:
        self.started_at = time.time()
        self.uploader.start()
        self.supervisor.start()
        self.capacity.start()
        self.spool_watch.start()
        self.risk.start()
        pic = self.settings.picture_checks
        if pic.enabled and self.pictures is None:
            # Imported here, after the recorders started: OpenCV's import would lengthen start-up
            # (a restart's gap). Checks the cameras recorded here, into the risk engine.
            from pipeline.pictures.watcher import PictureWatcher, thresholds_from

            self.pictures = PictureWatcher(
                self.spool,
                self.recorded_cameras,
                self.risk.observe_picture,
                thresholds_from(pic),
                self.clock,
                interval=pic.interval_seconds,
                snapshot_quality=pic.snapshot_quality,
            )
        if self.pictures is not None:
            self.pictures.start()
        if self.anchors is not None:
            self.anchors.start()
        logger.info("centre recording", extra={"cameras": len(self.settings.cameras())})

    def stop(self, timeout: float = 15.0) -> None:
        logger.info("stopping centre")
        self.capacity.stop()
        self.spool_watch.stop()
        if self.pictures is not None:
            self.pictures.stop()
        self.risk.stop()
        self.supervisor.stop(timeout)
        # Segments closed on stop are uploaded before we leave, if storage allows.
        self.uploader.notify()
        self.uploader.drain(timeout)
        self.uploader.stop(timeout)
        if self.anchors is not None:
            self.anchors.stop()  # the last rows of this run anchored before we go
        self.engine.dispose()

    def camera_statuses(self) -> dict[str, CameraStatus]:
        return {cam: rates.status for cam, rates in self.book.snapshot().items()}
