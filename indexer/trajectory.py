"""A subject's trajectory: which room, from when to when. Pure code on plain data (no I/O).

Inputs are *readings* — "this subject was in room R at time t" — from two sources:

* location observations (wristband reader, face recognition at a door, manual entry);
* procedure events that happen in a room (entry registration, search, property, information
  collection, waiting, interrogation start/end, ...) carrying a ``room_id``;

plus ``exit`` events, which close the current stay without opening another.

Rules (the centre's readers are noisy and reports arrive late and out of order):

* readings are sorted by time first, so arrival order never matters;
* duplicate readings (same room, same or later time) collapse into the stay they extend;
* a reading of room B while "in" room A closes A at that instant and opens B — a missed
  door reading must not leave the subject in two rooms at once;
* a stay whose later readings are missing stays open until the next different room or exit:
  silence is not evidence of leaving;
* ``exit`` closes the last stay; the last stay without exit has ``end=None`` (still inside).

Readings at the same instant are ordered by how much they are trusted, and the most trusted
is applied last so it wins: wristband < face < procedure event < manual correction < exit.
Zero-length stays this produces (A and B at the same instant) are dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from domain.types import CaseEvent, EventType, ObservationSource, RoomKind, RoomStay, utc

log = logging.getLogger(__name__)

# Event types whose room_id says where the subject *is* at the event's time. TAKEN_OUT is
# left out on purpose: its room is the holding room being left, so it is no evidence of
# presence; the next reading (interrogation start, a door reading) places the subject.
ROOM_EVENTS: frozenset[EventType] = frozenset(
    {
        EventType.ARREST,
        EventType.ENTRY,
        EventType.SEARCH,
        EventType.PROPERTY,
        EventType.INFO_COLLECTION,
        EventType.WAITING,
        EventType.RETURNED,
        EventType.INTERROGATION_START,
        EventType.INTERROGATION_END,
        EventType.TRANSCRIPT_SIGNED,
    }
)

_PRIORITY = {
    ObservationSource.WRISTBAND.value: 0,
    ObservationSource.FACE.value: 1,
    "event": 2,
    ObservationSource.MANUAL.value: 3,
    "exit": 4,
}


@dataclass(frozen=True, slots=True)
class Observation:
    """A location observation as plain data (the index's ``location_observations`` row)."""

    time: datetime
    room_id: str
    source: ObservationSource
    client_id: str = ""


@dataclass(frozen=True, slots=True)
class Reading:
    """One piece of evidence of where the subject was (``room_id`` None for an exit)."""

    time: datetime
    room_id: str | None
    origin: str  # "observation:face", "event:entry", "event:exit", ...
    rank: int

    @property
    def is_exit(self) -> bool:
        return self.room_id is None


def readings_from_observations(observations: Iterable[Observation]) -> list[Reading]:
    return [
        Reading(utc(o.time), o.room_id, f"observation:{o.source.value}", _PRIORITY[o.source.value])
        for o in observations
    ]


def readings_from_events(events: Iterable[CaseEvent]) -> list[Reading]:
    """Readings implied by procedure events; events without a room (other than exit) say nothing."""
    out: list[Reading] = []
    for ev in events:
        if ev.type is EventType.EXIT:
            out.append(Reading(utc(ev.time), None, "event:exit", _PRIORITY["exit"]))
        elif ev.type in ROOM_EVENTS and ev.room_id:
            out.append(Reading(utc(ev.time), ev.room_id, f"event:{ev.type.value}", _PRIORITY["event"]))
    return out


def build_trajectory(
    subject_id: int,
    readings: Iterable[Reading],
    room_kinds: Mapping[str, RoomKind],
) -> list[RoomStay]:
    """The subject's stays, oldest first, from readings in any order.

    ``room_kinds`` maps room id to kind; a room missing from it (deleted from the config
    after the fact) is reported as ``RoomKind.OTHER`` rather than dropped, because the
    subject's presence there is still a fact.
    """
    ordered = sorted(readings, key=lambda r: (r.time, r.rank, r.room_id or ""))
    stays: list[RoomStay] = []
    current: RoomStay | None = None

    def close(stay: RoomStay, at: datetime, why: str) -> None:
        # A zero-length stay only arises from simultaneous conflicting readings; the later
        # (more trusted) one wins and the empty one is not a place the subject ever was.
        if at > stay.start:
            stays.append(replace(stay, end=at, closed_by=why))

    for r in ordered:
        if r.is_exit:
            if current is not None:
                close(current, r.time, r.origin)
                current = None
            continue
        assert r.room_id is not None
        if current is not None and current.room_id == r.room_id:
            continue  # a repeated reading extends the open stay; nothing to record
        if current is not None:
            close(current, r.time, f"next_room:{r.room_id}")
        current = RoomStay(
            subject_id=subject_id,
            room_id=r.room_id,
            room_kind=room_kinds.get(r.room_id, RoomKind.OTHER),
            start=r.time,
            end=None,
            opened_by=r.origin,
        )
    if current is not None:
        stays.append(current)
    log.debug("trajectory of subject %s: %d stays from readings", subject_id, len(stays))
    return stays


def trajectory(
    subject_id: int,
    observations: Iterable[Observation],
    events: Iterable[CaseEvent],
    room_kinds: Mapping[str, RoomKind],
) -> list[RoomStay]:
    """Convenience: observations and events of one subject → stays."""
    readings = readings_from_observations(observations) + readings_from_events(events)
    return build_trajectory(subject_id, readings, room_kinds)


def clip_stay(
    stay: RoomStay, start: datetime, end: datetime, now: datetime
) -> tuple[datetime, datetime] | None:
    """The part of ``stay`` inside [start, end); an open stay is taken to last until ``now``."""
    stay_end = stay.end if stay.end is not None else max(now, stay.start)
    lo = max(stay.start, start)
    hi = min(stay_end, end)
    return (lo, hi) if lo < hi else None
