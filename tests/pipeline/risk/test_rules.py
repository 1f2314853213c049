"""The risk rules on scripted streams (pure: state + rules, no database, no clock).

For every rule: it fires when it should, at its documented boundary, and not otherwise.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from domain.types import CaseEvent, EventType, GapCause, GapRecord, PictureFault, PictureObservation, RoomKind
from pipeline.risk.rules import Condition, evaluate, expected_people, gap_condition
from pipeline.risk.state import CentreState, Person, RoomInfo
from pipeline.settings import RiskConfig

T0 = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
ROOMS = {
    "entry": RoomInfo("entry", RoomKind.ENTRY, ("entry-a",)),
    "wait": RoomInfo("wait", RoomKind.WAITING, ("wait-a",)),
    "int-1": RoomInfo("int-1", RoomKind.INTERROGATION, ("int-1-a", "int-1-b")),
}
ALICE = Person(1, 10, "suspect", name="Alice")
BOB = Person(2, 10, "suspect", name="Bob")
CAROL = Person(3, 11, "suspect", name="Carol")  # another case
MINOR = Person(4, 12, "suspect", minor=True, name="Dan")
WITNESS = Person(5, 10, "witness", name="Eve")
SERIOUS = Person(6, 13, "suspect", serious=True, name="Finn")


def s(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def ev(
    type_: EventType,
    t: datetime,
    room: str | None,
    who: Person | None,
    officers: tuple[int, ...] = (),
    **payload: Any,
) -> CaseEvent:
    return CaseEvent(
        f"e{t.timestamp()}{type_.value}", type_, t, room, who.subject_id if who else None, officers, payload
    )


def cfg(**rules: Any) -> RiskConfig:
    return RiskConfig(**rules)


def rules_at(state: CentreState, config: RiskConfig, t: datetime) -> dict[str, Condition]:
    return {c.key: c for c in evaluate(state, config, t)}


def fired(state: CentreState, config: RiskConfig, t: datetime, rule: str) -> list[Condition]:
    return [c for c in evaluate(state, config, t) if c.rule == rule]


def enter(state: CentreState, who: Person, room: str, t: datetime, officers: tuple[int, ...] = ()) -> None:
    state.apply_event(who, ev(EventType.ENTRY, t, room, who, officers))


# --- unattended (无人看管) ------------------------------------------------------------------------


def test_unattended_fires_after_more_than_n_seconds_without_officer() -> None:
    st = CentreState(ROOMS)
    c = cfg(unattended={"seconds": 60})
    enter(st, ALICE, "wait", s(0))
    assert fired(st, c, s(59), "unattended") == []
    assert fired(st, c, s(60), "unattended") == []  # exactly N: not "more than N"
    [cond] = fired(st, c, s(60.001), "unattended")
    assert (cond.subject_id, cond.room_id, cond.case_id, cond.start) == (1, "wait", 10, s(0))


def test_unattended_counts_from_the_last_officer_leaving() -> None:
    st = CentreState(ROOMS)
    c = cfg(unattended={"seconds": 60})
    enter(st, ALICE, "wait", s(0), officers=(7,))
    assert fired(st, c, s(500), "unattended") == []  # officer 7 with her
    st.apply_observation(None, 7, "int-1", s(600))  # officer goes elsewhere
    assert fired(st, c, s(660), "unattended") == []
    [cond] = fired(st, c, s(661), "unattended")
    assert cond.start == s(600)
    st.apply_observation(None, 8, "wait", s(700))  # another officer comes in: condition over
    assert fired(st, c, s(900), "unattended") == []


def test_unattended_respects_rooms_roles_and_enabled() -> None:
    st = CentreState(ROOMS)
    enter(st, WITNESS, "wait", s(0))
    assert fired(st, cfg(unattended={"seconds": 10}), s(100), "unattended") == []  # witnesses not watched
    enter(st, ALICE, "wait", s(0))
    assert fired(st, cfg(unattended={"seconds": 10, "rooms": ["int-1"]}), s(100), "unattended") == []
    assert fired(st, cfg(unattended={"seconds": 10, "enabled": False}), s(100), "unattended") == []
    assert len(fired(st, cfg(unattended={"seconds": 10, "rooms": ["wait"]}), s(100), "unattended")) == 1


# --- co-suspects (同案犯同室) ----------------------------------------------------------------------


def test_co_suspects_of_one_case_in_one_room_fire_at_once() -> None:
    st = CentreState(ROOMS)
    c = cfg()
    enter(st, ALICE, "wait", s(0), officers=(7,))
    enter(st, CAROL, "wait", s(5), officers=(7,))  # another case: allowed
    enter(st, WITNESS, "wait", s(6), officers=(7,))  # same case but a witness
    assert fired(st, c, s(10), "co_suspects") == []
    enter(st, BOB, "wait", s(20), officers=(7,))
    [cond] = fired(st, c, s(20), "co_suspects")  # seconds=0: at the very instant
    assert (cond.case_id, cond.room_id, cond.start, cond.details["subject_ids"]) == (
        10,
        "wait",
        s(20),
        [1, 2],
    )
    st.apply_observation(BOB, None, "entry", s(30))  # separated
    assert fired(st, c, s(30), "co_suspects") == []


def test_co_suspects_grace_boundary() -> None:
    st = CentreState(ROOMS)
    c = cfg(co_suspects={"seconds": 30})
    enter(st, ALICE, "wait", s(0))
    enter(st, BOB, "wait", s(10))
    assert fired(st, c, s(39.999), "co_suspects") == []
    assert len(fired(st, c, s(40), "co_suspects")) == 1  # together 30 s: fires (at least)


# --- time limits (12 h / 24 h) ---------------------------------------------------------------------


def test_time_limit_approaching_then_exceeded_at_12_hours() -> None:
    st = CentreState(ROOMS)
    c = cfg(time_limit={"hours": 12, "warn_before_minutes": 60}, stay={"enabled": False})
    enter(st, ALICE, "entry", s(0), officers=(7, 8))
    h = 3600.0
    assert rules_at(st, c, s(11 * h - 0.001)) == {}
    assert set(rules_at(st, c, s(11 * h))) == {"time_limit_approaching:1"}
    assert set(rules_at(st, c, s(12 * h))) == {"time_limit_approaching:1"}  # the limit itself is allowed
    conds = rules_at(st, c, s(12 * h + 0.001))
    assert set(conds) == {"time_limit_exceeded:1"}
    assert conds["time_limit_exceeded:1"].start == s(12 * h)
    st.apply_event(ALICE, ev(EventType.EXIT, s(12 * h + 10), None, ALICE))
    assert rules_at(st, c, s(13 * h)) == {}


def test_serious_case_has_24_hours_and_witnesses_are_not_timed() -> None:
    st = CentreState(ROOMS)
    c = cfg(time_limit={"hours": 12, "serious_hours": 24, "warn_before_minutes": 0}, stay={"hours": 100})
    enter(st, SERIOUS, "entry", s(0), officers=(7,))
    enter(st, WITNESS, "entry", s(0), officers=(7,))
    assert fired(st, c, s(13 * 3600), "time_limit_exceeded") == []
    assert [x.subject_id for x in fired(st, c, s(24 * 3600 + 1), "time_limit_exceeded")] == [6]


# --- officers during an interrogation, minors ---------------------------------------------------


def test_fewer_than_two_officers_during_interrogation() -> None:
    st = CentreState(ROOMS)
    c = cfg(officers={"min_officers": 2, "seconds": 30})
    enter(st, ALICE, "wait", s(0), officers=(7,))
    st.apply_event(ALICE, ev(EventType.INTERROGATION_START, s(100), "int-1", ALICE, (7,)))
    assert fired(st, c, s(129), "officers_short") == []
    [cond] = fired(st, c, s(130), "officers_short")  # short for 30 s: fires
    assert (cond.room_id, cond.start, cond.details["officer_ids"]) == ("int-1", s(100), [7])
    st.apply_observation(None, 8, "int-1", s(140))
    assert fired(st, c, s(200), "officers_short") == []  # two now
    st.apply_event(ALICE, ev(EventType.INTERROGATION_END, s(300), "int-1", ALICE))
    st.apply_observation(None, 8, "wait", s(301))
    assert fired(st, c, s(1000), "officers_short") == []  # not interrogating any more


def test_two_officers_from_the_start_event_is_no_alert() -> None:
    st = CentreState(ROOMS)
    enter(st, ALICE, "wait", s(0), officers=(7,))
    st.apply_event(ALICE, ev(EventType.INTERROGATION_START, s(10), "int-1", ALICE, (7, 8)))
    assert fired(st, cfg(officers={"seconds": 0}), s(50), "officers_short") == []


def test_minor_without_guardian_and_with_one() -> None:
    st = CentreState(ROOMS)
    c = cfg()
    enter(st, MINOR, "wait", s(0), officers=(7,))
    st.apply_event(MINOR, ev(EventType.INTERROGATION_START, s(10), "int-1", MINOR, (7, 8)))
    [cond] = fired(st, c, s(10), "minor_without_guardian")
    assert cond.start == s(10)
    st.apply_event(MINOR, ev(EventType.OTHER, s(20), "int-1", MINOR, guardian_present=True))
    assert fired(st, c, s(30), "minor_without_guardian") == []
    st.apply_event(MINOR, ev(EventType.OTHER, s(40), "int-1", MINOR, guardian_present=False))
    assert [x.start for x in fired(st, c, s(40), "minor_without_guardian")] == [s(40)]


def test_minor_with_guardian_at_start_and_adults_never_fire() -> None:
    st = CentreState(ROOMS)
    enter(st, MINOR, "wait", s(0), officers=(7,))
    enter(st, ALICE, "wait", s(0), officers=(7,))
    st.apply_event(
        MINOR, ev(EventType.INTERROGATION_START, s(10), "int-1", MINOR, (7, 8), guardian_present=True)
    )
    st.apply_event(ALICE, ev(EventType.INTERROGATION_START, s(10), "int-1", ALICE, (7, 8)))
    assert fired(st, cfg(), s(100), "minor_without_guardian") == []


# --- recording lost, picture faults --------------------------------------------------------------


def gap(camera: str, a: float, b: float) -> GapRecord:
    return GapRecord(camera, s(a), s(b), GapCause.DISCONNECT)


def test_gap_while_occupied_fires_and_not_when_empty() -> None:
    st = CentreState(ROOMS)
    c = cfg(recording={"min_gap_seconds": 2})
    enter(st, ALICE, "int-1", s(100), officers=(7, 8))
    st.apply_observation(ALICE, None, "wait", s(200))
    assert gap_condition(st, c, gap("int-1-a", 0, 99)) is None  # before she came
    assert gap_condition(st, c, gap("int-1-a", 201, 300)) is None  # after she left
    assert gap_condition(st, c, gap("int-1-a", 150, 151)) is None  # 1 s: shorter than the minimum
    assert gap_condition(st, c, gap("int-1-a", 150, 152)) is None  # exactly the minimum: ignored
    cond = gap_condition(st, c, gap("int-1-a", 150, 152.5))
    assert cond is not None and (cond.key, cond.start, cond.end) == (
        "recording_lost:int-1-a",
        s(150),
        s(152.5),
    )
    assert gap_condition(st, c, gap("int-1-a", 50, 100)) is not None  # touches her arrival


def test_camera_lost_while_occupied_holds_until_back() -> None:
    st = CentreState(ROOMS)
    c = cfg()
    st.camera_down("wait-a", s(0))
    assert fired(st, c, s(1), "recording_lost") == []  # empty room
    enter(st, ALICE, "wait", s(5), officers=(7,))
    [cond] = fired(st, c, s(6), "recording_lost")
    assert (cond.camera_id, cond.subject_id, cond.start) == ("wait-a", 1, s(0))
    st.camera_up("wait-a")
    assert fired(st, c, s(7), "recording_lost") == []


def test_audio_lost_while_occupied_is_a_recording_alert_of_its_own_until_the_sound_is_back() -> None:
    st = CentreState(ROOMS)
    c = cfg()
    st.audio_lost("int-1-a", s(0))
    assert fired(st, c, s(1), "recording_lost") == []  # empty room
    enter(st, ALICE, "int-1", s(5), officers=(7, 8))
    [cond] = fired(st, c, s(6), "recording_lost")
    assert (cond.key, cond.camera_id, cond.start) == ("recording_lost:int-1-a:audio", "int-1-a", s(0))
    assert "audio lost" in cond.message
    st.camera_down("int-1-a", s(7))  # the whole camera is lost: one alert says so, not two
    assert [x.key for x in fired(st, c, s(8), "recording_lost")] == ["recording_lost:int-1-a"]
    st.camera_up("int-1-a")
    st.audio_lost("int-1-a", None)
    assert fired(st, c, s(9), "recording_lost") == []
    closed = gap_condition(st, c, GapRecord("int-1-a", s(5.5), s(8), GapCause.AUDIO_LOST, "no audio"))
    assert closed is not None and closed.key == "recording_lost:int-1-a:audio"


def pic(camera: str, t: float, *faults: PictureFault, people: int | None = None) -> PictureObservation:
    return PictureObservation(camera, s(t), frozenset(faults), people, b"\xff\xd8")


def test_black_frozen_covered_fire_only_while_the_room_is_occupied() -> None:
    st = CentreState(ROOMS)
    c = cfg()
    for fault in (PictureFault.BLACK, PictureFault.FROZEN, PictureFault.COVERED):
        st.apply_picture(pic("int-1-a", 0, fault), 0)
        assert fired(st, c, s(1), f"picture_{fault.value}") == []
    enter(st, ALICE, "int-1", s(10), officers=(7, 8))
    st.apply_picture(
        pic("int-1-a", 11, PictureFault.BLACK, PictureFault.COVERED), expected_people(st, "int-1-a")
    )
    got = {x.rule: x for x in evaluate(st, c, s(11)) if x.camera_id == "int-1-a"}
    assert set(got) == {"picture_black", "picture_covered"}
    assert got["picture_black"].subject_id == 1 and got["picture_black"].start == s(11)
    st.apply_picture(pic("int-1-a", 12), 3)
    assert [x for x in evaluate(st, c, s(12)) if x.camera_id == "int-1-a"] == []


def test_moved_and_defocused_fire_regardless_with_low_severity() -> None:
    st = CentreState(ROOMS)
    st.apply_picture(pic("wait-a", 0, PictureFault.MOVED, PictureFault.DEFOCUSED), 0)
    got = {x.rule: x.severity for x in evaluate(st, cfg(), s(1))}
    assert got == {"camera_moved": "low", "camera_defocused": "low"}
    assert evaluate(st, cfg(camera_view={"enabled": False}), s(1)) == []


def test_headcount_needs_people_present_and_consecutive_samples() -> None:
    st = CentreState(ROOMS)
    c = cfg(headcount={"enabled": True, "samples": 3})
    for i in range(5):  # the simulator's test pattern: nobody on it, nobody in the room
        st.apply_picture(pic("wait-a", i, people=0), expected_people(st, "wait-a"))
    assert fired(st, c, s(5), "headcount") == []
    enter(st, ALICE, "wait", s(10), officers=(7,))
    assert expected_people(st, "wait-a") == 2
    for i in range(2):
        st.apply_picture(pic("wait-a", 11 + i, people=1), expected_people(st, "wait-a"))
    assert fired(st, c, s(13), "headcount") == []
    st.apply_picture(pic("wait-a", 13, people=1), expected_people(st, "wait-a"))
    assert len(fired(st, c, s(13), "headcount")) == 1
    st.apply_picture(pic("wait-a", 14, people=2), expected_people(st, "wait-a"))
    assert fired(st, c, s(14), "headcount") == []
    assert fired(st, cfg(), s(14), "headcount") == []  # off by default


# --- stay limit and missing exit -------------------------------------------------------------------


def test_stay_beyond_limit_and_missing_without_exit() -> None:
    st = CentreState(ROOMS)
    c = cfg(stay={"hours": 2, "silent_minutes": 30}, time_limit={"enabled": False})
    enter(st, WITNESS, "entry", s(0), officers=(7,))
    st.apply_observation(WITNESS, None, "wait", s(1000))
    assert fired(st, c, s(1000 + 1800), "missing_exit") == []  # exactly 30 min silent
    [miss] = fired(st, c, s(1000 + 1800.001), "missing_exit")
    assert miss.start == s(1000)
    st.apply_observation(WITNESS, None, "wait", s(7000))
    assert fired(st, c, s(7200), "stay_exceeded") == []  # exactly 2 h
    [stay] = fired(st, c, s(7200.5), "stay_exceeded")
    assert stay.start == s(7200) and fired(st, c, s(7200.5), "missing_exit") == []
    st.apply_event(WITNESS, ev(EventType.EXIT, s(7300), None, WITNESS))
    assert evaluate(st, c, s(99999)) == []
    st.apply_observation(WITNESS, None, "wait", s(7400))  # a stray reading after exit re-admits no one
    assert evaluate(st, c, s(99999)) == []


def test_late_reading_does_not_move_anyone_and_reentry_restarts_the_clock() -> None:
    st = CentreState(ROOMS)
    c = cfg(time_limit={"hours": 1, "warn_before_minutes": 0}, stay={"enabled": False})
    enter(st, ALICE, "int-1", s(0), officers=(7, 8))
    st.apply_observation(ALICE, None, "wait", s(-50))  # arrives late, older than what we know
    assert st.subjects[1].room == "int-1"
    st.apply_event(ALICE, ev(EventType.EXIT, s(100), None, ALICE))
    enter(st, ALICE, "entry", s(3000), officers=(7,))
    assert fired(st, c, s(3000 + 3600), "time_limit_exceeded") == []
    assert len(fired(st, c, s(3000 + 3601), "time_limit_exceeded")) == 1


def test_disabled_engine_settings_and_empty_centre_raise_nothing() -> None:
    st = CentreState(ROOMS)
    for cam in ("entry-a", "wait-a", "int-1-a"):
        st.apply_picture(pic(cam, 0, people=0), expected_people(st, cam))
    assert evaluate(st, cfg(headcount={"enabled": True, "samples": 1}), s(10_000)) == []
