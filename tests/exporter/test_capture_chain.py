"""Seal only what the capture chain vouches for (issue 16, point 5): a stored segment swapped and its
new hash put in the index is refused at export, naming the segment and the disagreement, whether
the attacker left its sidecar as it was (the sidecar disagrees) or rewrote that too (the next
segment's back-link disagrees, also across the edge of the plan through the index's neighbours).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest

from domain.types import SegmentRecord, StayFootage, sidecar_key
from exporter.capture_chain import CaptureChain
from exporter.errors import SourceIntegrityError
from exporter.job import ExportOptions, run_export
from exporter.plan import build_plan
from tests.exporter.conftest import REF
from tests.exporter.scenario import DirReader, Scenario


@pytest.fixture
def copy(scenario: tuple[Scenario, Path], tmp_path: Path) -> Scenario:
    sc, _key = scenario
    root = tmp_path / "store"
    shutil.copytree(sc.root, root)
    for p in root.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    return dataclasses.replace(sc, root=root, reader=DirReader(root))


def _camera(sc: Scenario, camera_id: str) -> list[SegmentRecord]:
    return sorted((s for s in sc.segments if s.camera_id == camera_id), key=lambda s: s.seq)


def _swap(sc: Scenario, rec: SegmentRecord, rewrite_sidecar: bool = False) -> SegmentRecord:
    """The attack: other bytes in storage, their hash in the index (returned), and perhaps in the
    segment's own sidecar too."""
    import hashlib

    path = sc.root / rec.storage_key
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    forged = dataclasses.replace(rec, sha256=hashlib.sha256(bytes(data)).hexdigest())
    if rewrite_sidecar:
        (sc.root / sidecar_key(rec.storage_key)).write_text(json.dumps(forged.to_json()), encoding="utf-8")
    return forged


def _index_with(
    footage: list[StayFootage], forged: SegmentRecord, drop: str | None = None
) -> list[StayFootage]:
    """The footage as the (edited) index gives it: ``forged`` in place of the original, and the
    segment ``drop`` outside the plan."""
    out = []
    for fp in footage:
        cams = tuple(
            dataclasses.replace(
                c,
                segments=tuple(
                    forged if s.storage_key == forged.storage_key else s
                    for s in c.segments
                    if s.storage_key != drop
                ),
            )
            for c in fp.cameras
        )
        out.append(dataclasses.replace(fp, cameras=cams))
    return out


def _lookup(sc: Scenario, replaced: SegmentRecord | None = None):  # type: ignore[no-untyped-def]
    def neighbours(camera_id: str, seqs: list[int]) -> dict[int, SegmentRecord]:
        found = {s.seq: s for s in _camera(sc, camera_id) if s.seq in seqs}
        if replaced is not None and replaced.camera_id == camera_id and replaced.seq in found:
            found[replaced.seq] = replaced
        return found

    return neighbours


def test_an_untouched_chain_vouches_for_every_segment(copy: Scenario) -> None:
    assert CaptureChain(copy.reader, _lookup(copy)).problems(copy.segments) == []


def test_swapped_segment_with_its_hash_in_the_index_is_refused_at_export(
    copy: Scenario, scenario: tuple[Scenario, Path], tmp_path: Path
) -> None:
    victim = _camera(copy, "cam-int")[0]
    forged = _swap(copy, victim)
    plan = build_plan(copy.request, _index_with(copy.footage, forged), copy.events, copy.rooms)
    out = tmp_path / "out"
    with pytest.raises(SourceIntegrityError) as info:
        run_export(
            plan,
            copy.reader,
            out,
            ExportOptions(signing_key=scenario[1], reference_time=REF),
            neighbours=_lookup(copy, forged),
        )
    message = info.value.message
    assert victim.storage_key in message and "refusing to seal" in message
    assert (
        f"the index says SHA-256 {forged.sha256}, the recorder's stored sidecar says {victim.sha256}"
        in message
    )
    # the next segment's back-link names the original too
    problems = info.value.details["problems"]
    assert any("names it by " + victim.sha256 in p["problem"] for p in problems), problems
    assert not any(out.rglob("*.iso"))


def test_sidecar_rewritten_too_the_next_segments_back_link_refuses_it(copy: Scenario) -> None:
    cam = _camera(copy, "cam-int")
    forged = _swap(copy, cam[0], rewrite_sidecar=True)
    footage = _index_with(copy.footage, forged)
    plan = build_plan(copy.request, footage, copy.events, copy.rooms)
    segments = [s for st in plan.stages for c in st.cameras for s in c.segments]
    problems = CaptureChain(copy.reader, _lookup(copy, forged)).problems(segments)
    # the link is named from both ends (both segments are to be sealed)
    assert [(p.storage_key, p.problem) for p in problems] == [
        (
            cam[0].storage_key,
            f"the index gives SHA-256 {forged.sha256}, but the segment after it "
            f"({cam[1].storage_key}) names it by {cam[0].sha256} (prev_sha256)",
        ),
        (
            cam[1].storage_key,
            f"its sidecar names the segment before it ({cam[0].storage_key}) by SHA-256 "
            f"{cam[0].sha256}, but that segment's own sidecar records {forged.sha256}",
        ),
    ]


def test_the_chain_is_checked_across_the_plans_edge_through_the_index(copy: Scenario) -> None:
    cam = _camera(copy, "cam-int")
    last = cam[-1]
    forged = _swap(copy, cam[-2], rewrite_sidecar=True)
    footage = _index_with(copy.footage, forged, drop=last.storage_key)  # the successor is not sealed
    plan = build_plan(copy.request, footage, copy.events, copy.rooms)
    segments = [s for st in plan.stages for c in st.cameras for s in c.segments]
    assert last.storage_key not in {s.storage_key for s in segments}
    # without the index's neighbours the edge cannot be checked; with them it is
    assert CaptureChain(copy.reader).problems(segments) == []
    problems = CaptureChain(copy.reader, _lookup(copy, forged)).problems(segments)
    assert [p.storage_key for p in problems] == [cam[-2].storage_key]
    assert f"({last.storage_key}) names it by {cam[-2].sha256}" in problems[0].problem


def test_a_back_link_to_other_bytes_and_a_missing_sidecar_are_named(copy: Scenario) -> None:
    cam = _camera(copy, "cam-int")
    # the segment before was swapped, index and sidecar both: this one's back-link disagrees
    forged = _swap(copy, cam[0], rewrite_sidecar=True)
    problems = CaptureChain(copy.reader, _lookup(copy, forged)).problems([cam[1]])
    assert [p.storage_key for p in problems] == [cam[1].storage_key]
    assert (
        f"names the segment before it ({cam[0].storage_key}) by SHA-256 {cam[0].sha256}"
        in problems[0].problem
    )
    (copy.root / sidecar_key(cam[1].storage_key)).unlink()
    problems = CaptureChain(copy.reader).problems([cam[1]])
    assert [str(p) for p in problems] == [
        f"{cam[1].storage_key}: no sidecar is stored beside it: only the index vouches for this segment"
    ]
