"""The risk engine: feeds the centre state, runs the rules, keeps one alert per condition.

Inputs (each applied under one lock, then the rules are evaluated at the clock's *now*):

* procedure events and location observations, as the API stores them (:meth:`observe_events`,
  :meth:`observe_observations`);
* recorder health: a camera lost or back (:meth:`camera_status`) and every closed gap
  (:meth:`observe_gap`), both from the runtime's worker sink;
* picture checks (:meth:`observe_picture`, called by the picture watcher);
* a clock tick every ``risk.tick_seconds`` for the time-driven rules.

Output: :class:`indexer.alert_store.AlertStore` rows. A condition that holds continues the
open alert of its dedup key; a condition that stops holding stamps the alert's end (the alert
stays open until a person resolves it); a resolved alert whose condition still holds is not
raised again until the condition has stopped and come back. On start the open alerts are
loaded and the last ``risk.replay_hours`` of readings replayed, so a restart continues what
was open and raises nothing twice.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from sqlalchemy import Engine

from domain.errors import NotFoundError, VauditError
from domain.types import Clock, GapRecord, PictureObservation, from_unix
from indexer.alert_store import AlertRecord, AlertStore, NewAlert, readings_since
from indexer.case_records import StoredEvent, StoredObservation
from indexer.case_store import CaseStore
from pipeline.risk.push import AlertHub, Doc, WebhookSender, alert_json
from pipeline.risk.rules import Condition, evaluate, expected_people, gap_condition
from pipeline.risk.state import CentreState, Person, RoomInfo
from pipeline.settings import RiskConfig, Settings

logger = logging.getLogger(__name__)

SnapshotSource = Callable[[str], bytes | None]
PEOPLE_FREE = ("camera_moved:", "camera_defocused:")  # rules that need no knowledge of people
# Alerts raised from outside the rules (record_external): no condition ends them, a person does.
EXTERNAL = ("footage_integrity:",)


def rooms_of(settings: Settings) -> dict[str, RoomInfo]:
    return {r.id: RoomInfo(r.id, r.kind, tuple(c.id for c in r.cameras), r.name) for r in settings.rooms}


class RiskEngine:
    def __init__(
        self,
        cfg: RiskConfig,
        rooms: dict[str, RoomInfo],
        engine: Engine,
        clock: Clock,
        snapshots: SnapshotSource | None = None,
        people: bool = True,
    ) -> None:
        """``snapshots(camera_id)`` returns a JPEG of the camera now (or None); it is called on
        a background thread for alerts that have no picture of their own.

        ``people=False``: an engine that never sees the centre's events (a fleet recording node;
        they reach the API node): no replay at start, and it manages only the alerts that need no
        knowledge of people (camera moved/defocused), so it neither raises person alerts from a
        stale picture of the centre nor ends the API node's alerts."""
        self.cfg = cfg
        self.people = people
        self.rooms = rooms
        self.alerts = AlertStore(engine)
        self._cases = CaseStore(engine)
        self._engine = engine
        self._clock = clock
        self._snapshots = snapshots
        self.state = CentreState(rooms)
        self.hub = AlertHub()
        self.webhook = (
            WebhookSender(
                cfg.webhook_url,
                cfg.webhook_timeout_seconds,
                cfg.webhook_retry_initial_seconds,
                cfg.webhook_retry_max_seconds,
                cfg.webhook_max_attempts,
            )
            if cfg.webhook_url
            else None
        )
        self._lock = threading.RLock()
        self._open: dict[str, AlertRecord] = {}  # dedup key → open or acknowledged alert
        self._suppressed: set[str] = set()  # resolved by a person while the condition held
        self._people: dict[int, Person | None] = {}
        self._snap_jobs: queue.Queue[tuple[int, str] | None] = queue.Queue(1000)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._loaded = False

    # --- life cycle ---------------------------------------------------------------------------

    def now(self) -> datetime:
        return from_unix(self._clock.wall())

    def load(self) -> None:
        """Open alerts from the database, then the recent readings replayed (no alert raised
        for a condition that is already open)."""
        with self._lock:
            self._open = {a.dedup_key: a for a in self.alerts.open_alerts()}
            now = self.now()
            since = now - timedelta(hours=self.cfg.replay_hours)
            replayed = readings_since(self._engine, since) if self.people else []
            for item in replayed:
                self._apply(item)
            self._loaded = True
            logger.info(
                "risk engine loaded: %d open alerts, %d readings replayed", len(self._open), len(replayed)
            )
            self._sync(now)

    def start(self) -> None:
        if not self._loaded:
            self.load()
        if self.webhook is not None:
            self.webhook.start()
        self._stop.clear()
        for target, name in ((self._tick_loop, "risk-tick"), (self._snapshot_loop, "risk-snapshots")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self.hub.close()
        with contextlib.suppress(queue.Full):
            self._snap_jobs.put_nowait(None)
        for t in self._threads:
            t.join(timeout)
        self._threads.clear()
        if self.webhook is not None:
            self.webhook.stop(timeout)

    def _tick_loop(self) -> None:
        while not self._stop.wait(self.cfg.tick_seconds):
            try:
                self.tick()
            except VauditError:
                logger.exception("risk tick failed")

    # --- inputs -------------------------------------------------------------------------------

    def tick(self) -> None:
        with self._lock:
            now = self.now()
            self.state.prune(now)
            self._sync(now)

    def observe_events(self, stored: Iterable[StoredEvent]) -> None:
        """Events as the API stored them (replays of a stored event change nothing)."""
        self._guarded("events", lambda: self._apply_all(stored))

    def observe_observations(self, stored: Iterable[StoredObservation]) -> None:
        self._guarded("observations", lambda: self._apply_all(stored))

    def camera_status(self, camera_id: str, connected: bool) -> None:
        def apply() -> None:
            if connected:
                self.state.camera_up(camera_id)
            else:
                self.state.camera_down(camera_id, self.now())

        self._guarded("camera status", apply)

    def audio_status(self, camera_id: str, lost_since: datetime | None) -> None:
        """A camera's audio went missing while its video goes on (``lost_since``), or came back."""
        self._guarded("audio status", lambda: self.state.audio_lost(camera_id, lost_since))

    def observe_gap(self, gap: GapRecord) -> None:
        """A closed gap: an alert if the camera's room was occupied at any time during it."""
        with self._lock:
            cond = gap_condition(self.state, self.cfg, gap) if self.cfg.enabled else None
            if cond is None:
                return
            try:
                self._raise(cond, self.now())
            except VauditError:
                logger.exception("risk: gap alert for %s failed", gap.camera_id)

    def observe_picture(self, obs: PictureObservation) -> None:
        """One checked keyframe (the picture watcher's output); raises at once what it shows.

        A new alert about this camera carries ``obs.snapshot_jpeg`` as its evidence from the
        moment it is published."""
        with self._lock:
            self.state.apply_picture(obs, expected_people(self.state, obs.camera_id))
            try:
                self._sync(self.now(), picture=obs)
            except VauditError:
                logger.exception("risk: picture of %s not evaluated", obs.camera_id)

    # --- people's actions ---------------------------------------------------------------------

    def acknowledge(
        self, alert_id: int, user: str, note: str | None = None, user_id: int | None = None
    ) -> AlertRecord:
        rec = self.alerts.acknowledge(alert_id, user, self.now(), note, user_id)
        with self._lock:
            if self._open.get(rec.dedup_key, rec).id == rec.id:
                self._open[rec.dedup_key] = rec
        self._publish("acknowledged", rec)
        return rec

    def resolve(
        self, alert_id: int, user: str, note: str | None = None, user_id: int | None = None
    ) -> AlertRecord:
        rec = self.alerts.resolve(alert_id, user, self.now(), note, user_id)
        with self._lock:
            have = self._open.get(rec.dedup_key)
            if have is not None and have.id == rec.id:
                del self._open[rec.dedup_key]
                if have.end is None:  # still holding: do not raise it again at the next tick
                    self._suppressed.add(rec.dedup_key)
        self._publish("resolved", rec)
        return rec

    # --- internals ----------------------------------------------------------------------------

    def _guarded(self, what: str, apply: Callable[[], object]) -> None:
        """Apply inputs and evaluate; a failure is logged, never passed to the caller (the API
        write that fed us has succeeded and must answer so)."""
        try:
            with self._lock:
                apply()
                self._sync(self.now())
        except VauditError:
            logger.exception("risk engine: %s not evaluated", what)

    def _person(self, subject_id: int | None) -> Person | None:
        if subject_id is None:
            return None
        if subject_id not in self._people:
            try:
                s = self._cases.get_subject(subject_id)
                case = self._cases.get_case(s.case_id)
                self._people[subject_id] = Person(s.id, s.case_id, s.role, s.minor, case.serious, s.name)
            except NotFoundError:
                self._people[subject_id] = None
        return self._people[subject_id]

    def _apply_all(self, items: Iterable[StoredEvent | StoredObservation]) -> None:
        for item in items:
            self._apply(item)

    def _apply(self, item: StoredEvent | StoredObservation) -> None:
        if isinstance(item, StoredEvent):
            self.state.apply_event(self._person(item.event.subject_id), item.event)
        else:
            self.state.apply_observation(
                self._person(item.subject_id), item.officer_id, item.room_id, item.time
            )

    def _sync(self, now: datetime, picture: PictureObservation | None = None) -> list[AlertRecord]:
        """Bring the stored alerts in line with the conditions holding at ``now``."""
        conds = evaluate(self.state, self.cfg, now) if self.cfg.enabled else []
        active = {c.key: c for c in conds}
        self._suppressed &= set(active)
        raised: list[AlertRecord] = []
        for key, cond in active.items():
            if not self._manages(key):
                continue
            have = self._open.get(key)
            if key in self._suppressed or (have is not None and have.end is None):
                continue
            rec = self._raise(cond, now, picture)
            if rec is not None:
                raised.append(rec)
        for key, have in list(self._open.items()):
            if not self._manages(key):
                continue
            if key not in active and have.end is None and not key.startswith("recording_lost:"):
                self._open[key] = self.alerts.condition_ended(have.id, now)
                self._publish("ended", self._open[key])
            elif key.startswith("recording_lost:") and key not in active and have.end is None:
                cam = have.camera_id
                if cam is not None and cam not in self.state.cameras_down:
                    self._open[key] = self.alerts.condition_ended(have.id, now)
                    self._publish("ended", self._open[key])
        return raised

    def _manages(self, key: str) -> bool:
        return not key.startswith(EXTERNAL) and (self.people or key.startswith(PEOPLE_FREE))

    def record_external(self, new: NewAlert) -> AlertRecord:
        """Store an alert that no rule raises (``new.dedup_key`` starts with one of
        :data:`EXTERNAL`) and push it like the others; it stays until a person resolves it."""
        if not new.dedup_key.startswith(EXTERNAL):
            raise ValueError(f"{new.dedup_key!r} is not an external alert's key")
        with self._lock:
            rec, created = self.alerts.raise_or_continue(new, self.now())
        self._publish("raised" if created else "continued", rec)
        if created:
            logger.warning("alert raised: %s", new.message, extra={"rule": new.rule, "alert_id": rec.id})
        return rec

    def _raise(
        self, cond: Condition, now: datetime, picture: PictureObservation | None = None
    ) -> AlertRecord | None:
        new = NewAlert(
            cond.rule,
            cond.key,
            cond.severity,
            cond.message,
            cond.start,
            cond.end,
            cond.case_id,
            cond.subject_id,
            cond.room_id,
            cond.camera_id,
            dict(cond.details),
        )
        rec, created = self.alerts.raise_or_continue(new, now)
        if created and picture is not None and picture.snapshot_jpeg and cond.camera_id == picture.camera_id:
            self.alerts.attach_snapshot(rec.id, picture.snapshot_jpeg, picture.at, picture.camera_id)
            rec = self.alerts.get(rec.id)
        self._open[cond.key] = rec
        self._publish("raised" if created else "continued", rec)
        if not created:
            return None
        logger.warning("risk alert raised: %s", cond.message, extra={"rule": cond.rule, "alert_id": rec.id})
        if not rec.has_snapshot:
            self._want_snapshot(rec)
        return rec

    def _publish(self, event: str, rec: AlertRecord) -> None:
        doc: Doc = {"event": event, "alert": alert_json(rec)}
        self.hub.publish(doc)
        if self.webhook is not None:
            self.webhook.enqueue(doc)

    def _camera_for(self, rec: AlertRecord) -> str | None:
        if rec.camera_id is not None:
            return rec.camera_id
        room = self.rooms.get(rec.room_id or "")
        return room.cameras[0] if room is not None and room.cameras else None

    def _want_snapshot(self, rec: AlertRecord) -> None:
        camera = self._camera_for(rec)
        if camera is None or self._snapshots is None:
            return
        try:
            self._snap_jobs.put_nowait((rec.id, camera))
        except queue.Full:
            logger.warning("snapshot queue full: alert %d has no snapshot", rec.id)

    def _snapshot_loop(self) -> None:
        while not self._stop.is_set():
            job = self._snap_jobs.get()
            if job is None or self._snapshots is None:
                continue
            alert_id, camera = job
            try:
                jpeg = self._snapshots(camera)
            except Exception:  # a decoder or spool problem must not end the loop
                logger.exception("snapshot of camera %s failed", camera)
                continue
            if jpeg:
                try:
                    rec = self.alerts.get(alert_id)
                    self._store_snapshot(rec, jpeg, self.now(), camera)
                except VauditError:
                    logger.exception("snapshot of alert %d not stored", alert_id)

    def _store_snapshot(self, rec: AlertRecord, jpeg: bytes, at: datetime, camera: str | None) -> None:
        if self.alerts.attach_snapshot(rec.id, jpeg, at, camera):
            self._publish("snapshot", self.alerts.get(rec.id))
