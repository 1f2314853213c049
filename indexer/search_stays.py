"""Search by where people were: the cases whose subjects stayed in a room during a time range.

A stay is not stored: it is made from readings (location observations and room events) by
:mod:`indexer.trajectory`. "Who was in 候问室 between 01:13 and 01:14:30" must find the suspect
who entered at 01:00 and had no reading inside the window — silence is not evidence of leaving —
so an event filter alone (a reading *in* the window) misses them.

* Without a start, a stay in the room overlapping ``(-inf, end)`` is a reading in the room before
  ``end`` (the stay it opens or extends starts there): one semi-join, no trajectory needed.
* With a start, the subjects with a reading in the room in ``[start - STAY_LOOKBACK, end)`` are the
  candidates; their readings in the same span give their stays, and those in the room overlapping
  ``[start, end)`` count. A stay that began more than :data:`STAY_LOOKBACK` before the window is
  not found: no one is held in a case-handling centre room that long (the custody limit is 24 h),
  and a stay left open longer is a missing exit, which the risk engine reports.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, select, union
from sqlalchemy.orm import Session

from domain.types import CaseEvent, EventType, ObservationSource
from indexer.models import Base, from_us, to_us
from indexer.read_batch import raw_rows
from indexer.trajectory import ROOM_EVENTS, Observation, trajectory

log = logging.getLogger(__name__)

T = Base.metadata.tables
SUBJECTS, EVENTS, OBSERVATIONS, ROOMS = (
    T["subjects"],
    T["procedure_events"],
    T["location_observations"],
    T["rooms"],
)

STAY_LOOKBACK = timedelta(hours=48)  # twice the longest custody: see the module docstring
MAX_CANDIDATES = 5000  # subjects whose trajectories one search builds (more: the oldest are dropped)

_PRESENCE = sorted(t.value for t in ROOM_EVENTS)  # event types that place a subject in their room
_READING_TYPES = [*_PRESENCE, EventType.EXIT.value]


def _in_room(room_ids: Sequence[str], lo: int | None, hi: int | None) -> Select[Any]:
    """Subject ids with a reading in one of the rooms in [lo, hi) (None: unbounded)."""
    obs = select(OBSERVATIONS.c.subject_id).where(
        OBSERVATIONS.c.room_id.in_(room_ids), OBSERVATIONS.c.subject_id.is_not(None)
    )
    events = select(EVENTS.c.subject_id).where(
        EVENTS.c.room_id.in_(room_ids), EVENTS.c.type.in_(_PRESENCE), EVENTS.c.subject_id.is_not(None)
    )
    if lo is not None:
        obs = obs.where(OBSERVATIONS.c.time_us >= lo)
        events = events.where(EVENTS.c.time_us >= lo)
    if hi is not None:
        obs = obs.where(OBSERVATIONS.c.time_us < hi)
        events = events.where(EVENTS.c.time_us < hi)
    return select(union(obs, events).subquery().c[0])


def stay_case_ids_before(room_ids: Sequence[str], end: datetime | None) -> Select[tuple[int]]:
    """Case ids of the subjects with a stay in the rooms before ``end`` (no start: no trajectory)."""
    hi = to_us(end) if end is not None else None
    return select(SUBJECTS.c.case_id).where(SUBJECTS.c.id.in_(_in_room(room_ids, None, hi)))


def stay_case_ids(s: Session, room_ids: Sequence[str], start: datetime, end: datetime | None) -> list[int]:
    """Case ids of the subjects with a stay in the rooms overlapping [start, end) (end None: open)."""
    lo = to_us(start - STAY_LOOKBACK)
    hi = to_us(end) if end is not None else None
    candidates = sorted({int(r[0]) for r in raw_rows(s, _in_room(room_ids, lo, hi))})
    if len(candidates) > MAX_CANDIDATES:
        log.warning(
            "stay search in %s: %d subjects, newest %d kept", room_ids, len(candidates), MAX_CANDIDATES
        )
        candidates = candidates[-MAX_CANDIDATES:]
    found: set[int] = set()
    for chunk in _chunks(candidates, 500):
        observations: dict[int, list[Observation]] = {sid: [] for sid in chunk}
        events: dict[int, list[CaseEvent]] = {sid: [] for sid in chunk}
        obs_q = select(
            OBSERVATIONS.c.subject_id, OBSERVATIONS.c.time_us, OBSERVATIONS.c.room_id, OBSERVATIONS.c.source
        ).where(OBSERVATIONS.c.subject_id.in_(chunk), OBSERVATIONS.c.time_us >= lo)
        ev_q = select(EVENTS.c.subject_id, EVENTS.c.time_us, EVENTS.c.room_id, EVENTS.c.type).where(
            EVENTS.c.subject_id.in_(chunk), EVENTS.c.time_us >= lo, EVENTS.c.type.in_(_READING_TYPES)
        )
        if hi is not None:
            obs_q = obs_q.where(OBSERVATIONS.c.time_us < hi)
            ev_q = ev_q.where(EVENTS.c.time_us < hi)
        for sid, t, room, source in raw_rows(s, obs_q):
            observations[int(sid)].append(Observation(from_us(t), room, ObservationSource(source)))
        for sid, t, room, etype in raw_rows(s, ev_q):
            events[int(sid)].append(CaseEvent("", EventType(etype), from_us(t), room, int(sid)))
        for sid in chunk:
            for stay in trajectory(sid, observations[sid], events[sid], {}):
                if (
                    stay.room_id in room_ids
                    and (end is None or stay.start < end)
                    and (stay.end is None or stay.end > start)
                ):
                    found.add(sid)
                    break
    if not found:
        return []
    rows = raw_rows(s, select(SUBJECTS.c.case_id).where(SUBJECTS.c.id.in_(sorted(found))))
    return sorted({int(r[0]) for r in rows})


def room_ids_named(s: Session, room: str) -> list[str]:
    """The ids of the room given by id or by name (the search form offers names: 讯问室1)."""
    rows = raw_rows(s, select(ROOMS.c.id).where((ROOMS.c.id == room) | (ROOMS.c.name == room)))
    ids = sorted({str(r[0]) for r in rows})
    return [room] if room in ids else ids


def _chunks(items: Sequence[int], size: int) -> list[Sequence[int]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
