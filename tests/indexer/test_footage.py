"""Footage of a subject's stays on SQLite and PostgreSQL: segments, gaps with causes, body-camera
clips, and the unexplained seconds covered by none of them."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

from domain.errors import NotFoundError, ValidationFailed
from domain.types import (
    EventType,
    GapCause,
    ObservationSource,
    RoomKind,
    SegmentRecord,
    StreamInfo,
    TimeRange,
)
from indexer import footage_rows
from indexer.case_records import NewCase, NewEvent, NewObservation, NewSubject
from indexer.case_store import CaseStore
from indexer.footage import FootageIndex, NewImport
from indexer.segment_store import SegmentStore
from tests.indexer.factories import STREAM, at, chain, gap

NOW = at(6 * 3600)


@pytest.fixture
def fx(engine: Engine, store: SegmentStore) -> tuple[FootageIndex, int]:
    store.sync_rooms(
        [
            ("wait", "候问室", "waiting", [("w-a", "a", "rtsp://10.0.0.1/a")]),
            (
                "int-1",
                "讯问室1",
                "interrogation",
                [("i-a", "a", "rtsp://10.0.0.2/a"), ("i-b", "b", "rtsp://10.0.0.3/b")],
            ),
        ]
    )
    cs = CaseStore(engine, clock=lambda: NOW)
    case, _ = cs.create_case(NewCase("A-1", "t", "盗窃"))
    subject, _ = cs.create_subject(NewSubject(case.id, "张三", "suspect"))
    # In the waiting room from 0 s to 600 s, then interrogation room 1 until exit at 1200 s.
    cs.add_observations(
        [
            NewObservation("o1", "wait", at(0), ObservationSource.WRISTBAND, subject_id=subject.id),
            NewObservation("o2", "wait", at(300), ObservationSource.WRISTBAND, subject_id=subject.id),
        ]
    )
    cs.add_events(
        [
            NewEvent("e1", EventType.INTERROGATION_START, at(600), room_id="int-1", subject_id=subject.id),
            NewEvent("e2", EventType.EXIT, at(1200), subject_id=subject.id),
        ]
    )
    # Waiting room camera: footage 0-300 s, a disconnect gap 300-360 s, footage 360-540 s,
    # then nothing at all (neither footage nor gap) 540-600 s.
    store.add_segments(chain("w-a", 30, start=0))
    store.add_gap(gap("w-a", 300, 360, GapCause.DISCONNECT))
    store.add_segments(chain("w-a", 18, start=360, first_seq=30, run_id="run-2"))
    # Interrogation room: camera a complete, camera b with a stall gap 700-760 s.
    store.add_segments(chain("i-a", 60, start=600))
    store.add_segments(chain("i-b", 10, start=600))
    store.add_gap(gap("i-b", 700, 760, GapCause.STALL))
    store.add_segments(chain("i-b", 44, start=760, first_seq=10, run_id="run-2"))
    return FootageIndex(cs), subject.id


def test_trajectory_of_the_subject(fx: tuple[FootageIndex, int]) -> None:
    index, subject = fx
    stays = index.trajectory(subject)
    assert [(s.room_id, s.start, s.end) for s in stays] == [
        ("wait", at(0), at(600)),
        ("int-1", at(600), at(1200)),
    ]
    assert stays[1].room_kind is RoomKind.INTERROGATION
    with pytest.raises(NotFoundError):
        index.trajectory(subject + 100)


def test_gap_inside_a_stay_is_reported_with_its_cause(fx: tuple[FootageIndex, int]) -> None:
    index, subject = fx
    footage, _ = index.subject_footage(subject, at(0), at(3600), now=NOW)
    interrogation = footage[1]
    assert [c.camera_id for c in interrogation.cameras] == ["i-a", "i-b"]
    cam_b = interrogation.cameras[1]
    assert [(g.cause, g.start, g.end) for g in cam_b.gaps] == [(GapCause.STALL, at(700), at(760))]
    assert cam_b.unexplained == ()
    assert interrogation.unexplained == []  # camera a filmed the whole stay
    assert len(interrogation.cameras[0].segments) == 60


def test_no_footage_and_no_gap_is_unexplained(fx: tuple[FootageIndex, int]) -> None:
    index, subject = fx
    footage, _ = index.subject_footage(subject, at(0), at(3600), now=NOW)
    waiting = footage[0]
    cam = waiting.cameras[0]
    assert [(g.cause, g.start, g.end) for g in cam.gaps] == [(GapCause.DISCONNECT, at(300), at(360))]
    assert list(cam.unexplained) == [TimeRange(at(540), at(600))]
    assert waiting.unexplained == [TimeRange(at(540), at(600))]


def test_query_range_clips_the_stays(fx: tuple[FootageIndex, int]) -> None:
    index, subject = fx
    footage, _ = index.subject_footage(subject, at(550), at(650), now=NOW)
    assert [(f.stay.room_id, f.interval) for f in footage] == [
        ("wait", TimeRange(at(550), at(600))),
        ("int-1", TimeRange(at(600), at(650))),
    ]
    assert footage[0].unexplained == [TimeRange(at(550), at(600))]
    assert [s.start for s in footage[1].cameras[0].segments] == [at(600 + 10 * i) for i in range(5)]
    with pytest.raises(ValidationFailed):
        index.subject_footage(subject, at(650), at(550))


def test_body_camera_clip_covers_the_unexplained_period(fx: tuple[FootageIndex, int]) -> None:
    index, subject = fx
    new = NewImport(
        device_id="DSJ-01",
        officer_id=None,
        storage_key="bodycam/DSJ-01/clip.mp4",
        original_name="clip.mp4",
        size=1234,
        sha256="a" * 64,
        sm3="b" * 64,
        start=at(530),
        end=at(620),
        container="mp4",
        stream=StreamInfo("h264", 1280, 720, "aac", 48000, 1),
        subject_ids=(subject,),
    )
    clip, created = index.add_imported_file(new)
    again, created_again = index.add_imported_file(new)
    assert created and not created_again and again.clip_id == clip.clip_id
    footage, clips = index.subject_footage(subject, at(0), at(3600), now=NOW)
    assert [c.clip_id for c in clips] == [clip.clip_id]
    assert [c.clip_id for c in footage[0].clips] == [clip.clip_id]
    assert footage[0].unexplained == []
    assert footage[0].cameras[0].unexplained == (TimeRange(at(540), at(600)),)  # the camera still lacks it
    with pytest.raises(ValidationFailed):
        index.add_imported_file(replace(new, storage_key="other", subject_ids=(9999,)))


def test_open_stay_counts_only_until_now(engine: Engine, fx: tuple[FootageIndex, int]) -> None:
    index, _ = fx
    cs = index.store
    case, _ = cs.create_case(NewCase("A-2", "t", "c"))
    other, _ = cs.create_subject(NewSubject(case.id, "李四", "witness"))
    cs.add_observations(
        [NewObservation("x1", "int-1", at(1100), ObservationSource.FACE, subject_id=other.id)]
    )
    footage, _ = index.subject_footage(other.id, at(0), at(24 * 3600), now=at(1300))
    assert footage[0].interval == TimeRange(at(1100), at(1300))
    assert footage[0].unexplained == [TimeRange(at(1200), at(1300))]  # cameras ran out at 1200 s


def _open_stay(index: FootageIndex) -> int:
    """A witness in interrogation room 1 from 1100 s on, no exit: the room's cameras hold footage
    (10 s segments) until 1200 s."""
    cs = index.store
    case, _ = cs.create_case(NewCase("A-3", "t", "c"))
    other, _ = cs.create_subject(NewSubject(case.id, "王五", "witness"))
    cs.add_observations(
        [NewObservation("y1", "int-1", at(1100), ObservationSource.FACE, subject_id=other.id)]
    )
    return other.id


@pytest.mark.parametrize("level", ["segments", "runs", "timeline"])
def test_the_not_yet_indexed_tail_of_an_open_stay_is_pending_not_unexplained(
    fx: tuple[FootageIndex, int], level: str
) -> None:
    index, _ = fx
    sid = _open_stay(index)
    lagging = FootageIndex(index.store, index_lag=timedelta(seconds=10))

    def stay(idx: FootageIndex, now: float) -> Any:
        if level == "segments":
            return idx.subject_footage(sid, at(0), at(24 * 3600), now=at(now))[0][0]
        if level == "runs":
            return idx.subject_coverage(sid, at(0), at(24 * 3600), now=at(now))[0][0]
        tl = idx.case_timeline(idx.store.get_subject(sid).case_id, now=at(now))
        return tl.subjects[0].footage[0]

    # 5 s after the last indexed segment: the recorder's segment in progress, not a hole
    exact, recording = stay(index, 1205), stay(lagging, 1205)
    assert exact.unexplained == [TimeRange(at(1200), at(1205))]  # as before: no lag given
    assert recording.unexplained == []
    assert recording.pending == TimeRange(at(1195), at(1205))
    assert all(c.unexplained == () for c in recording.cameras)
    # Later the hole is real: only the last segment's length before now is left out.
    late = stay(lagging, 1300)
    assert late.unexplained == [TimeRange(at(1200), at(1290))]
    assert [c.unexplained for c in late.cameras] == [(TimeRange(at(1200), at(1290)),)] * 2


def test_index_lag_must_not_be_negative(fx: tuple[FootageIndex, int]) -> None:
    with pytest.raises(ValueError):
        FootageIndex(fx[0].store, index_lag=timedelta(seconds=-1))


def test_case_timeline_has_events_trajectories_and_coverage(fx: tuple[FootageIndex, int]) -> None:
    index, subject = fx
    tl = index.case_timeline(index.store.get_subject(subject).case_id, now=NOW)
    assert [e.event.event_id for e in tl.events] == ["e1", "e2"]
    assert len(tl.subjects) == 1
    st = tl.subjects[0]
    assert [f.stay.room_id for f in st.footage] == ["wait", "int-1"]
    assert st.footage[0].unexplained == [TimeRange(at(540), at(600))]
    assert st.footage[1].interval.end - st.footage[1].interval.start == timedelta(seconds=600)


@pytest.mark.parametrize(("per_camera", "branches"), [(50_000, 64), (25, 64), (7, 64), (50_000, 1), (25, 2)])
def test_footage_records_equal_the_segment_store_reads(
    engine: Engine,
    store: SegmentStore,
    monkeypatch: pytest.MonkeyPatch,
    per_camera: int,
    branches: int,
) -> None:
    """The lean read path (one UNION ALL statement with a branch per camera and stay, raw tuples,
    records built from the slot setters, shared codec objects and boundary datetimes) returns
    exactly what the segment store's per-camera ORM-row reads return, also when a camera holds
    more rows than MAX_ROWS_PER_CAMERA (25, 7: each branch is cut at its limit) and when the
    branches are split over several statements (MAX_BRANCHES 1 and 2 for 3 cameras)."""
    monkeypatch.setattr(footage_rows, "MAX_ROWS_PER_CAMERA", per_camera)
    monkeypatch.setattr(footage_rows, "MAX_BRANCHES", branches)
    store.sync_rooms(
        [
            (
                "int-1",
                "讯问室1",
                "interrogation",
                [
                    ("i-a", "a", "rtsp://10.0.0.2/a"),
                    ("i-b", "b", "rtsp://10.0.0.3/b"),
                    ("i-c", "c", "rtsp://x/c"),
                ],
            )
        ]
    )
    other = StreamInfo("hevc", 2560, 1440, None, None, None)
    store.add_segments(chain("i-a", 40, start=0))
    store.add_segments(
        [replace(r, stream=other) for r in chain("i-a", 20, start=400, first_seq=40, run_id="r2")]
    )
    store.add_segments(chain("i-b", 30, start=5, seconds=7.5))  # unaligned, shorter segments
    store.add_gap(gap("i-b", 230, 300, GapCause.STALL))
    store.add_segments(chain("i-b", 12, start=300, seconds=25, first_seq=30, run_id="r2"))  # longer ones
    store.add_gap(gap("i-c", 0, 600, GapCause.DISCONNECT))  # camera c: no footage at all
    cs = CaseStore(engine, clock=lambda: NOW)
    case, _ = cs.create_case(NewCase("A-9", "t", "盗窃"))
    subject, _ = cs.create_subject(NewSubject(case.id, "王五", "suspect"))
    cs.add_events(
        [
            NewEvent("s", EventType.INTERROGATION_START, at(12.5), room_id="int-1", subject_id=subject.id),
            NewEvent("x", EventType.EXIT, at(571), subject_id=subject.id),
        ]
    )
    footage, _ = FootageIndex(cs).subject_footage(subject.id, at(0), at(3600), now=NOW)
    (stay,) = footage
    assert [c.camera_id for c in stay.cameras] == ["i-a", "i-b", "i-c"]
    for cam in stay.cameras:
        want = store.segments(cam.camera_id, stay.interval.start, stay.interval.end, limit=per_camera)
        assert list(cam.segments) == want
        assert list(cam.gaps) == store.gaps(cam.camera_id, stay.interval.start, stay.interval.end)
    assert {s.stream for s in stay.cameras[0].segments} == ({STREAM, other} if per_camera > 40 else {STREAM})
    assert stay.cameras[2].segments == () and stay.cameras[2].unexplained == ()


def test_several_stays_in_one_statement_match_one_stay_at_a_time(fx: tuple[FootageIndex, int]) -> None:
    """All stays' cameras read in one statement give what each stay read on its own gives."""
    index, subject = fx
    whole, _ = index.subject_footage(subject, at(0), at(3600), now=NOW)
    assert len(whole) == 2
    for stay in whole:
        (alone,), _ = index.subject_footage(subject, stay.interval.start, stay.interval.end, now=NOW)
        assert alone.cameras == stay.cameras
        for cam in stay.cameras:
            assert all(type(rec) is SegmentRecord for rec in cam.segments)
            assert [s.start for s in cam.segments] == sorted(s.start for s in cam.segments)
            assert len(set(cam.segments)) == len(cam.segments)  # hashable, distinct
