"""The 在区人员 board: who is in the centre now, in which room since when, how long they have been
held against the time limit that applies to them (``[risk.time_limit]``: 12 h, 24 h for serious
cases, the roles it covers), and their active alerts.

Presence and rooms come from the index (each subject's trajectory, the record the disc uses);
the custody clock starts where the risk engine's does: the first stay after the last exit. Under
``/api/v1/live`` so that the live page's roles (supervisor, legal, admin) are the ones that see it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter

from domain.types import RoomStay, iso
from indexer.alert_store import AlertQuery, AlertRecord
from pipeline.api.deps import CaseApiDep, MaybeAlertStoreDep, SettingsDep
from pipeline.risk.rules import RULE_LABELS
from pipeline.settings import TimeLimitRule

router = APIRouter(prefix="/api/v1/live", tags=["live"])

OK, APPROACHING, EXCEEDED, NO_LIMIT = "ok", "approaching", "exceeded", "no_limit"


@dataclass(frozen=True, slots=True)
class Held:
    """A subject's time against their limit at one instant."""

    since: datetime
    held_seconds: float
    limit_hours: float | None  # None: the limit does not apply to their role
    deadline: datetime | None
    status: str  # ok | approaching | exceeded | no_limit


def custody_start(stays: list[RoomStay]) -> datetime | None:
    """When the subject's current time in the centre began: the first of the trailing stays that
    follow each other without a break (an exit ends a stay; the next entry starts a new custody).
    None unless the last stay is still open."""
    if not stays or stays[-1].end is not None:
        return None
    start = stays[-1].start
    for before, after in zip(reversed(stays[:-1]), reversed(stays[1:]), strict=True):
        if before.end is None or before.end < after.start:
            break
        start = before.start
    return start


def held(rule: TimeLimitRule, role: str, serious: bool, since: datetime, now: datetime) -> Held:
    """The rule's reading of a stay since ``since``, with the boundaries of pipeline.risk.rules:
    exceeded when strictly over the limit, approaching from ``limit - warn_before``."""
    seconds = (now - since).total_seconds()
    if not rule.enabled or role not in rule.roles:
        return Held(since, seconds, None, None, NO_LIMIT)
    hours = rule.serious_hours if serious else rule.hours
    limit = timedelta(hours=hours)
    if now - since > limit:
        status = EXCEEDED
    elif now - since >= limit - timedelta(minutes=rule.warn_before_minutes):
        status = APPROACHING
    else:
        status = OK
    return Held(since, seconds, hours, since + limit, status)


def _alert(a: AlertRecord) -> dict[str, Any]:
    zh, en = RULE_LABELS.get(a.rule, (a.rule, a.rule))
    return {
        "id": a.id,
        "rule": a.rule,
        "label": {"zh-CN": zh, "en": en},
        "severity": a.severity,
        "state": a.state,
        "start": iso(a.start),
        "end": iso(a.end) if a.end else None,
        "room_id": a.room_id,
    }


def _concerns(a: AlertRecord, subject_id: int) -> bool:
    return a.subject_id == subject_id or subject_id in (a.details or {}).get("subject_ids", [])


@router.get("/board", summary="Who is in the centre now: room, since when, time limit, alerts")
def board(settings: SettingsDep, case_api: CaseApiDep, alerts: MaybeAlertStoreDep) -> dict[str, Any]:
    now = datetime.now(UTC)
    rule = settings.risk.time_limit
    # look back past the longest limit: someone held beyond it without a new reading is the one
    # the board most needs to show
    window = timedelta(hours=max(48.0, 2 * rule.serious_hours, 2 * rule.hours))
    present = case_api.footage.occupants(now, window)
    rooms = {r.id: r for r in settings.rooms}
    active = alerts.find(AlertQuery(state="active", limit=2000)) if alerts is not None else []
    people = []
    for room_id, occupants in present.items():
        room = rooms.get(room_id)
        for o in occupants:
            sid = int(o["subject_id"])
            case = case_api.store.get_case(int(o["case_id"]))
            since = custody_start(case_api.footage.trajectory(sid)) or datetime.fromisoformat(o["since"])
            h = held(rule, o["role"], case.serious, since, now)
            people.append(
                {
                    "subject_id": sid,
                    "name": o["name"],
                    "role": o["role"],
                    "case_id": case.id,
                    "case_number": case.case_number,
                    "serious": case.serious,
                    "room_id": room_id,
                    "room_name": room.name if room is not None else room_id,
                    "room_kind": room.kind.value if room is not None else None,
                    "room_since": iso(datetime.fromisoformat(o["since"])),
                    "in_centre_since": iso(h.since),
                    "held_seconds": round(h.held_seconds, 1),
                    "limit_hours": h.limit_hours,
                    "deadline": iso(h.deadline) if h.deadline is not None else None,
                    "remaining_seconds": (
                        round((h.deadline - now).total_seconds(), 1) if h.deadline is not None else None
                    ),
                    "status": h.status,
                    "alerts": [_alert(a) for a in active if _concerns(a, sid)],
                }
            )
    # the nearest deadline first; those without a limit after, longest held first
    people.sort(
        key=lambda p: (p["remaining_seconds"] is None, p["remaining_seconds"] or 0, -p["held_seconds"])
    )
    return {
        "now": iso(now),
        "limits": {
            "hours": rule.hours,
            "serious_hours": rule.serious_hours,
            "warn_before_minutes": rule.warn_before_minutes,
            "roles": list(rule.roles),
            "enabled": rule.enabled,
        },
        "people": people,
    }
