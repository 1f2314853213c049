"""Run-level footage (``FootageIndex.subject_coverage``, the case timeline) equals the per-segment
answer (``subject_footage``) on a random centre, SQLite and PostgreSQL: runs, segment counts,
covered microseconds, gaps and unexplained seconds per camera and per stay — also while runs are
dirty after deletes, and for stays cut by the query range or still open."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import timedelta

import pytest
from sqlalchemy import Engine, delete

from domain.types import EventType, GapCause, GapRecord, ObservationSource, StayFootage, TimeRange
from indexer import coverage as coverage_module
from indexer.case_records import NewCase, NewEvent, NewObservation, NewSubject
from indexer.case_store import CaseStore
from indexer.coverage import StayCoverage
from indexer.footage import FootageIndex
from indexer.models import Base, to_us
from indexer.segment_runs import union_runs
from indexer.segment_store import SegmentStore
from tests.indexer.factories import at
from tests.indexer.test_segment_runs import random_segments

SEGMENTS = Base.metadata.tables["segments"]
ROOMS = [
    ("wait", "候问室", "waiting", ["w-a"]),
    ("int-1", "讯问室1", "interrogation", ["i-a", "i-b"]),
    ("int-2", "讯问室2", "interrogation", ["j-a", "j-b", "j-c"]),
]
NOW = at(4 * 3600)


def build(engine: Engine, store: SegmentStore, seed: int) -> tuple[FootageIndex, int]:
    rng = random.Random(seed)
    store.sync_rooms(
        [
            (rid, name, kind, [(c, c, f"rtsp://10.0.0.{i}/{c}") for i, c in enumerate(cams)])
            for rid, name, kind, cams in ROOMS
        ]
    )
    for _, _, _, cams in ROOMS:
        for cam in cams:
            segs = random_segments(rng, cam, rng.randrange(150, 400))
            rng.shuffle(segs)
            store.add_segments(segs)
            for k in range(rng.randrange(0, 4)):
                s = rng.uniform(0, 3000)
                store.add_gap(
                    GapRecord(
                        cam, at(s), at(s + rng.uniform(1, 120)), GapCause.DISCONNECT, "t", f"{cam}-g{k}"
                    )
                )
    cs = CaseStore(engine, clock=lambda: NOW)
    case, _ = cs.create_case(NewCase("A-1", "t", "盗窃"))
    subject, _ = cs.create_subject(NewSubject(case.id, "张三", "suspect"))
    cs.add_observations(
        [NewObservation("o1", "wait", at(5), ObservationSource.WRISTBAND, subject_id=subject.id)]
    )
    cs.add_events(
        [
            NewEvent("e1", EventType.INTERROGATION_START, at(900.5), room_id="int-1", subject_id=subject.id),
            NewEvent("e2", EventType.WAITING, at(1700), room_id="wait", subject_id=subject.id),
            NewEvent("e3", EventType.INTERROGATION_START, at(2100), room_id="int-2", subject_id=subject.id),
            # no exit: the last stay is open and counts until now
        ]
    )
    return FootageIndex(cs), subject.id


def merged(holes: Sequence[TimeRange]) -> list[TimeRange]:
    """Holes with touching ones joined: the segment answer splits a hole at a zero-length segment
    inside it (it covers nothing); runs have no such point. The seconds are the same."""
    out: list[TimeRange] = []
    for h in holes:
        if out and out[-1].end == h.start:
            out[-1] = TimeRange(out[-1].start, h.end)
        else:
            out.append(h)
    return out


def assert_same(runs: list[StayCoverage], segs: list[StayFootage]) -> int:
    """The run-level answer equals what the segment answer implies; returns the cameras compared."""
    assert [(r.stay, r.interval) for r in runs] == [(f.stay, f.interval) for f in segs]
    n = 0
    for r, f in zip(runs, segs, strict=True):
        assert r.unexplained == merged(f.unexplained)
        assert r.clips == f.clips
        for rc, fc in zip(r.cameras, f.cameras, strict=True):
            lo, hi = to_us(fc.interval.start), to_us(fc.interval.end)
            spans = union_runs((to_us(s.start), to_us(s.end)) for s in fc.segments)
            clipped = [(max(a, lo), min(b, hi)) for a, b in spans if min(b, hi) > max(a, lo)]
            assert [(to_us(x.start), to_us(x.end)) for x in rc.runs] == clipped
            assert rc.segment_count == len(fc.segments)
            assert rc.footage_us == sum(
                max(0, min(to_us(s.end), hi) - max(to_us(s.start), lo)) for s in fc.segments
            )
            assert (rc.camera_id, rc.interval, rc.gaps, rc.unexplained) == (
                fc.camera_id,
                fc.interval,
                fc.gaps,
                tuple(merged(fc.unexplained)),
            )
            n += 1
    return n


def test_run_level_footage_equals_the_segment_answer(
    engine: Engine, store: SegmentStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    index, subject = build(engine, store, seed=21)
    rng = random.Random(22)
    windows = [(at(0), at(24 * 3600))] + [
        (at(a), at(a + rng.uniform(1, 2000))) for a in (rng.uniform(0, 3500) for _ in range(12))
    ]
    compared = holes = 0
    for start, end in windows:
        now = rng.choice([NOW, at(rng.uniform(2200, 4000))])
        runs, clips = index.subject_coverage(subject, start, end, now=now)
        segs, clips2 = index.subject_footage(subject, start, end, now=now)
        assert clips == clips2
        compared += assert_same(runs, segs)
        holes += sum(len(c.unexplained) for f in runs for c in f.cameras)
    assert compared > 30 and holes > 10  # the data has holes, the windows cut stays

    # Several statements per answer (the reads split into chunks) give the same answer.
    monkeypatch.setattr(coverage_module, "MAX_BRANCHES", 2)
    runs, _ = index.subject_coverage(subject, at(0), at(24 * 3600), now=NOW)
    assert_same(runs, index.subject_footage(subject, at(0), at(24 * 3600), now=NOW)[0])
    monkeypatch.undo()

    # Deleted segments (dirty runs): still exact before and after the repair.
    victims = rng.sample(range(1, 2000), 60)
    with engine.begin() as conn:
        conn.execute(delete(SEGMENTS).where(SEGMENTS.c.id.in_(victims)))
    for repaired in (False, True):
        if repaired:
            assert store.repair_runs() > 0
        for start, end in windows[:5]:
            runs, _ = index.subject_coverage(subject, start, end, now=NOW)
            assert_same(runs, index.subject_footage(subject, start, end, now=NOW)[0])


def test_case_timeline_is_the_run_level_answer(engine: Engine, store: SegmentStore) -> None:
    index, subject = build(engine, store, seed=31)
    tl = index.case_timeline(index.store.get_subject(subject).case_id, now=NOW)
    (st,) = tl.subjects
    first, last = st.footage[0].interval.start, st.footage[-1].interval.end
    segs, _ = index.subject_footage(subject, first, last + timedelta(microseconds=1), now=NOW)
    assert assert_same(st.footage, segs) == 1 + 2 + 1 + 3  # wait, int-1, wait, int-2: every camera
    assert all(
        isinstance(c.runs, tuple) and isinstance(c, coverage_module.CameraRuns)
        for f in st.footage
        for c in f.cameras
    )
    assert sum(r.seconds for f in st.footage for r in f.unexplained) > 0
    assert TimeRange(first, last).seconds > 0
