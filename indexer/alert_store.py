"""Risk alerts in the index: raise (deduplicated), continue, acknowledge, resolve, list.

Plain data in and out (:class:`AlertRecord`); see :mod:`indexer.models.alerts` for the
tables and their invariants. Dedup is the database's: ``open_key`` is UNIQUE, so
:meth:`AlertStore.raise_or_continue` either inserts a new open alert or finds the open one
of that key and extends it, inside one transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Select, Table, and_, or_, select, update

from domain.errors import ConflictError, NotFoundError, ValidationFailed
from domain.types import ObservationSource
from indexer.case_records import StoredEvent, StoredObservation, event_from_row
from indexer.case_store import EVENTS, OBSERVATIONS, CaseStore
from indexer.database import mapped_transaction, session_factory
from indexer.models import Base, from_us, to_us
from indexer.models.alerts import RiskAlert, RiskAlertSnapshot

log = logging.getLogger(__name__)

ALERTS: Table = Base.metadata.tables[RiskAlert.__tablename__]
SNAPSHOTS: Table = Base.metadata.tables[RiskAlertSnapshot.__tablename__]


@dataclass(frozen=True, slots=True)
class NewAlert:
    rule: str
    dedup_key: str
    severity: str
    message: str
    start: datetime
    end: datetime | None = None
    case_id: int | None = None
    subject_id: int | None = None
    room_id: str | None = None
    camera_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AlertRecord:
    id: int
    rule: str
    severity: str
    dedup_key: str
    state: str
    message: str
    case_id: int | None
    subject_id: int | None
    room_id: str | None
    camera_id: str | None
    start: datetime
    end: datetime | None
    raised: datetime
    last_seen: datetime
    occurrences: int
    details: dict[str, Any]
    acknowledged_by: str | None
    acknowledged: datetime | None
    resolved_by: str | None
    resolved: datetime | None
    note: str | None
    has_snapshot: bool = False

    @property
    def is_open(self) -> bool:
        return self.state != "resolved"


@dataclass(frozen=True, slots=True)
class AlertQuery:
    state: str | None = None  # open | acknowledged | resolved | "active" (open or acknowledged)
    case_id: int | None = None
    room_id: str | None = None
    since: datetime | None = None  # alerts whose condition lasted until at least then
    limit: int = 200


def _record(r: Any, has_snapshot: bool) -> AlertRecord:
    return AlertRecord(
        id=int(r["id"]),
        rule=r["rule"],
        severity=r["severity"],
        dedup_key=r["dedup_key"],
        state=r["state"],
        message=r["message"],
        case_id=r["case_id"],
        subject_id=r["subject_id"],
        room_id=r["room_id"],
        camera_id=r["camera_id"],
        start=from_us(r["start_us"]),
        end=None if r["end_us"] is None else from_us(r["end_us"]),
        raised=from_us(r["raised_us"]),
        last_seen=from_us(r["last_seen_us"]),
        occurrences=int(r["occurrences"]),
        details=dict(r["details"] or {}),
        acknowledged_by=r["acknowledged_by"],
        acknowledged=None if r["acknowledged_us"] is None else from_us(r["acknowledged_us"]),
        resolved_by=r["resolved_by"],
        resolved=None if r["resolved_us"] is None else from_us(r["resolved_us"]),
        note=r["note"],
        has_snapshot=has_snapshot,
    )


class AlertStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._sessions = session_factory(engine)

    def _select(self) -> Select[Any]:
        has = select(SNAPSHOTS.c.alert_id).where(SNAPSHOTS.c.alert_id == ALERTS.c.id).exists()
        return select(ALERTS, has.label("has_snapshot"))

    def _one(self, s: Any, alert_id: int) -> AlertRecord:
        row = s.execute(self._select().where(ALERTS.c.id == alert_id)).mappings().first()
        if row is None:
            raise NotFoundError(f"alert {alert_id} does not exist", alert_id=alert_id)
        return _record(row, bool(row["has_snapshot"]))

    def raise_or_continue(self, new: NewAlert, now: datetime) -> tuple[AlertRecord, bool]:
        """The open alert of ``new.dedup_key``: a new row (True) or the existing one, continued."""
        for _attempt in range(3):  # a concurrent insert of the same key: read it on the retry
            try:
                with mapped_transaction(self._sessions, "raise alert") as s:
                    have = s.execute(
                        select(ALERTS.c.id, ALERTS.c.end_us, ALERTS.c.start_us).where(
                            ALERTS.c.open_key == new.dedup_key
                        )
                    ).first()
                    if have is not None:
                        values: dict[str, Any] = {"last_seen_us": to_us(now)}
                        if have.end_us is not None and new.end is None:  # held again: reopen its range
                            values["end_us"] = None
                            values["occurrences"] = ALERTS.c.occurrences + 1
                        elif new.end is not None:  # a closed instance (a gap) extends the range
                            values["end_us"] = max(to_us(new.end), have.end_us or 0)
                            values["start_us"] = min(to_us(new.start), have.start_us)
                            values["occurrences"] = ALERTS.c.occurrences + 1
                        s.execute(update(ALERTS).where(ALERTS.c.id == have.id).values(**values))
                        return self._one(s, int(have.id)), False
                    row = {
                        "rule": new.rule,
                        "severity": new.severity,
                        "dedup_key": new.dedup_key,
                        "open_key": new.dedup_key,
                        "state": "open",
                        "message": new.message,
                        "case_id": new.case_id,
                        "subject_id": new.subject_id,
                        "room_id": new.room_id,
                        "camera_id": new.camera_id,
                        "start_us": to_us(new.start),
                        "end_us": None if new.end is None else to_us(new.end),
                        "raised_us": to_us(now),
                        "last_seen_us": to_us(now),
                        "occurrences": 1,
                        "details": new.details or None,
                    }
                    alert_id = s.execute(ALERTS.insert().values(**row).returning(ALERTS.c.id)).scalar_one()
                    return self._one(s, int(alert_id)), True
            except ConflictError:
                log.info("alert %s raised concurrently; continuing the other one", new.dedup_key)
        raise ConflictError(f"alert {new.dedup_key} could not be raised", dedup_key=new.dedup_key)

    def condition_ended(self, alert_id: int, end: datetime) -> AlertRecord:
        """The condition stopped holding at ``end`` (the alert stays for a person to close)."""
        with mapped_transaction(self._sessions, "end alert condition") as s:
            s.execute(
                update(ALERTS)
                .where(ALERTS.c.id == alert_id, ALERTS.c.end_us.is_(None))
                .values(end_us=to_us(end))
            )
            return self._one(s, alert_id)

    def attach_snapshot(self, alert_id: int, jpeg: bytes, taken: datetime, camera_id: str | None) -> bool:
        """Store the alert's snapshot unless it has one already (the first picture is the evidence)."""
        with mapped_transaction(self._sessions, "alert snapshot") as s:
            if s.execute(select(SNAPSHOTS.c.alert_id).where(SNAPSHOTS.c.alert_id == alert_id)).first():
                return False
            s.execute(
                SNAPSHOTS.insert().values(
                    alert_id=alert_id, taken_us=to_us(taken), camera_id=camera_id, jpeg=jpeg
                )
            )
            return True

    def snapshot(self, alert_id: int) -> tuple[bytes, datetime, str | None]:
        with mapped_transaction(self._sessions, "alert snapshot") as s:
            row = s.execute(select(SNAPSHOTS).where(SNAPSHOTS.c.alert_id == alert_id)).mappings().first()
        if row is None:
            raise NotFoundError(f"alert {alert_id} has no snapshot", alert_id=alert_id)
        return bytes(row["jpeg"]), from_us(row["taken_us"]), row["camera_id"]

    def acknowledge(
        self, alert_id: int, user: str, now: datetime, note: str | None = None, user_id: int | None = None
    ) -> AlertRecord:
        """``user``: the name kept with the alert; ``user_id``: the account (None: the system)."""
        with mapped_transaction(self._sessions, "acknowledge alert") as s:
            have = self._one(s, alert_id)
            if have.state != "open":
                raise ConflictError(f"alert {alert_id} is {have.state}, not open", state=have.state)
            values: dict[str, Any] = {
                "state": "acknowledged",
                "acknowledged_by": user,
                "acknowledged_by_id": user_id,
                "acknowledged_us": to_us(now),
            }
            if note:
                values["note"] = note
            s.execute(update(ALERTS).where(ALERTS.c.id == alert_id).values(**values))
            return self._one(s, alert_id)

    def resolve(
        self, alert_id: int, user: str, now: datetime, note: str | None = None, user_id: int | None = None
    ) -> AlertRecord:
        """Close the alert; its key is free again, so the condition, if it recurs, is a new alert."""
        with mapped_transaction(self._sessions, "resolve alert") as s:
            have = self._one(s, alert_id)
            if have.state == "resolved":
                raise ConflictError(f"alert {alert_id} is already resolved", state=have.state)
            values: dict[str, Any] = {
                "state": "resolved",
                "open_key": None,
                "resolved_by": user,
                "resolved_by_id": user_id,
                "resolved_us": to_us(now),
            }
            if have.end is None:
                values["end_us"] = to_us(now)
            if note:
                values["note"] = note
            s.execute(update(ALERTS).where(ALERTS.c.id == alert_id).values(**values))
            return self._one(s, alert_id)

    def get(self, alert_id: int) -> AlertRecord:
        with mapped_transaction(self._sessions, "alert") as s:
            return self._one(s, alert_id)

    def open_alerts(self) -> list[AlertRecord]:
        """Open and acknowledged alerts (what the engine continues after a restart)."""
        return self.find(AlertQuery(state="active", limit=100_000))

    def find(self, q: AlertQuery) -> list[AlertRecord]:
        if q.limit < 1:
            raise ValidationFailed("limit must be positive")
        stmt = self._select()
        if q.state == "active":
            stmt = stmt.where(ALERTS.c.open_key.is_not(None))
        elif q.state is not None:
            stmt = stmt.where(ALERTS.c.state == q.state)
        if q.case_id is not None:
            stmt = stmt.where(ALERTS.c.case_id == q.case_id)
        if q.room_id is not None:
            stmt = stmt.where(ALERTS.c.room_id == q.room_id)
        if q.since is not None:
            stmt = stmt.where(or_(ALERTS.c.end_us.is_(None), ALERTS.c.end_us >= to_us(q.since)))
        stmt = stmt.order_by(ALERTS.c.raised_us.desc(), ALERTS.c.id.desc()).limit(q.limit)
        with mapped_transaction(self._sessions, "list alerts") as s:
            rows = s.execute(stmt).mappings().all()
        return [_record(r, bool(r["has_snapshot"])) for r in rows]

    def of_case(
        self, case_id: int, rooms: Sequence[tuple[str, datetime, datetime | None]] = ()
    ) -> list[AlertRecord]:
        """A case's alerts: those naming it, plus those of a room while one of its subjects was in
        it (``rooms``: the case's stays as (room, start, end or None)), in time order."""
        cond = [ALERTS.c.case_id == case_id]
        for room, start, end in rooms:
            parts = [
                ALERTS.c.room_id == room,
                or_(ALERTS.c.end_us.is_(None), ALERTS.c.end_us >= to_us(start)),
            ]
            if end is not None:
                parts.append(ALERTS.c.start_us <= to_us(end))
            cond.append(and_(*parts))
        stmt = self._select().where(or_(*cond)).order_by(ALERTS.c.start_us, ALERTS.c.id)
        with mapped_transaction(self._sessions, "alerts of case") as s:
            rows = s.execute(stmt).mappings().all()
        return [_record(r, bool(r["has_snapshot"])) for r in rows]


def readings_since(engine: Engine, since: datetime) -> list[StoredEvent | StoredObservation]:
    """Every procedure event and location observation at or after ``since``, in time order
    (events before observations at one instant): what a restarted risk engine replays."""
    sessions = session_factory(engine)
    since_us = to_us(since)
    with mapped_transaction(sessions, "readings since") as s:
        ev_rows = (
            s.execute(
                select(EVENTS).where(EVENTS.c.time_us >= since_us).order_by(EVENTS.c.time_us, EVENTS.c.id)
            )
            .mappings()
            .all()
        )
        officers = CaseStore._event_officers(s, [int(r["id"]) for r in ev_rows])
        ob_rows = (
            s.execute(
                select(OBSERVATIONS)
                .where(OBSERVATIONS.c.time_us >= since_us)
                .order_by(OBSERVATIONS.c.time_us, OBSERVATIONS.c.id)
            )
            .mappings()
            .all()
        )
    timed: list[tuple[int, int, StoredEvent | StoredObservation]] = []
    for r in ev_rows:
        ev = event_from_row({**r, "officer_ids": tuple(officers.get(int(r["id"]), ()))})
        timed.append((int(r["time_us"]), 0, StoredEvent(ev, r["case_id"])))
    for r in ob_rows:
        obs = StoredObservation(
            client_id=r["client_id"],
            room_id=r["room_id"],
            time=from_us(r["time_us"]),
            source=ObservationSource(r["source"]),
            subject_id=r["subject_id"],
            officer_id=r["officer_id"],
        )
        timed.append((int(r["time_us"]), 1, obs))
    timed.sort(key=lambda t: (t[0], t[1]))
    return [t[2] for t in timed]
