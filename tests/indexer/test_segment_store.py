"""SegmentStore on SQLite and PostgreSQL: sync, idempotent writes, half-open overlap queries,
error mapping and concurrent writers."""

from __future__ import annotations

import dataclasses
import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select, text

from domain.errors import ConflictError, IndexStoreError, NotFoundError, ValidationFailed
from domain.types import GapCause, RoomKind
from indexer.models import Segment
from indexer.segment_store import SegmentStore, segment_from_row, segment_row
from tests.indexer.factories import T0, at, chain, gap, rooms


@pytest.fixture
def cams(store: SegmentStore) -> SegmentStore:
    store.sync_rooms(rooms("cam1", "cam2"))
    return store


def _count(store: SegmentStore, table: str) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


# --- plain data -------------------------------------------------------------------------------


def test_row_round_trip_is_lossless() -> None:
    rec = dataclasses.replace(chain("cam1", 1, start=0.000001)[0], sm3="ab" * 32, recovered=True)
    row = segment_row(rec, "camera", indexed_us=5)
    assert row["start_us"] == 1_772_352_000_000_001
    assert segment_from_row(row) == rec


def test_segment_row_refuses_bad_input() -> None:
    rec = chain("cam1", 1)[0]
    with pytest.raises(ValidationFailed):
        segment_row(rec, "phone", 0)
    with pytest.raises(ValidationFailed):
        segment_row(dataclasses.replace(rec, start=rec.start.replace(tzinfo=None)), "camera", 0)
    with pytest.raises(ValidationFailed):
        segment_row(dataclasses.replace(rec, end=rec.start - timedelta(seconds=1)), "camera", 0)


# --- rooms and cameras ------------------------------------------------------------------------


def test_sync_rooms_inserts_updates_and_deactivates(store: SegmentStore) -> None:
    report = store.sync_rooms(
        [
            ("r1", "讯问室 1", RoomKind.INTERROGATION, [("c1", "front", "rtsp://u:p@10.0.0.1/a")]),
            ("r2", "候问室", "waiting", [("c2", "wide", "rtsp://10.0.0.2/a")]),
        ]
    )
    assert report.added == 4
    store.add_segment(chain("c2", 1)[0])
    # c1 moves to r2 and is renamed, c2 and r1 disappear from the configuration.
    report = store.sync_rooms([("r2", "候问室", "waiting", [("c1", "door", "rtsp://10.0.0.9/b")])])
    assert (report.added, report.updated, report.deactivated) == (0, 1, 2)
    info = {c.camera_id: c for c in store.cameras()}
    assert set(info) == {"c1", "c2"}  # nothing deleted: c2 has footage
    assert (info["c1"].room_id, info["c1"].name, info["c1"].url, info["c1"].active) == (
        "r2",
        "door",
        "rtsp://10.0.0.9/b",
        True,
    )
    assert info["c2"].active is False
    assert info["c1"].room_kind == "waiting"
    assert store.segments("c2", at(0), at(10)) != []
    # Syncing the same configuration again changes nothing.
    again = store.sync_rooms([("r2", "候问室", "waiting", [("c1", "door", "rtsp://10.0.0.9/b")])])
    assert (again.added, again.updated, again.deactivated) == (0, 0, 0)


def test_sync_rooms_stores_no_credentials(store: SegmentStore) -> None:
    store.sync_rooms(
        [("r1", "A", "entry", [("c1", "x", "rtsp://admin:hunter2@10.0.0.1:554/s?pwd=qs2&ch=1")])]
    )
    with store.engine.connect() as conn:
        stored = str(conn.execute(text("SELECT url FROM cameras")).scalar_one())
    assert stored == "rtsp://***@10.0.0.1:554/s?pwd=***&ch=1"


def test_sync_rooms_refuses_duplicates_and_bad_kinds(store: SegmentStore) -> None:
    with pytest.raises(ValidationFailed):
        store.sync_rooms(
            [("r1", "A", "entry", [("c1", "", "rtsp://h/")]), ("r2", "B", "entry", [("c1", "", "rtsp://h/")])]
        )
    with pytest.raises(ValidationFailed):
        store.sync_rooms([("r1", "A", "ballroom", [])])


def test_cameras_report_last_segment_end(cams: SegmentStore) -> None:
    for rec in chain("cam1", 3):
        cams.add_segment(rec)
    info = {c.camera_id: c for c in cams.cameras()}
    assert info["cam1"].last_segment_end == at(30)
    assert info["cam2"].last_segment_end is None
    assert info["cam1"].room_id == "r1" and info["cam1"].room_name == "讯问室 1"
    last = cams.last_segment("cam1")
    assert last is not None and last.seq == 2
    assert cams.last_segment("cam2") is None


# --- idempotent writes ------------------------------------------------------------------------


def test_add_segment_is_idempotent_by_storage_key(cams: SegmentStore) -> None:
    rec = chain("cam1", 1)[0]
    assert cams.add_segment(rec) is True
    assert cams.add_segment(rec) is False
    assert _count(cams, "segments") == 1
    with pytest.raises(ConflictError) as err:
        cams.add_segment(dataclasses.replace(rec, sha256="f" * 64))
    assert err.value.details["fields"] == ["sha256"]
    with pytest.raises(ConflictError):
        cams.add_segment(rec, source="bodycam")
    assert cams.segments("cam1", at(0), at(10)) == [rec]


def test_add_segments_batch_skips_present_rows(cams: SegmentStore) -> None:
    recs = chain("cam1", 1200)
    assert cams.add_segments(recs[:700]) == 700
    assert cams.add_segments(recs) == 500
    assert _count(cams, "segments") == 1200


def test_add_gap_is_idempotent_by_gap_id(cams: SegmentStore) -> None:
    g = gap("cam1", 10, 20)
    assert cams.add_gap(g) is True
    assert cams.add_gap(g) is False
    assert _count(cams, "gaps") == 1
    with pytest.raises(ConflictError):
        cams.add_gap(dataclasses.replace(g, end=at(25)))
    assert cams.gaps("cam1", at(0), at(100)) == [g]


def test_unknown_camera_is_not_found(cams: SegmentStore) -> None:
    with pytest.raises(NotFoundError):
        cams.add_segment(chain("ghost", 1)[0])
    with pytest.raises(NotFoundError):
        cams.add_gap(gap("ghost", 0, 1))
    with pytest.raises(NotFoundError):
        cams.segments("ghost", at(0), at(1))
    with pytest.raises(NotFoundError):
        cams.gaps("ghost", at(0), at(1))
    with pytest.raises(NotFoundError):
        cams.last_segment("ghost")
    assert cams.ensure_camera("ghost") is True
    assert cams.ensure_camera("ghost") is False
    cams.add_segment(chain("ghost", 1)[0])
    assert {c.camera_id: c.active for c in cams.cameras()}["ghost"] is False


def test_database_failure_is_an_index_error(cams: SegmentStore) -> None:
    cams.engine.dispose()
    with cams.engine.begin() as conn:
        conn.execute(text("DROP TABLE segments"))
    with pytest.raises(IndexStoreError):
        cams.segments("cam1", at(0), at(1))


# --- overlap queries --------------------------------------------------------------------------


def test_segment_overlap_is_half_open(cams: SegmentStore) -> None:
    recs = chain("cam1", 3)  # [0,10) [10,20) [20,30)
    for rec in recs:
        cams.add_segment(rec)
    cams.add_segment(chain("cam2", 1)[0])

    def seqs(a: float, b: float) -> list[int]:
        return [r.seq for r in cams.segments("cam1", at(a), at(b))]

    assert seqs(10, 20) == [1]  # exactly one segment: neighbours only touch
    assert seqs(9.999999, 20) == [0, 1]
    assert seqs(10, 20.000001) == [1, 2]
    assert seqs(30, 40) == []  # starts where the last one ends
    assert seqs(-10, 0) == []  # ends where the first one starts
    assert seqs(-10, 0.000001) == [0]
    assert seqs(5, 5.5) == [0]  # inside one segment
    assert seqs(-100, 100) == [0, 1, 2]  # ordered by start
    assert [r.seq for r in cams.segments("cam1", at(-100), at(100), limit=2)] == [0, 1]
    with pytest.raises(ValidationFailed):
        cams.segments("cam1", at(10), at(5))


def test_long_segment_straddling_the_query_is_found(cams: SegmentStore) -> None:
    # A 2-hour recovered segment followed by short ones: a query deep inside it must find it.
    long = dataclasses.replace(chain("cam1", 1, seconds=7200)[0], recovered=True)
    cams.add_segment(long)
    for rec in chain("cam1", 5, start=7200, first_seq=1, prev=long.sha256):
        cams.add_segment(rec)
    assert [r.seq for r in cams.segments("cam1", at(3600), at(3601))] == [0]
    assert [r.seq for r in cams.segments("cam1", at(7199), at(7215))] == [0, 1, 2]


def test_gap_overlap_is_half_open(cams: SegmentStore) -> None:
    g1, g2 = gap("cam1", 10, 20), gap("cam1", 3600, 7200, GapCause.STALL)  # long gap
    cams.add_gap(g1)
    cams.add_gap(g2)
    cams.add_gap(gap("cam2", 10, 20))
    assert cams.gaps("cam1", at(0), at(10)) == []
    assert cams.gaps("cam1", at(20), at(30)) == []
    assert cams.gaps("cam1", at(19.999999), at(30)) == [g1]
    assert cams.gaps("cam1", at(5000), at(5001)) == [g2]
    assert cams.gaps("cam1", at(0), at(1e6)) == [g1, g2]


# --- concurrency ------------------------------------------------------------------------------


def test_concurrent_writers(cams: SegmentStore) -> None:
    """Two threads add 500 segments each (one also re-adds the other's): no error, all rows."""
    work = {"cam1": chain("cam1", 500), "cam2": chain("cam2", 500)}
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def writer(camera_id: str) -> None:
        try:
            barrier.wait()
            for i, rec in enumerate(work[camera_id]):
                cams.add_segment(rec)
                if camera_id == "cam2" and i % 50 == 0:
                    cams.add_segment(work["cam1"][i])  # racing duplicate: idempotent
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(c,)) for c in work]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=240)
    assert errors == []
    with cams.engine.connect() as conn:
        counts = dict(conn.execute(select(Segment.camera_id, func.count()).group_by(Segment.camera_id)).all())
    assert counts == {"cam1": 500, "cam2": 500}
    assert cams.segments("cam2", T0, at(5000)) == work["cam2"]
