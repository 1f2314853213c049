"""Before a disc is sealed: does the capture chain vouch for every segment the index names?

The index is one witness; someone who can write to it can swap a segment's bytes in storage and
put the new bytes' hash in the index, and an export that checks bytes against the index alone
would seal the swap. The recorder left two more witnesses the index does not control: each
segment's own sidecar (its record, written at capture and stored beside it) and the per-camera
hash chain (each sidecar's ``prev_sha256`` names the segment before it). For every segment the
export would seal, :class:`CaptureChain` checks that

* its stored sidecar exists and agrees with the index (hash, size, sequence, camera, times,
  back-link), and
* the chain agrees across both of its edges: its ``prev_sha256`` is the hash the segment before it
  (seq - 1, as the index finds it) records in its own sidecar, and the segment after it names it by
  the hash the index gives it.

A segment whose back-link is empty (its camera's chain started again, e.g. a new spool) has no
claim on the segment before it; that is no disagreement. Bytes are checked against the hash
while they are copied (exporter/job.py). Someone who can rewrite the stored sidecars too
defeats this; the evidence storage's WORM lock is what stops that (docs/design/export.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from domain.types import BlobReader, SegmentRecord, iso, sidecar_key
from exporter.errors import SourceIntegrityError
from indexer.reindex import parse_sidecar

# The index's records of a camera's segments with these sequence numbers (those it has).
NeighbourLookup = Callable[[str, Sequence[int]], Mapping[int, SegmentRecord]]
# Problems named in the refusal's message (all are in its details).
MESSAGE_PROBLEMS = 5


@dataclass(frozen=True, slots=True)
class ChainProblem:
    storage_key: str
    problem: str

    def __str__(self) -> str:
        return f"{self.storage_key}: {self.problem}"


class CaptureChain:
    """Reads stored sidecars (each once) and checks segments against them and the chain."""

    def __init__(self, reader: BlobReader, neighbours: NeighbourLookup | None = None) -> None:
        self._reader = reader
        self._neighbours = neighbours
        self.sidecars: dict[str, bytes | None] = {}

    def sidecar_bytes(self, key: str) -> bytes | None:
        """The stored sidecar of segment ``key`` as stored, or None if there is none."""
        if key not in self.sidecars:
            try:
                with self._reader.open(sidecar_key(key)) as fh:
                    self.sidecars[key] = fh.read()
            except Exception:  # any back end's "not there" (NotFoundError, a closed bucket)
                self.sidecars[key] = None
        return self.sidecars[key]

    def _recorded(self, rec: SegmentRecord, problems: list[ChainProblem]) -> SegmentRecord | None:
        raw = self.sidecar_bytes(rec.storage_key)
        if raw is None:
            problems.append(
                ChainProblem(
                    rec.storage_key, "no sidecar is stored beside it: only the index vouches for this segment"
                )
            )
            return None
        try:
            side = parse_sidecar(raw)
        except ValueError as exc:
            problems.append(ChainProblem(rec.storage_key, f"its stored sidecar is unreadable ({exc})"))
            return None
        if not isinstance(side, SegmentRecord):
            problems.append(ChainProblem(rec.storage_key, "its stored sidecar is not a segment's"))
            return None
        return side

    def problems(self, segments: Iterable[SegmentRecord]) -> list[ChainProblem]:
        """Every disagreement between the index's ``segments`` and the capture chain."""
        out: list[ChainProblem] = []
        by_camera: dict[str, dict[int, SegmentRecord]] = {}
        for rec in segments:
            by_camera.setdefault(rec.camera_id, {})[rec.seq] = rec
        for camera_id, own in sorted(by_camera.items()):
            wanted = sorted({s for seq in own for s in (seq - 1, seq + 1)} - set(own))
            near = (
                dict(self._neighbours(camera_id, wanted)) if self._neighbours is not None and wanted else {}
            )
            out += self._camera(own, {**near, **own})
        return out

    def _camera(self, own: dict[int, SegmentRecord], index: dict[int, SegmentRecord]) -> list[ChainProblem]:
        """One camera: ``own`` the segments to seal, ``index`` those and their neighbours (by seq)."""
        out: list[ChainProblem] = []
        recorded: dict[int, SegmentRecord | None] = {}

        def sidecar(seq: int) -> SegmentRecord | None:
            if seq not in recorded:
                found: list[ChainProblem] = []
                recorded[seq] = self._recorded(index[seq], found)
                if seq in own:  # a neighbour's missing sidecar is its own export's business
                    out.extend(found)
            return recorded[seq]

        for seq in sorted(own):
            rec = own[seq]
            side = sidecar(seq)
            if side is None:
                continue
            out.extend(ChainProblem(rec.storage_key, p) for p in _disagreements(rec, side))
            before = index.get(seq - 1)
            if side.prev_sha256 is not None and before is not None:
                prev_side = sidecar(seq - 1)
                if prev_side is not None and prev_side.sha256 != side.prev_sha256:
                    out.append(
                        ChainProblem(
                            rec.storage_key,
                            (
                                f"its sidecar names the segment before it ({before.storage_key}) by SHA-256 "
                                f"{side.prev_sha256}, but that segment's own sidecar records {prev_side.sha256}"
                            ),
                        )
                    )
            after = index.get(seq + 1)
            if after is not None:
                next_side = sidecar(seq + 1)
                if (
                    next_side is not None
                    and next_side.prev_sha256 is not None
                    and next_side.prev_sha256 != rec.sha256
                ):
                    out.append(
                        ChainProblem(
                            rec.storage_key,
                            (
                                f"the index gives SHA-256 {rec.sha256}, but the segment after it "
                                f"({after.storage_key}) names it by {next_side.prev_sha256} (prev_sha256)"
                            ),
                        )
                    )
        return out

    def check(self, segments: Iterable[SegmentRecord]) -> None:
        """:class:`SourceIntegrityError` naming every segment the capture chain does not vouch for."""
        problems = self.problems(segments)
        if not problems:
            return
        shown = "; ".join(str(p) for p in problems[:MESSAGE_PROBLEMS])
        more = f" (and {len(problems) - MESSAGE_PROBLEMS} more)" if len(problems) > MESSAGE_PROBLEMS else ""
        raise SourceIntegrityError(
            f"the capture chain does not vouch for {len({p.storage_key for p in problems})} segment(s); "
            f"refusing to seal: {shown}{more}",
            problems=[{"key": p.storage_key, "problem": p.problem} for p in problems],
        )


def _disagreements(index: SegmentRecord, side: SegmentRecord) -> list[str]:
    out = []
    for name, a, b in (
        ("SHA-256", index.sha256, side.sha256),
        ("size", index.size, side.size),
        ("sequence number", index.seq, side.seq),
        ("camera", index.camera_id, side.camera_id),
        ("storage key", index.storage_key, side.storage_key),
        ("start", iso(index.start), iso(side.start)),
        ("end", iso(index.end), iso(side.end)),
        ("prev_sha256", index.prev_sha256, side.prev_sha256),
    ):
        if a != b:
            out.append(f"the index says {name} {a}, the recorder's stored sidecar says {b}")
    return out
