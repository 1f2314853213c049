"""The risk rules: from the centre's state at an instant to the conditions that hold then.

Pure functions on plain data (:class:`pipeline.risk.state.CentreState`, the ``[risk]``
settings, an instant). Each condition carries a *dedup key*: the engine keeps one open alert
per key, so a condition that holds on every tick (or again after a restart) continues the
same alert instead of raising a new one.

Boundaries (docs/design/alerts.md has the table): "more than N" rules fire when the elapsed time is
strictly greater than N (unattended, time limit exceeded, stay, missing); grace rules fire
once the condition has lasted at least their ``seconds`` (co-suspects, officers, minor; 0 =
at once); "approaching" holds from ``limit - warn_before`` up to and including the limit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from domain.types import GapRecord, PictureFault, iso
from pipeline.risk.state import CentreState, SubjectState
from pipeline.settings import RiskConfig, RiskRuleConfig

HIGH, MEDIUM, LOW = "high", "medium", "low"

# rule id → (zh-CN label, English label): shown by the web pages and the disc report.
RULE_LABELS: dict[str, tuple[str, str]] = {
    "unattended": ("无人看管", "Left unattended"),
    "co_suspects": ("同案犯同室", "Co-suspects in one room"),
    "time_limit_approaching": ("传唤时限将到", "Time limit approaching"),
    "time_limit_exceeded": ("传唤超时", "Time limit exceeded"),
    "officers_short": ("讯问民警不足两人", "Fewer than two officers"),
    "minor_without_guardian": ("未成年人无监护人在场", "Minor without guardian"),
    "recording_lost": ("录像中断", "Recording lost"),
    "picture_black": ("画面黑屏", "Picture black"),
    "picture_frozen": ("画面冻结", "Picture frozen"),
    "picture_covered": ("画面遮挡", "Picture covered"),
    "camera_moved": ("摄像机移位", "Camera moved"),
    "camera_defocused": ("画面模糊", "Camera defocused"),
    "headcount": ("画面人数不符", "Fewer people on picture than present"),
    "stay_exceeded": ("滞留超时", "In the centre beyond the limit"),
    "missing_exit": ("未登记离区", "Gone without exit registration"),
    "login_failures": ("连续登录失败", "Repeated failed logins"),  # raised by pipeline/api/auth.py
    # raised by playback, not by a rule (pipeline/api/playback.py)
    "footage_integrity": ("录像文件与哈希不符", "Footage does not match its hash"),
}
OCCUPIED_FAULTS = (PictureFault.BLACK, PictureFault.FROZEN, PictureFault.COVERED)
VIEW_FAULTS = (PictureFault.MOVED, PictureFault.DEFOCUSED)


@dataclass(frozen=True, slots=True)
class Condition:
    """A risk that holds: what, since when, who and where, and its dedup key."""

    rule: str
    key: str
    severity: str
    start: datetime
    message: str
    case_id: int | None = None
    subject_id: int | None = None
    room_id: str | None = None
    camera_id: str | None = None
    end: datetime | None = None  # set for conditions known only once over (a closed gap)
    details: dict[str, Any] = field(default_factory=dict)


def watches(rule: RiskRuleConfig, room_id: str | None) -> bool:
    return rule.enabled and (not rule.rooms or (room_id is not None and room_id in rule.rooms))


def _who(st: SubjectState) -> str:
    return st.person.name or f"subject {st.person.subject_id}"


def _elapsed(now: datetime, since: datetime) -> float:
    return (now - since).total_seconds()


def evaluate(state: CentreState, cfg: RiskConfig, now: datetime) -> list[Condition]:
    """Every condition that holds at ``now`` (time-driven and state-driven rules)."""
    out: list[Condition] = []
    present = [s for s in state.subjects.values() if not s.exited and s.in_centre_since is not None]
    out += _unattended(state, cfg, now, present)
    out += _co_suspects(state, cfg, now, present)
    out += _time_limits(cfg, now, present)
    out += _interrogations(state, cfg, now, present)
    out += _stays(cfg, now, present)
    out += _pictures(state, cfg, now)
    out += _cameras_down(state, cfg)
    return out


def _unattended(
    state: CentreState, cfg: RiskConfig, now: datetime, present: list[SubjectState]
) -> list[Condition]:
    rule = cfg.unattended
    out = []
    for st in present:
        if st.room is None or st.room_since is None or st.person.role not in rule.roles:
            continue
        if not watches(rule, st.room) or state.officers_in(st.room):
            continue
        since = max(st.room_since, state.officers_changed.get(st.room, st.room_since))
        if _elapsed(now, since) > rule.seconds:
            out.append(
                Condition(
                    "unattended",
                    f"unattended:{st.person.subject_id}:{st.room}",
                    HIGH,
                    since,
                    f"{_who(st)} alone in room {st.room} without an officer since {iso(since)}",
                    st.person.case_id,
                    st.person.subject_id,
                    st.room,
                )
            )
    return out


def _co_suspects(
    state: CentreState, cfg: RiskConfig, now: datetime, present: list[SubjectState]
) -> list[Condition]:
    rule = cfg.co_suspects
    groups: dict[tuple[int, str], list[SubjectState]] = {}
    for st in present:
        if st.room is not None and st.person.role == "suspect" and watches(rule, st.room):
            groups.setdefault((st.person.case_id, st.room), []).append(st)
    out = []
    for (case_id, room), members in sorted(groups.items()):
        if len(members) < 2:
            continue
        since = max(m.room_since or now for m in members)
        if _elapsed(now, since) >= rule.seconds:
            ids = sorted(m.person.subject_id for m in members)
            out.append(
                Condition(
                    "co_suspects",
                    f"co_suspects:{case_id}:{room}",
                    HIGH,
                    since,
                    f"co-suspects {', '.join(_who(m) for m in members)} of case {case_id} together in room {room}",
                    case_id,
                    None,
                    room,
                    details={"subject_ids": ids},
                )
            )
    return out


def _time_limits(cfg: RiskConfig, now: datetime, present: list[SubjectState]) -> list[Condition]:
    rule = cfg.time_limit
    if not rule.enabled:
        return []
    out = []
    for st in present:
        if st.person.role not in rule.roles or st.in_centre_since is None:
            continue
        hours = rule.serious_hours if st.person.serious else rule.hours
        limit = timedelta(hours=hours)
        deadline = st.in_centre_since + limit
        held = now - st.in_centre_since
        common: dict[str, Any] = {
            "case_id": st.person.case_id,
            "subject_id": st.person.subject_id,
            "room_id": st.room,
            "details": {"limit_hours": hours, "deadline": iso(deadline)},
        }
        if held > limit:
            out.append(
                Condition(
                    "time_limit_exceeded",
                    f"time_limit_exceeded:{st.person.subject_id}",
                    HIGH,
                    deadline,
                    f"{_who(st)} held more than {hours:g} h (since {iso(st.in_centre_since)})",
                    **common,
                )
            )
        elif held >= limit - timedelta(minutes=rule.warn_before_minutes):
            out.append(
                Condition(
                    "time_limit_approaching",
                    f"time_limit_approaching:{st.person.subject_id}",
                    MEDIUM,
                    deadline - timedelta(minutes=rule.warn_before_minutes),
                    f"{_who(st)} reaches the {hours:g} h limit at {iso(deadline)}",
                    **common,
                )
            )
    return out


def _interrogations(
    state: CentreState, cfg: RiskConfig, now: datetime, present: list[SubjectState]
) -> list[Condition]:
    out = []
    for st in present:
        room, began = st.interrogation_room, st.interrogation_since
        if room is None or began is None:
            continue
        officers = state.officers_in(room)
        rule = cfg.officers
        if watches(rule, room) and len(officers) < rule.min_officers:
            since = max(began, state.officers_changed.get(room, began))
            if _elapsed(now, since) >= rule.seconds:
                out.append(
                    Condition(
                        "officers_short",
                        f"officers_short:{st.person.subject_id}:{room}",
                        HIGH,
                        since,
                        f"interrogation of {_who(st)} in room {room} with {len(officers)} officer(s)",
                        st.person.case_id,
                        st.person.subject_id,
                        room,
                        details={"officer_ids": sorted(officers), "min_officers": rule.min_officers},
                    )
                )
        minor = cfg.minor_guardian
        if st.person.minor and watches(minor, room) and not st.guardian_present:
            since = max(began, st.guardian_changed or began)
            if _elapsed(now, since) >= minor.seconds:
                out.append(
                    Condition(
                        "minor_without_guardian",
                        f"minor_without_guardian:{st.person.subject_id}",
                        HIGH,
                        since,
                        f"minor {_who(st)} questioned in room {room} without a guardian present",
                        st.person.case_id,
                        st.person.subject_id,
                        room,
                    )
                )
    return out


def _stays(cfg: RiskConfig, now: datetime, present: list[SubjectState]) -> list[Condition]:
    rule = cfg.stay
    if not rule.enabled:
        return []
    out = []
    for st in present:
        assert st.in_centre_since is not None
        common: dict[str, Any] = {
            "case_id": st.person.case_id,
            "subject_id": st.person.subject_id,
            "room_id": st.room,
        }
        if now - st.in_centre_since > timedelta(hours=rule.hours):
            out.append(
                Condition(
                    "stay_exceeded",
                    f"stay_exceeded:{st.person.subject_id}",
                    MEDIUM,
                    st.in_centre_since + timedelta(hours=rule.hours),
                    f"{_who(st)} in the centre more than {rule.hours:g} h",
                    **common,
                )
            )
        last = st.last_seen or st.in_centre_since
        if rule.silent_minutes > 0 and now - last > timedelta(minutes=rule.silent_minutes):
            out.append(
                Condition(
                    "missing_exit",
                    f"missing_exit:{st.person.subject_id}",
                    HIGH,
                    last,
                    f"{_who(st)} not seen since {iso(last)} and no exit registered",
                    **common,
                )
            )
    return out


def _pictures(state: CentreState, cfg: RiskConfig, now: datetime) -> list[Condition]:
    out = []
    for camera, pic in sorted(state.pictures.items()):
        room = state.camera_room.get(camera)
        if room is None:
            continue
        if watches(cfg.picture, room) and state.occupied(room):
            for fault in OCCUPIED_FAULTS:
                if fault in pic.faults:
                    out.append(
                        Condition(
                            f"picture_{fault.value}",
                            f"picture_{fault.value}:{camera}",
                            HIGH,
                            pic.faults[fault],
                            f"camera {camera} picture {fault.value} while room {room} is occupied",
                            room_id=room,
                            camera_id=camera,
                            **_occupants(state, room),
                        )
                    )
        if watches(cfg.camera_view, room):
            for fault in VIEW_FAULTS:
                if fault in pic.faults:
                    out.append(
                        Condition(
                            f"camera_{fault.value}",
                            f"camera_{fault.value}:{camera}",
                            LOW,
                            pic.faults[fault],
                            f"camera {camera} {fault.value}",
                            room_id=room,
                            camera_id=camera,
                        )
                    )
        rule = cfg.headcount
        if watches(rule, room) and pic.short_since is not None and pic.short_samples >= rule.samples:
            out.append(
                Condition(
                    "headcount",
                    f"headcount:{camera}",
                    LOW,
                    pic.short_since,
                    f"camera {camera} sees {pic.person_count} people, fewer than present in room {room}",
                    room_id=room,
                    camera_id=camera,
                )
            )
    return out


def expected_people(state: CentreState, camera_id: str) -> int:
    """Subjects and officers known to be in the camera's room now."""
    room = state.camera_room.get(camera_id)
    if room is None:
        return 0
    return len(state.subjects_in(room)) + len(state.officers_in(room))


def _cameras_down(state: CentreState, cfg: RiskConfig) -> list[Condition]:
    out = []
    for camera, since in sorted(state.cameras_down.items()):
        room = state.camera_room.get(camera)
        if room is not None and watches(cfg.recording, room) and state.occupied(room):
            out.append(_recording(state, camera, room, since, None, "camera lost while the room is occupied"))
    for camera, since in sorted(state.audio_down.items()):
        room = state.camera_room.get(camera)
        if (
            room is not None
            and watches(cfg.recording, room)
            and state.occupied(room)
            and camera not in state.cameras_down
        ):
            # 同步录音录像: sound is part of the record; video alone is not a complete recording
            out.append(
                _recording(
                    state,
                    camera,
                    room,
                    since,
                    None,
                    "audio lost (video goes on) while the room is occupied",
                    audio=True,
                )
            )
    return out


def gap_condition(state: CentreState, cfg: RiskConfig, gap: GapRecord) -> Condition | None:
    """A closed recording gap of a camera whose room was occupied during it, or None."""
    room = state.camera_room.get(gap.camera_id)
    if room is None or not watches(cfg.recording, room):
        return None
    if gap.range.seconds <= cfg.recording.min_gap_seconds:
        return None
    if not state.occupied_during(room, gap.start, gap.end):
        return None
    why = f"recording gap ({gap.cause.value}) while occupied"
    return _recording(state, gap.camera_id, room, gap.start, gap.end, why, audio=not gap.cause.video_missing)


def _occupants(state: CentreState, room: str) -> dict[str, Any]:
    """The case and subject an alert about a room's picture concerns: its occupants now."""
    people = sorted(state.subjects_in(room), key=lambda s: s.person.subject_id)
    if not people:
        return {}
    first = people[0].person
    return {
        "case_id": first.case_id,
        "subject_id": first.subject_id,
        "details": {"subject_ids": [s.person.subject_id for s in people]},
    }


def _recording(
    state: CentreState,
    camera: str,
    room: str,
    start: datetime,
    end: datetime | None,
    why: str,
    audio: bool = False,
) -> Condition:
    return Condition(
        "recording_lost",
        f"recording_lost:{camera}:audio" if audio else f"recording_lost:{camera}",
        HIGH,
        start,
        f"camera {camera} in room {room}: {why}",
        room_id=room,
        camera_id=camera,
        end=end,
        **_occupants(state, room),
    )
