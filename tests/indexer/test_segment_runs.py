"""Coverage runs (``segment_runs``) on SQLite and PostgreSQL: always what the segment rows imply —
after inserts in any order and batch size, duplicates, deletes + repair, a full rebuild,
``vaudit reindex`` and the migration's backfill."""

from __future__ import annotations

import random
from dataclasses import replace

from alembic.script import ScriptDirectory
from sqlalchemy import Engine, delete, insert, select

from domain.types import SegmentRecord
from indexer import segment_runs
from indexer.database import alembic_config, create_engine_for, upgrade
from indexer.models import Base
from indexer.reindex import reindex
from indexer.segment_runs import union_runs
from indexer.segment_store import SegmentStore, segment_row
from tests.indexer.factories import at, chain, rooms

RUNS, SEGMENTS = Base.metadata.tables["segment_runs"], Base.metadata.tables["segments"]
CAMS = ("c1", "c2", "c3")


def random_segments(rng: random.Random, camera_id: str, n: int) -> list[SegmentRecord]:
    """Mostly back-to-back 10 s segments, with holes, overlaps, long and zero-length ones."""
    out: list[SegmentRecord] = []
    t = 0.0
    for rec in chain(camera_id, n):
        r = rng.random()
        if r < 0.15:
            t += rng.choice([0.5, 3.0, 40.0])  # a hole
        elif r < 0.25:
            t -= rng.choice([0.2, 2.0, 15.0])  # overlapping the one before
        dur = 0.0 if rng.random() < 0.03 else rng.choice([10.0, 10.0, 10.0, 4.0, 35.0])
        out.append(replace(rec, start=at(t), end=at(t + dur)))
        t += dur
    return out


def dataset(seed: int, n: int = 80) -> list[SegmentRecord]:
    rng = random.Random(seed)
    return [s for cam in CAMS for s in random_segments(rng, cam, n)]


def stored(engine: Engine) -> dict[str, list[tuple[int, int, bool]]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(RUNS.c.camera_id, RUNS.c.start_us, RUNS.c.end_us, RUNS.c.dirty).order_by(
                RUNS.c.camera_id, RUNS.c.start_us
            )
        ).all()
    out: dict[str, list[tuple[int, int, bool]]] = {}
    for cam, a, b, d in rows:
        out.setdefault(cam, []).append((int(a), int(b), bool(d)))
    return out


def implied(engine: Engine) -> dict[str, list[tuple[int, int, bool]]]:
    """What the segment rows imply, computed here from the rows themselves."""
    with engine.connect() as conn:
        rows = conn.execute(select(SEGMENTS.c.camera_id, SEGMENTS.c.start_us, SEGMENTS.c.end_us)).all()
    spans: dict[str, list[tuple[int, int]]] = {}
    for cam, a, b in rows:
        spans.setdefault(cam, []).append((int(a), int(b)))
    out = {cam: [(a, b, False) for a, b in union_runs(s)] for cam, s in spans.items()}
    return {cam: runs for cam, runs in out.items() if runs}


def test_union_runs_merges_overlapping_and_touching_spans_and_drops_empty_ones() -> None:
    assert union_runs([]) == []
    assert union_runs([(10, 20), (0, 10), (5, 5), (30, 40), (35, 38), (40, 41), (50, 50)]) == [
        (0, 20),
        (30, 41),
    ]
    assert union_runs([(0, 100), (10, 20), (50, 60)]) == [(0, 100)]
    assert union_runs([(0, 10), (11, 12)]) == [(0, 10), (11, 12)]  # 1 µs apart: a hole


def test_runs_equal_the_segments_after_inserts_in_any_order_and_duplicates(
    engine: Engine, store: SegmentStore
) -> None:
    store.sync_rooms(rooms(*CAMS))
    segs = dataset(seed=3)
    rng = random.Random(4)
    rng.shuffle(segs)
    i = 0
    while i < len(segs):  # random batch sizes, single inserts among them
        n = rng.choice([1, 7, 40])
        if n == 1:
            store.add_segment(segs[i])
        else:
            store.add_segments(segs[i : i + n])
        i += n
    truth = implied(engine)
    assert truth and all(len(runs) > 3 for runs in truth.values())  # holes exist: several runs each
    assert stored(engine) == truth
    # The runs are exactly the union of the records (not only of the rows read back).
    for cam in CAMS:
        mine = union_runs(
            (segment_row(s, "camera", 0)["start_us"], segment_row(s, "camera", 0)["end_us"])
            for s in segs
            if s.camera_id == cam
        )
        assert [(a, b) for a, b, _ in truth[cam]] == mine

    # Duplicates (again, reordered, mixed with nothing new) change nothing.
    again = rng.sample(segs, 60)
    assert store.add_segments(again) == 0
    store.add_segment(again[0])
    assert stored(engine) == truth


def test_deleted_segments_mark_runs_dirty_and_repair_recomputes_them(
    engine: Engine, store: SegmentStore
) -> None:
    store.sync_rooms(rooms(*CAMS))
    segs = [s for s in dataset(seed=5) if s.end > s.start]
    store.add_segments(segs)
    victims = random.Random(6).sample(segs, 15)
    with engine.begin() as conn:  # as the retention job deletes: plain DELETEs of segment rows
        for v in victims:
            conn.execute(delete(SEGMENTS).where(SEGMENTS.c.storage_key == v.storage_key))
    dirty = [r for runs in stored(engine).values() for r in runs if r[2]]
    assert dirty  # the trigger marked the runs that held them
    assert store.repair_runs() == len(dirty)
    assert stored(engine) == implied(engine)
    assert store.repair_runs() == 0
    # A dirty run grown by a later insert stays dirty until repaired, then is exact again.
    with engine.begin() as conn:
        conn.execute(delete(SEGMENTS).where(SEGMENTS.c.storage_key == segs[10].storage_key))
    store.add_segment(segs[10])
    assert any(r[2] for runs in stored(engine).values() for r in runs)
    store.repair_runs()
    assert stored(engine) == implied(engine)


def test_rebuild_equals_the_maintained_runs(engine: Engine, store: SegmentStore) -> None:
    store.sync_rooms(rooms(*CAMS))
    store.add_segments(dataset(seed=8))
    maintained = stored(engine)
    with engine.begin() as conn:
        segment_runs.rebuild(conn)
    assert stored(engine) == maintained
    with engine.begin() as conn:
        conn.execute(delete(RUNS))
        segment_runs.rebuild(conn, ["c2"])
    assert stored(engine) == {"c2": maintained["c2"]}


def test_reindex_from_sidecars_rebuilds_the_runs(engine: Engine, store: SegmentStore) -> None:
    store.sync_rooms(rooms(*CAMS))
    segs = dataset(seed=9, n=60)
    sidecars = [s.to_json() for s in segs]
    random.Random(10).shuffle(sidecars)
    report = reindex(store, sidecars)
    assert report.segments_added == len(segs)
    assert stored(engine) == implied(engine)
    assert reindex(store, list(reversed(sidecars))).segments_added == 0
    assert stored(engine) == implied(engine)
    # Retention deleted some (rows and sidecars): reindex of what is left repairs the dirty runs.
    gone = {s.storage_key for s in random.Random(11).sample([s for s in segs if s.end > s.start], 8)}
    with engine.begin() as conn:
        conn.execute(delete(SEGMENTS).where(SEGMENTS.c.storage_key.in_(gone)))
    assert any(r[2] for runs in stored(engine).values() for r in runs)
    reindex(store, [sc for sc in sidecars if sc["storage_key"] not in gone])
    assert stored(engine) == implied(engine)  # no dirty run left


def test_migration_backfills_runs_from_existing_segments(db_url: str) -> None:
    script = ScriptDirectory.from_config(alembic_config(create_engine_for("sqlite://")))
    ours = next(r for r in script.walk_revisions() if "segment_runs" in (r.doc or ""))
    engine = create_engine_for(db_url)
    try:
        upgrade(engine, str(ours.down_revision))  # the schema before the runs table
        SegmentStore(engine).sync_rooms(rooms(*CAMS))
        segs = dataset(seed=12)
        with engine.begin() as conn:
            conn.execute(insert(SEGMENTS), [segment_row(s, "camera", 0) for s in segs])
        upgrade(engine)
        truth = implied(engine)
        assert truth and stored(engine) == truth
    finally:
        engine.dispose()
