"""Trajectory edge cases on plain data: no database, no clock."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from domain.types import UTC, CaseEvent, EventType, ObservationSource, RoomKind
from indexer.trajectory import Observation, clip_stay, trajectory

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
KINDS = {
    "entry": RoomKind.ENTRY,
    "search": RoomKind.SEARCH,
    "wait": RoomKind.WAITING,
    "int-1": RoomKind.INTERROGATION,
}


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def obs(minutes: float, room: str, source: ObservationSource = ObservationSource.WRISTBAND) -> Observation:
    return Observation(at(minutes), room, source)


def ev(minutes: float, type_: EventType, room: str | None = None) -> CaseEvent:
    return CaseEvent(
        event_id=f"e{minutes}{type_.value}", type=type_, time=at(minutes), room_id=room, subject_id=1
    )


def spans(stays: list) -> list[tuple[str, float, float | None]]:  # type: ignore[type-arg]
    def m(dt: datetime | None) -> float | None:
        return None if dt is None else (dt - T0).total_seconds() / 60

    return [(s.room_id, m(s.start), m(s.end)) for s in stays]


def test_simple_walk_through_rooms_closes_each_at_the_next() -> None:
    stays = trajectory(
        1,
        [obs(0, "entry"), obs(10, "search"), obs(20, "wait")],
        [ev(60, EventType.EXIT)],
        KINDS,
    )
    assert spans(stays) == [("entry", 0, 10), ("search", 10, 20), ("wait", 20, 60)]
    assert stays[0].room_kind is RoomKind.ENTRY
    assert stays[-1].closed_by == "event:exit"
    assert stays[0].closed_by == "next_room:search"
    assert stays[0].opened_by == "observation:wristband"


def test_duplicates_and_repeated_readings_collapse_into_one_stay() -> None:
    stays = trajectory(
        1,
        [obs(0, "wait"), obs(0, "wait"), obs(5, "wait", ObservationSource.FACE), obs(9, "wait")],
        [ev(0, EventType.WAITING, "wait")],
        KINDS,
    )
    assert spans(stays) == [("wait", 0, None)]


def test_seen_in_b_while_in_a_closes_a_at_that_time() -> None:
    # The door reader missed the subject leaving "search"; seeing them in "wait" closes it.
    stays = trajectory(1, [obs(0, "search"), obs(3, "search"), obs(7, "wait")], [], KINDS)
    assert spans(stays) == [("search", 0, 7), ("wait", 7, None)]


def test_missing_later_readings_keep_the_stay_open_until_next_room() -> None:
    stays = trajectory(1, [obs(0, "wait"), obs(240, "int-1")], [], KINDS)
    assert spans(stays) == [("wait", 0, 240), ("int-1", 240, None)]
    assert stays[-1].end is None


def test_exit_closes_last_stay_and_stray_exit_is_ignored() -> None:
    stays = trajectory(1, [obs(5, "entry")], [ev(0, EventType.EXIT), ev(30, EventType.EXIT)], KINDS)
    assert spans(stays) == [("entry", 5, 30)]


def test_arrival_order_does_not_matter() -> None:
    observations = [obs(0, "entry"), obs(10, "search"), obs(12, "search"), obs(20, "wait")]
    events = [
        ev(1, EventType.ENTRY, "entry"),
        ev(30, EventType.INTERROGATION_START, "int-1"),
        ev(90, EventType.EXIT),
    ]
    expected = spans(trajectory(1, observations, events, KINDS))
    rng = random.Random(7)
    for _ in range(20):
        o, e = observations[:], events[:]
        rng.shuffle(o)
        rng.shuffle(e)
        assert spans(trajectory(1, o, e, KINDS)) == expected
    assert expected == [("entry", 0, 10), ("search", 10, 20), ("wait", 20, 30), ("int-1", 30, 90)]


def test_events_imply_rooms_and_roomless_or_taken_out_events_do_not() -> None:
    stays = trajectory(
        1,
        [],
        [
            ev(0, EventType.ENTRY, "entry"),
            ev(5, EventType.OTHER, "search"),  # "other" says nothing about presence
            ev(10, EventType.SEARCH, "search"),
            ev(20, EventType.TAKEN_OUT, "wait"),  # the room being left, not entered
            ev(25, EventType.INTERROGATION_START, "int-1"),
            ev(26, EventType.TRANSCRIPT_SIGNED),  # no room: no reading
        ],
        KINDS,
    )
    assert spans(stays) == [("entry", 0, 10), ("search", 10, 25), ("int-1", 25, None)]
    assert stays[2].opened_by == "event:interrogation_start"


def test_simultaneous_conflicting_readings_trust_manual_over_wristband() -> None:
    stays = trajectory(
        1,
        [obs(0, "wait", ObservationSource.MANUAL), obs(0, "search", ObservationSource.WRISTBAND)],
        [],
        KINDS,
    )
    assert spans(stays) == [("wait", 0, None)]


def test_reentry_after_exit_opens_a_new_stay_and_unknown_room_is_other() -> None:
    stays = trajectory(1, [obs(0, "wait"), obs(40, "ghost")], [ev(30, EventType.EXIT)], KINDS)
    assert spans(stays) == [("wait", 0, 30), ("ghost", 40, None)]
    assert stays[1].room_kind is RoomKind.OTHER


def test_flicker_between_rooms_produces_each_stay() -> None:
    stays = trajectory(1, [obs(0, "wait"), obs(1, "search"), obs(2, "wait")], [], KINDS)
    assert spans(stays) == [("wait", 0, 1), ("search", 1, 2), ("wait", 2, None)]


def test_no_readings_no_stays() -> None:
    assert trajectory(1, [], [ev(3, EventType.EXIT)], KINDS) == []


def test_clip_stay_open_stay_lasts_until_now() -> None:
    stays = trajectory(1, [obs(0, "wait")], [], KINDS)
    assert clip_stay(stays[0], at(-10), at(100), now=at(30)) == (at(0), at(30))
    assert clip_stay(stays[0], at(40), at(100), now=at(30)) is None
