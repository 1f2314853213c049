"""Rebuild the segment and gap rows of the index from the sidecar JSON kept in storage.

Storage is the truth; the index can always be rebuilt from it (after losing or dropping the
database, or to check it). Each sidecar is ``SegmentRecord.to_json()`` (``"kind": "segment"``)
or ``GapRecord.to_json()`` (``"kind": "gap"``). Reindexing is idempotent: rows already present
and identical are skipped. Bad input never stops the run: malformed sidecars and sidecars that
conflict with what is indexed are reported with their key, as are breaks of each camera's
hash chain (``prev_sha256`` of a segment must be the ``sha256`` of the camera's previous seq).

Cameras that footage names but the configuration no longer lists are added as inactive
cameras without a room (footage is never dropped from the index for want of a camera row).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, NamedTuple

from domain.errors import ConflictError, NotFoundError, ValidationFailed, VauditError
from domain.types import SYSTEM_KEY_PREFIX, BlobReader, GapRecord, SegmentRecord
from indexer.segment_store import SegmentStore

log = logging.getLogger(__name__)

_BATCH = 500

Sidecar = Mapping[str, Any] | tuple[str, Mapping[str, Any] | bytes | str | Exception]


class ChainLink(NamedTuple):
    """What the hash chain check needs of a segment."""

    camera_id: str
    seq: int
    storage_key: str
    sha256: str
    prev_sha256: str | None

    @classmethod
    def of(cls, rec: SegmentRecord) -> ChainLink:
        return cls(rec.camera_id, rec.seq, rec.storage_key, rec.sha256, rec.prev_sha256)


@dataclass(frozen=True, slots=True)
class ChainBreak:
    """A place where a camera's hash chain does not link.

    ``reason``: ``prev_mismatch`` (prev_sha256 is not the previous segment's sha256),
    ``chain_restart`` (prev_sha256 empty in the middle of the chain), ``missing_seq`` (seqs
    between ``expected`` and ``found`` have no segment), ``duplicate_seq`` (two segments
    with one seq).
    """

    camera_id: str
    seq: int
    storage_key: str
    reason: str
    expected: str | None
    found: str | None


@dataclass(frozen=True, slots=True)
class SidecarProblem:
    key: str
    reason: str


@dataclass
class ReindexReport:
    segments_seen: int = 0
    segments_added: int = 0
    segments_present: int = 0
    gaps_seen: int = 0
    gaps_added: int = 0
    gaps_present: int = 0
    cameras_created: list[str] = field(default_factory=list)
    malformed: list[SidecarProblem] = field(default_factory=list)
    conflicts: list[SidecarProblem] = field(default_factory=list)
    chain_breaks: list[ChainBreak] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """True if every sidecar was indexed and every chain links."""
        return not (self.malformed or self.conflicts or self.chain_breaks)


def verify_chain(records: Iterable[SegmentRecord | ChainLink]) -> list[ChainBreak]:
    """Check every camera's hash chain (pure: plain data in, breaks out).

    Segments are ordered by seq per camera; the first segment of each camera is accepted as
    the start of what is known (older segments may have passed their retention).
    """
    per_camera: dict[str, dict[str, ChainLink]] = {}
    for item in records:
        link = item if isinstance(item, ChainLink) else ChainLink.of(item)
        per_camera.setdefault(link.camera_id, {})[link.storage_key] = link
    breaks: list[ChainBreak] = []
    for camera_id in sorted(per_camera):
        links = sorted(per_camera[camera_id].values(), key=lambda x: (x.seq, x.storage_key))
        for prev, cur in pairwise(links):
            if cur.seq == prev.seq:
                reason, expected, found = "duplicate_seq", prev.storage_key, cur.storage_key
            elif cur.seq > prev.seq + 1:
                reason, expected, found = "missing_seq", str(prev.seq + 1), str(cur.seq)
            elif cur.prev_sha256 is None:
                reason, expected, found = "chain_restart", prev.sha256, None
            elif cur.prev_sha256 != prev.sha256:
                reason, expected, found = "prev_mismatch", prev.sha256, cur.prev_sha256
            else:
                continue
            breaks.append(ChainBreak(camera_id, cur.seq, cur.storage_key, reason, expected, found))
    return breaks


_SEGMENT_TYPES: dict[str, tuple[type, ...]] = {
    "camera_id": (str,),
    "run_id": (str,),
    "seq": (int,),
    "storage_key": (str,),
    "size": (int,),
    "sha256": (str,),
    "prev_sha256": (str, type(None)),
    "container": (str,),
    "sm3": (str, type(None)),
    "packets": (int,),
    "recovered": (bool,),
}
_STREAM_TYPES: dict[str, tuple[type, ...]] = {
    "video_codec": (str,),
    "width": (int,),
    "height": (int,),
    "audio_codec": (str, type(None)),
    "audio_sample_rate": (int, type(None)),
    "audio_channels": (int, type(None)),
}
_GAP_TYPES: dict[str, tuple[type, ...]] = {"camera_id": (str,), "detail": (str,), "gap_id": (str,)}


def _check_types(obj: object, types: dict[str, tuple[type, ...]]) -> None:
    for name, allowed in types.items():
        value = getattr(obj, name)
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            raise ValueError(f"field {name!r} has {type(value).__name__} {value!r}")


def parse_sidecar(data: Mapping[str, Any] | bytes | str) -> SegmentRecord | GapRecord:
    """A sidecar's record. ValueError (with a readable reason) if it is not a valid sidecar."""
    if isinstance(data, bytes | str):
        try:
            data = json.loads(data)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"not JSON: {exc}") from exc
    if not isinstance(data, Mapping):
        raise ValueError(f"not a JSON object but {type(data).__name__}")
    kind = data.get("kind")
    try:
        if kind == "segment":
            seg = SegmentRecord.from_json(dict(data))
            _check_types(seg, _SEGMENT_TYPES)
            _check_types(seg.stream, _STREAM_TYPES)
            return seg
        if kind == "gap":
            gap = GapRecord.from_json(dict(data))
            _check_types(gap, _GAP_TYPES)
            return gap
    except KeyError as exc:
        raise ValueError(f"{kind} sidecar lacks field {exc}") from exc
    except (TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"bad {kind} sidecar: {exc}") from exc
    raise ValueError(f"unknown sidecar kind {kind!r}")


def sidecars_in(reader: BlobReader, prefix: str = "") -> Iterator[tuple[str, bytes | Exception]]:
    """Every closed sidecar under ``prefix`` in storage, as (key, bytes); a read failure is
    passed on as the exception so :func:`reindex` reports it instead of stopping."""
    for key in reader.list(prefix):
        name = key.rsplit("/", 1)[-1]
        if not key.endswith(".json") or key.endswith(".partial.json") or name == "state.json":
            continue
        if key.startswith(SYSTEM_KEY_PREFIX):
            continue  # the system's own records (audit anchors), not a camera's sidecars
        try:
            with reader.open(key) as stream:
                yield key, stream.read()
        except (OSError, VauditError) as exc:
            yield key, exc


def _key_of(item: Sidecar, index: int) -> tuple[str, Mapping[str, Any] | bytes | str | Exception]:
    if isinstance(item, tuple):
        return item[0], item[1]
    key = item.get("storage_key") or item.get("gap_id") or f"#{index}"
    return str(key), item


class _Reindexer:
    def __init__(self, store: SegmentStore) -> None:
        self.store = store
        self.report = ReindexReport()
        self.links: list[ChainLink] = []
        self.pending: list[tuple[str, SegmentRecord]] = []

    def _ensure(self, camera_id: str) -> None:
        if self.store.ensure_camera(camera_id):
            self.report.cameras_created.append(camera_id)

    def segment(self, key: str, rec: SegmentRecord) -> None:
        self.report.segments_seen += 1
        self.pending.append((key, rec))
        if len(self.pending) >= _BATCH:
            self.flush()

    def flush(self) -> None:
        batch, self.pending = self.pending, []
        if not batch:
            return
        try:
            added = self._add_batch([rec for _, rec in batch])
        except (ConflictError, ValidationFailed):
            added = sum(self._add_one(key, rec) for key, rec in batch)  # find the culprit(s)
        else:
            self.links.extend(ChainLink.of(rec) for _, rec in batch)
        self.report.segments_added += added

    def _add_batch(self, recs: list[SegmentRecord]) -> int:
        try:
            added = self.store.add_segments(recs)
        except NotFoundError:
            for camera_id in sorted({r.camera_id for r in recs}):
                self._ensure(camera_id)
            added = self.store.add_segments(recs)
        self.report.segments_present += len(recs) - added
        return added

    def _add_one(self, key: str, rec: SegmentRecord) -> int:
        try:
            try:
                added = self.store.add_segment(rec)
            except NotFoundError:
                self._ensure(rec.camera_id)
                added = self.store.add_segment(rec)
        except ConflictError as exc:
            self.report.conflicts.append(SidecarProblem(key, exc.message))
            return 0
        except ValidationFailed as exc:
            self.report.malformed.append(SidecarProblem(key, exc.message))
            return 0
        self.links.append(ChainLink.of(rec))
        if not added:
            self.report.segments_present += 1
        return int(added)

    def gap(self, key: str, gap: GapRecord) -> None:
        self.report.gaps_seen += 1
        try:
            try:
                added = self.store.add_gap(gap)
            except NotFoundError:
                self._ensure(gap.camera_id)
                added = self.store.add_gap(gap)
        except ConflictError as exc:
            self.report.conflicts.append(SidecarProblem(key, exc.message))
            return
        except ValidationFailed as exc:
            self.report.malformed.append(SidecarProblem(key, exc.message))
            return
        if added:
            self.report.gaps_added += 1
        else:
            self.report.gaps_present += 1


def reindex(store: SegmentStore, sidecars: Iterable[Sidecar]) -> ReindexReport:
    """Index every segment and gap described by ``sidecars`` and check the hash chains.

    Each item is a parsed sidecar (a dict; reported by its storage_key/gap_id) or a pair
    ``(sidecar key, dict | raw JSON bytes/str | exception raised reading it)``, as yielded
    by :func:`sidecars_in`. Database failures (IndexStoreError) propagate: a run that cannot
    write is not a report. Memory: one small tuple per segment for the chain check.
    """
    work = _Reindexer(store)
    for index, item in enumerate(sidecars):
        key, data = _key_of(item, index)
        if isinstance(data, Exception):
            work.report.malformed.append(SidecarProblem(key, f"unreadable: {data}"))
            continue
        try:
            rec = parse_sidecar(data)
        except ValueError as exc:
            work.report.malformed.append(SidecarProblem(key, str(exc)))
            continue
        if isinstance(rec, SegmentRecord):
            work.segment(key, rec)
        else:
            work.gap(key, rec)
    work.flush()
    # Runs left dirty by deleted segments (retention) are recomputed; new ones were kept by the store.
    store.repair_runs()
    report = work.report
    report.chain_breaks = verify_chain(work.links)
    log.info(
        "reindex: %d segments (%d added), %d gaps (%d added), %d malformed, %d conflicts, %d chain breaks",
        report.segments_seen,
        report.segments_added,
        report.gaps_seen,
        report.gaps_added,
        len(report.malformed),
        len(report.conflicts),
        len(report.chain_breaks),
    )
    for problem in report.malformed + report.conflicts:
        log.warning("reindex: %s: %s", problem.key, problem.reason)
    for brk in report.chain_breaks:
        log.warning(
            "hash chain break: camera %s seq %d (%s): %s", brk.camera_id, brk.seq, brk.storage_key, brk.reason
        )
    return report
