"""What the risk engine knows of the centre *now*: who is where, interrogations, cameras.

Pure code on plain data (no I/O, no clock): the engine feeds it events, location readings,
recorder health and picture checks, each with its own time, and the rules in
:mod:`pipeline.risk.rules` read it at a given instant.

Placement follows :mod:`indexer.trajectory`'s reading of the same inputs, simplified for a
live stream: a reading of room B moves the person from wherever they were to B; ``exit``
takes a subject out of the centre; ``taken_out`` is no evidence of presence. A reading older
than the person's last applied reading does not move them (reports arrive late; the stored
trajectory, not this state, is the record of the past).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from domain.types import CaseEvent, EventType, PictureFault, PictureObservation, RoomKind
from indexer.trajectory import ROOM_EVENTS

# Events whose room says where the subject is: the trajectory's own set.
PLACING_EVENTS = ROOM_EVENTS
# Occupancy history kept per room for "was the room occupied during this gap".
HISTORY = timedelta(hours=48)


@dataclass(frozen=True, slots=True)
class Person:
    """The facts of a subject the rules need (from the case index)."""

    subject_id: int
    case_id: int
    role: str  # suspect | witness | victim
    minor: bool = False
    serious: bool = False  # the case's 24 h limit applies
    name: str = ""


@dataclass(frozen=True, slots=True)
class RoomInfo:
    room_id: str
    kind: RoomKind
    cameras: tuple[str, ...] = ()
    name: str = ""


@dataclass
class SubjectState:
    person: Person
    room: str | None = None
    room_since: datetime | None = None
    in_centre_since: datetime | None = None  # first reading since entry (custody clock start)
    last_seen: datetime | None = None  # time of the newest applied reading
    exited: bool = False
    exited_at: datetime | None = None
    interrogation_room: str | None = None
    interrogation_since: datetime | None = None
    guardian_present: bool = False
    guardian_changed: datetime | None = None


@dataclass
class PictureState:
    at: datetime
    faults: dict[PictureFault, datetime] = field(default_factory=dict)  # fault → since
    person_count: int | None = None
    short_samples: int = 0  # consecutive samples with fewer people than expected
    short_since: datetime | None = None


class CentreState:
    """Current whereabouts and health, updated reading by reading."""

    def __init__(self, rooms: dict[str, RoomInfo]) -> None:
        self.rooms = rooms
        self.camera_room = {cam: r.room_id for r in rooms.values() for cam in r.cameras}
        self.subjects: dict[int, SubjectState] = {}
        self.officer_room: dict[int, tuple[str, datetime]] = {}
        # When the set of officers of a room last changed: the start of any "no officer" or
        # "too few officers" stretch, since the set has been what it is now since then.
        self.officers_changed: dict[str, datetime] = {}
        self.occupancy: dict[str, deque[list[datetime | None]]] = {}
        self.pictures: dict[str, PictureState] = {}
        self.cameras_down: dict[str, datetime] = {}
        self.audio_down: dict[str, datetime] = {}  # cameras whose audio is lost, video going on

    # --- queries ------------------------------------------------------------------------------

    def officers_in(self, room_id: str) -> set[int]:
        return {oid for oid, (room, _t) in self.officer_room.items() if room == room_id}

    def subjects_in(self, room_id: str) -> list[SubjectState]:
        return [s for s in self.subjects.values() if s.room == room_id and not s.exited]

    def occupied(self, room_id: str) -> bool:
        return any(True for _ in self.subjects_in(room_id))

    def occupied_during(self, room_id: str, start: datetime, end: datetime) -> bool:
        """Whether any subject was in the room at some instant of [start, end]."""
        for lo, hi in self.occupancy.get(room_id, ()):
            assert lo is not None
            if lo <= end and (hi is None or hi >= start):
                return True
        return False

    # --- inputs -------------------------------------------------------------------------------

    def subject(self, person: Person) -> SubjectState:
        st = self.subjects.get(person.subject_id)
        if st is None:
            st = self.subjects[person.subject_id] = SubjectState(person)
        else:
            st.person = person
        return st

    def apply_event(self, person: Person | None, ev: CaseEvent) -> None:
        if ev.room_id is not None and ev.room_id in self.rooms:
            for oid in ev.officer_ids:
                self.place_officer(oid, ev.room_id, ev.time)
        if person is None:
            return
        st = self.subject(person)
        if st.last_seen is not None and ev.time < st.last_seen:
            return  # late report: does not move anyone now
        if ev.type is EventType.EXIT:
            self._leave_room(st, ev.time)
            st.exited, st.exited_at, st.last_seen = True, ev.time, ev.time
            st.interrogation_room = st.interrogation_since = None
            return
        if ev.type is EventType.ENTRY and st.exited:  # back in: a new custody
            st.exited, st.in_centre_since = False, None
        if ev.type in PLACING_EVENTS and ev.room_id is not None and ev.room_id in self.rooms:
            self._move(st, ev.room_id, ev.time)
        else:
            self._seen(st, ev.time)
        if ev.type is EventType.INTERROGATION_START:
            st.interrogation_room = ev.room_id or st.room
            st.interrogation_since = ev.time
            self._guardian(st, bool(ev.payload.get("guardian_present", False)), ev.time)
        elif ev.type is EventType.INTERROGATION_END:
            st.interrogation_room = st.interrogation_since = None
        elif "guardian_present" in ev.payload:
            self._guardian(st, bool(ev.payload["guardian_present"]), ev.time)

    def apply_observation(
        self, person: Person | None, officer_id: int | None, room_id: str, time: datetime
    ) -> None:
        if room_id not in self.rooms:
            return
        if officer_id is not None:
            self.place_officer(officer_id, room_id, time)
        if person is None:
            return
        st = self.subject(person)
        if st.last_seen is not None and time < st.last_seen:
            return
        if st.exited:
            return  # readings after exit registration do not re-admit (only an entry does)
        self._move(st, room_id, time)

    def place_officer(self, officer_id: int, room_id: str, time: datetime) -> None:
        had = self.officer_room.get(officer_id)
        if had is not None and time < had[1]:
            return
        if had is None or had[0] != room_id:
            if had is not None:
                self.officers_changed[had[0]] = time
            self.officers_changed[room_id] = time
        self.officer_room[officer_id] = (room_id, time)

    def apply_picture(self, obs: PictureObservation, expected: int) -> None:
        pic = self.pictures.get(obs.camera_id)
        if pic is None:
            pic = self.pictures[obs.camera_id] = PictureState(obs.at)
        if obs.at < pic.at:
            return
        pic.at = obs.at
        pic.faults = {f: pic.faults.get(f, obs.at) for f in obs.faults}
        pic.person_count = obs.person_count
        if obs.person_count is not None and expected > 0 and obs.person_count < expected:
            pic.short_samples += 1
            pic.short_since = pic.short_since or obs.at
        elif obs.person_count is not None:
            pic.short_samples, pic.short_since = 0, None

    def camera_down(self, camera_id: str, at: datetime) -> None:
        self.cameras_down.setdefault(camera_id, at)

    def camera_up(self, camera_id: str) -> None:
        self.cameras_down.pop(camera_id, None)

    def audio_lost(self, camera_id: str, since: datetime | None) -> None:
        """The camera's audio is missing since ``since`` (None: it is back)."""
        if since is None:
            self.audio_down.pop(camera_id, None)
        else:
            self.audio_down.setdefault(camera_id, since)

    def prune(self, now: datetime) -> None:
        """Forget subjects gone long ago and occupancy older than :data:`HISTORY`."""
        horizon = now - HISTORY
        for sid in [s for s, st in self.subjects.items() if st.exited and (st.exited_at or now) < horizon]:
            del self.subjects[sid]
        for spans in self.occupancy.values():
            while spans and spans[0][1] is not None and spans[0][1] < horizon:
                spans.popleft()

    # --- internals ----------------------------------------------------------------------------

    def _seen(self, st: SubjectState, time: datetime) -> None:
        st.last_seen = time
        if st.in_centre_since is None:
            st.in_centre_since = time

    def _move(self, st: SubjectState, room_id: str, time: datetime) -> None:
        self._seen(st, time)
        if st.room == room_id:
            return
        self._leave_room(st, time)
        st.room, st.room_since = room_id, time
        if len(self.subjects_in(room_id)) == 1:  # the room was empty until now
            self.occupancy.setdefault(room_id, deque(maxlen=10_000)).append([time, None])

    def _leave_room(self, st: SubjectState, time: datetime) -> None:
        old = st.room
        st.room, st.room_since = None, None
        if old is not None and not self.subjects_in(old):
            spans = self.occupancy.get(old)
            if spans and spans[-1][1] is None:
                spans[-1][1] = time

    @staticmethod
    def _guardian(st: SubjectState, present: bool, time: datetime) -> None:
        if st.guardian_changed is None or present != st.guardian_present:
            st.guardian_present, st.guardian_changed = present, time
