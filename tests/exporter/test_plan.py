"""The export plan on plain data: stages, merging, numbering, unexplained seconds, default range."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from domain.types import (
    CameraCoverage,
    CaseEvent,
    ClockSource,
    EventType,
    GapCause,
    GapRecord,
    ImportedClip,
    RoomKind,
    RoomStay,
    SegmentRecord,
    StayFootage,
    StreamInfo,
    TimeRange,
)
from exporter.errors import ExportRangeError, UnexplainedFootage
from exporter.plan import CaseInfo, ExportRequest, StageKind, SubjectInfo, build_plan, default_range

T0 = datetime(2024, 5, 1, 1, 0, tzinfo=UTC)


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def seg(cam: str, a: float, b: float, seq: int = 1) -> SegmentRecord:
    return SegmentRecord(
        cam,
        "run",
        seq,
        at(a),
        at(b),
        f"{cam}/{seq}.ts",
        1,
        f"{cam}{seq}",
        None,
        ClockSource.RTCP,
        StreamInfo("h264", 1920, 1080),
    )


def stay(
    room: str,
    kind: RoomKind,
    a: float,
    b: float,
    segs: Sequence[SegmentRecord] = (),
    gaps: Sequence[GapRecord] = (),
    clips: tuple[ImportedClip, ...] = (),
) -> StayFootage:
    cams = {}
    for s in segs:
        cams.setdefault(s.camera_id, []).append(s)
    for g in gaps:
        cams.setdefault(g.camera_id, [])
    covs = tuple(
        CameraCoverage(c, TimeRange(at(a), at(b)), tuple(v), tuple(g for g in gaps if g.camera_id == c), ())
        for c, v in cams.items()
    )
    return StayFootage(RoomStay(1, room, kind, at(a), at(b)), TimeRange(at(a), at(b)), covs, clips)


def clip(a: float, b: float, cid: int = 1) -> ImportedClip:
    return ImportedClip(cid, "BC1", 5, f"bc/{cid}.mp4", at(a), at(b), 1, "h", None, "mp4", None)


REQ = ExportRequest(CaseInfo("C1", "t", "盗窃"), SubjectInfo(1, "张某", "x"))


def trajectory() -> list[StayFootage]:
    return [
        stay("arrest", RoomKind.ARREST, 0, 10, clips=(clip(0, 10),)),
        stay("entry", RoomKind.ENTRY, 10, 20, [seg("e", 10, 20)]),
        stay("wait", RoomKind.WAITING, 20, 30, [seg("w", 20, 30)]),
        stay("wait2", RoomKind.WAITING, 30, 40, [seg("w2", 30, 40)]),  # contiguous: merges
        stay(
            "int",
            RoomKind.INTERROGATION,
            40,
            60,
            [seg("i", 40, 50), seg("i", 55, 60, 2)],
            [GapRecord("i", at(50), at(55), GapCause.DISCONNECT)],
        ),
        stay("wait", RoomKind.WAITING, 60, 70, [seg("w", 60, 70, 2)]),
        stay("int", RoomKind.INTERROGATION, 70, 90, [seg("i", 70, 90, 3)]),
    ]


def test_stages_in_order_with_merging_and_numbering() -> None:
    plan = build_plan(REQ, trajectory(), [], {})
    kinds = [(s.kind, s.number) for s in plan.stages]
    assert kinds == [
        (StageKind.ARREST, 0),
        (StageKind.ENTRY, 0),
        (StageKind.WAITING, 0),
        (StageKind.INTERROGATION, 1),
        (StageKind.WAITING, 0),
        (StageKind.INTERROGATION, 2),
    ]
    waiting = plan.stages[2]
    assert waiting.interval == TimeRange(at(20), at(40))  # two touching waiting stays merged
    assert {c.camera_id for c in waiting.cameras} == {"w", "w2"}
    assert plan.stages[0].clips and plan.stages[0].slug == "01-arrest"
    assert plan.stages[3].slug == "04-interrogation-1" and plan.stages[3].label_zh == "讯问（第1次）"
    assert [g.cause for _s, g in plan.gaps] == [GapCause.DISCONNECT]
    assert plan.unexplained == ()
    plan.require_explained()  # nothing to refuse


def test_non_contiguous_same_kind_stays_are_not_merged() -> None:
    fp = [
        stay("w", RoomKind.WAITING, 0, 10, [seg("w", 0, 10)]),
        stay("w", RoomKind.WAITING, 12, 20, [seg("w", 12, 20, 2)]),
    ]
    plan = build_plan(ExportRequest(REQ.case, REQ.subject, range=TimeRange(at(0), at(20))), fp, [])
    assert len(plan.stages) == 2
    assert plan.unexplained == (TimeRange(at(10), at(12)),)  # the walk between rooms is not covered


def test_unexplained_is_refused_naming_the_intervals_unless_allowed() -> None:
    fp = trajectory()
    fp[1] = stay(
        "entry", RoomKind.ENTRY, 10, 20, [seg("e", 10, 14), seg("e", 17, 20, 2)]
    )  # 3 s hole, no gap row
    plan = build_plan(REQ, fp, [])
    assert plan.unexplained == (TimeRange(at(14), at(17)),)
    with pytest.raises(UnexplainedFootage) as err:
        plan.require_explained()
    assert "2024-05-01T01:00:14" in str(err.value) and "2024-05-01T01:00:17" in str(err.value)
    assert err.value.details["intervals"][0]["start"].startswith("2024-05-01T01:00:14")
    plan.require_explained(allow_unexplained=True)


def test_footage_of_another_camera_explains_a_gap_free_hole() -> None:
    fp = [stay("int", RoomKind.INTERROGATION, 0, 20, [seg("a", 0, 8), seg("b", 0, 20)])]
    plan = build_plan(ExportRequest(REQ.case, REQ.subject, range=TimeRange(at(0), at(20))), fp, [])
    assert plan.unexplained == ()
    assert plan.stages[0].cameras[0].unexplained == (TimeRange(at(8), at(20)),)  # camera "a" alone


def test_default_range_from_first_footage_to_end_of_last_interrogation() -> None:
    fp = trajectory()
    events = [
        CaseEvent("e1", EventType.TRANSCRIPT_SIGNED, at(95), "int", 1),
        CaseEvent("e2", EventType.TRANSCRIPT_SIGNED, at(45), "int", 1),
        CaseEvent("other", EventType.TRANSCRIPT_SIGNED, at(200), "int", 2),
    ]  # another subject
    assert default_range(fp, events, 1) == TimeRange(at(0), at(95))  # signed after leaving the room
    assert default_range(fp, [], 1) == TimeRange(at(0), at(90))  # leaving the interrogation room
    no_clip = fp[1:]
    assert default_range(no_clip, [], 1).start == at(10)  # entry when there is no arrest clip
    plan = build_plan(REQ, fp, events)
    assert plan.range == TimeRange(at(0), at(95))
    assert [e.event_id for e in plan.events] == ["e2", "e1"]
    assert plan.stages[-1].events[-1].event_id == "e1"  # the closing event belongs to the last stage
    assert plan.unexplained == (TimeRange(at(90), at(95)),)  # after leaving the room: not filmed


def test_default_range_needs_an_interrogation() -> None:
    with pytest.raises(ExportRangeError):
        default_range([stay("w", RoomKind.WAITING, 0, 10, [seg("w", 0, 10)])], [], 1)
    with pytest.raises(ExportRangeError):
        default_range([], [], 1)


def test_arrest_clips_before_entry_form_the_first_stage_even_without_an_arrest_stay() -> None:
    fp = [
        stay("entry", RoomKind.ENTRY, 10, 20, [seg("e", 10, 20)], clips=(clip(2, 9, 1), clip(12, 14, 2))),
        stay("int", RoomKind.INTERROGATION, 20, 30, [seg("i", 20, 30)]),
    ]
    plan = build_plan(REQ, fp, [])
    assert plan.stages[0].kind is StageKind.ARREST
    assert plan.stages[0].interval == TimeRange(at(2), at(9))
    assert [c.clip_id for c in plan.stages[0].clips] == [1]
    assert [c.clip_id for c in plan.stages[1].clips] == [2]  # a clip filmed inside stays with its room
    assert plan.unexplained == (TimeRange(at(9), at(10)),)  # transport to the centre
