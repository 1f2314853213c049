"""Reads sent together (indexer.read_batch) on SQLite and PostgreSQL: the same rows as one at a
time, one round trip on PostgreSQL, statements SQLAlchemy must process still correct, errors in
the project's error tree."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, bindparam, select, text

from domain.errors import IndexStoreError
from indexer import read_batch
from indexer.case_store import CaseStore
from indexer.footage_rows import ROOMS, ROOMS_READ
from indexer.read_batch import fetch_many, raw_rows
from indexer.segment_store import SegmentStore

ROOM_IDS = select(ROOMS.c.id).where(ROOMS.c.kind == bindparam("k")).order_by(ROOMS.c.id)
ROOMS_IN = select(ROOMS.c.id).where(ROOMS.c.id.in_(bindparam("ids", expanding=True))).order_by(ROOMS.c.id)
SERIES = text("SELECT :a + 1, :b")


@pytest.fixture
def cs(engine: Engine, store: SegmentStore) -> CaseStore:
    store.sync_rooms(
        [
            ("wait", "候问室", "waiting", [("w-a", "a", "rtsp://10.0.0.1/a")]),
            ("int-1", "讯问室1", "interrogation", [("i-a", "a", "rtsp://10.0.0.2/a")]),
            ("int-2", "讯问室2", "interrogation", []),
        ]
    )
    return CaseStore(engine)


def test_rows_equal_one_read_at_a_time(cs: CaseStore, monkeypatch: pytest.MonkeyPatch) -> None:
    pipelined: list[int] = []
    real = read_batch._pipelined

    def spy(conn: Any, batch: Any, out: Any) -> None:
        pipelined.append(len(batch))
        real(conn, batch, out)

    monkeypatch.setattr(read_batch, "_pipelined", spy)
    queries: list[read_batch.Query] = [
        ROOMS_READ,
        (ROOM_IDS, {"k": "interrogation"}),
        (SERIES, {"a": 41, "b": "甲"}),
        (ROOMS_IN, {"ids": ["wait", "int-2", "nope"]}),  # expanding IN: SQLAlchemy must render it
        (ROOM_IDS, {"k": "no such kind"}),
    ]
    with cs.read_session("batch") as s:
        together = fetch_many(s, queries)
        one_by_one = [raw_rows(s, stmt, params) for stmt, params in queries]
        dialect = s.get_bind().dialect.name
    assert [[tuple(r) for r in rows] for rows in together] == [
        [tuple(r) for r in rows] for rows in one_by_one
    ]
    assert together[1] == [("int-1",), ("int-2",)]
    assert together[2] == [(42, "甲")]
    assert together[3] == [("int-2",), ("wait",)]
    assert together[4] == []
    # PostgreSQL: the four plain statements in one pipeline, the expanding one through the session
    assert pipelined == ([4] if dialect == "postgresql" else [])


def test_a_failing_read_is_the_projects_error_and_the_store_goes_on(cs: CaseStore) -> None:
    with pytest.raises(IndexStoreError), cs.read_session("batch with a failure") as s:
        fetch_many(s, [ROOMS_READ, (text("SELECT x FROM no_such_table"), None), (SERIES, {"a": 1, "b": "x"})])
    with cs.read_session("after it") as s:
        rows = fetch_many(s, [ROOMS_READ, (SERIES, {"a": 1, "b": "x"})])
    assert len(rows[0]) == 3 and rows[1] == [(2, "x")]


def test_statements_built_per_call_do_not_grow_the_cache(cs: CaseStore) -> None:
    with cs.read_session("fresh statements") as s:
        for k in range(read_batch.MAX_COMPILED + 20):
            rows = fetch_many(
                s,
                [
                    (select(ROOMS.c.id).where(ROOMS.c.id == bindparam("r")), {"r": "wait"}),
                    (text(f"SELECT {k}"), None),
                ],
            )
            assert rows == [[("wait",)], [(k,)]]
    assert len(read_batch._COMPILED) <= read_batch.MAX_COMPILED
