"""Rebuilding the index from sidecars: pure parsing and chain checks, then the full run."""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Iterator
from typing import Any, BinaryIO

import pytest
from sqlalchemy import Engine

from domain.types import GapRecord, SegmentRecord, sidecar_key
from indexer.database import downgrade, upgrade
from indexer.reindex import ChainLink, parse_sidecar, reindex, sidecars_in, verify_chain
from indexer.segment_store import SegmentStore
from tests.indexer.factories import at, chain, gap, rooms

# --- pure ---------------------------------------------------------------------------------------


def test_intact_chain_has_no_breaks() -> None:
    recs = chain("cam1", 5) + chain("cam2", 3, prev="0" * 64)
    assert verify_chain(reversed(recs)) == []  # input order does not matter


def test_chain_breaks_are_found() -> None:
    recs = chain("cam1", 6)
    recs[2] = dataclasses.replace(recs[2], prev_sha256="e" * 64)  # tampered link
    recs[4] = dataclasses.replace(recs[4], prev_sha256=None)  # chain restarted
    del recs[5]
    recs.append(chain("cam1", 1, first_seq=7, prev=recs[-1].sha256)[0])  # seq 5, 6 missing
    twin = dataclasses.replace(recs[0], storage_key="cam1/other.ts")  # a second seq 0
    breaks = verify_chain([*recs, twin])
    found = [(b.seq, b.reason) for b in breaks]
    assert found == [(0, "duplicate_seq"), (2, "prev_mismatch"), (4, "chain_restart"), (7, "missing_seq")]
    assert breaks[1].expected == recs[1].sha256 and breaks[1].found == "e" * 64
    assert (breaks[3].expected, breaks[3].found) == ("5", "7")
    assert all(b.camera_id == "cam1" for b in breaks)


def test_chain_links_and_records_agree() -> None:
    recs = chain("cam1", 3)
    assert verify_chain(ChainLink.of(r) for r in recs) == verify_chain(recs) == []


def test_parse_sidecar_accepts_both_kinds_and_refuses_garbage() -> None:
    seg, g = chain("cam1", 1)[0], gap("cam1", 0, 5)
    assert parse_sidecar(seg.to_json()) == seg
    assert parse_sidecar(json.dumps(g.to_json()).encode()) == g
    bad: list[Any] = [
        b"{not json",
        "[1, 2]",
        {"kind": "segment"},
        {"kind": "mystery"},
        {**seg.to_json(), "start": "yesterday"},
        {**seg.to_json(), "seq": "7"},
        {**seg.to_json(), "extra": 1},
        {**g.to_json(), "end": "2020-01-01T00:00:00Z"},  # ends before it starts
    ]
    for item in bad:
        with pytest.raises(ValueError):
            parse_sidecar(item)


# --- against a database -------------------------------------------------------------------------


class _Blobs:
    """A BlobReader over a dict (what storage would hold)."""

    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = objects

    def open(self, key: str) -> BinaryIO:
        if key.endswith("broken.json"):
            raise OSError("disk read error")
        return io.BytesIO(self.objects[key])

    def size(self, key: str) -> int:
        return len(self.objects[key])

    def list(self, prefix: str) -> Iterator[str]:
        return iter(sorted(k for k in self.objects if k.startswith(prefix)))


def _footage() -> tuple[list[SegmentRecord], list[GapRecord]]:
    segs = chain("cam1", 30) + chain("cam2", 20, start=1000)
    gaps = [gap("cam1", 300, 400), gap("cam2", 900, 1000)]
    return segs, gaps


def test_reindex_rebuilds_a_dropped_database(engine: Engine, store: SegmentStore) -> None:
    segs, gaps = _footage()
    store.sync_rooms(rooms("cam1", "cam2"))
    store.add_segments(segs)
    for g in gaps:
        store.add_gap(g)
    before = (store.segments("cam1", at(0), at(5000)), store.gaps("cam2", at(0), at(5000)))

    downgrade(engine, "base")  # the database is gone...
    upgrade(engine)
    fresh = SegmentStore(engine)
    fresh.sync_rooms(rooms("cam1", "cam2"))  # ...configuration comes back at start-up
    sidecars = [r.to_json() for r in segs] + [g.to_json() for g in gaps]
    report = reindex(fresh, sidecars)

    assert report.clean, report
    assert (report.segments_seen, report.segments_added, report.gaps_added) == (50, 50, 2)
    assert (fresh.segments("cam1", at(0), at(5000)), fresh.gaps("cam2", at(0), at(5000))) == before

    again = reindex(fresh, reversed(sidecars))  # idempotent
    assert (again.segments_added, again.segments_present, again.gaps_added, again.gaps_present) == (
        0,
        50,
        0,
        2,
    )
    assert again.clean
    assert len(fresh.segments("cam1", at(0), at(5000))) == 30


def test_reindex_from_storage_reports_bad_sidecars_and_goes_on(store: SegmentStore) -> None:
    segs, gaps = _footage()
    store.sync_rooms(rooms("cam1"))  # cam2 is no longer configured
    objects = {sidecar_key(r.storage_key): json.dumps(r.to_json()).encode() for r in segs}
    objects.update({f"{g.camera_id}/gaps/{g.gap_id}.json": json.dumps(g.to_json()).encode() for g in gaps})
    objects["cam1/2026/03/01/bad.json"] = b"{truncated"
    objects["cam1/2026/03/01/broken.json"] = b"{}"
    objects["cam1/2026/03/01/x.partial.json"] = b"{}"  # never uploaded, but ignored if found
    objects["cam1/2026/03/01/a.ts"] = b"\x47" * 188  # media, not a sidecar

    report = reindex(store, sidecars_in(_Blobs(objects)))

    assert {p.key for p in report.malformed} == {"cam1/2026/03/01/bad.json", "cam1/2026/03/01/broken.json"}
    assert report.segments_added == 50 and report.gaps_added == 2
    assert report.cameras_created == ["cam2"]
    assert report.chain_breaks == [] and report.conflicts == []
    assert len(store.segments("cam2", at(0), at(5000))) == 20


def test_reindex_reports_chain_breaks_and_conflicts(store: SegmentStore) -> None:
    store.sync_rooms(rooms("cam1"))
    segs = chain("cam1", 10)
    store.add_segment(segs[0])
    tampered = dataclasses.replace(segs[5], prev_sha256="a" * 64)
    sidecars: list[Any] = [r.to_json() for r in segs[:5]] + [tampered.to_json()]
    sidecars += [r.to_json() for r in segs[6:]]
    sidecars.append(dataclasses.replace(segs[0], size=1).to_json())  # differs from the indexed row
    sidecars.append({"kind": "segment", "camera_id": "cam1"})  # malformed, keyed by index
    sidecars.append(("cam1/weird.json", "{}"))

    report = reindex(store, sidecars)

    assert [(b.seq, b.reason) for b in report.chain_breaks] == [(5, "prev_mismatch")]
    assert report.chain_breaks[0].storage_key == segs[5].storage_key
    assert [c.key for c in report.conflicts] == [segs[0].storage_key]
    assert {m.key for m in report.malformed} == {"#11", "cam1/weird.json"}
    assert report.segments_added == 9 and not report.clean
    assert len(store.segments("cam1", at(0), at(1000))) == 10
