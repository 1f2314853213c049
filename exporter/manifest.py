"""The disc manifest: every file with its size, SHA-256, SM3, format, duration and sources.

The manifest is the one document the signature covers. Files that depend on the disc they sit on
(``disc.json``, ``disc.js``, the checksum lists, the manifest and its signature) are not in it;
``SHA256SUMS``/``SM3SUMS`` list every file of one disc (manifest included) so a reader with only
``sha256sum -c`` can check a disc.

JSON is written canonically (sorted keys, fixed separators) so the same export gives the same
bytes, hence the same signature and the same image.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from domain.types import iso
from exporter.plan import ExportPlan

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
SIGNATURE = "manifest.json.sig"
SHA256SUMS = "SHA256SUMS"
SM3SUMS = "SM3SUMS"
DISC_JSON = "disc.json"
DISC_JS = "disc.js"
PER_DISC_FILES = (MANIFEST, SIGNATURE, SHA256SUMS, SM3SUMS, DISC_JSON, DISC_JS)
FORMAT = "video-audit-disc/1"
CHUNK = 1024 * 1024


def canonical_json(data: Any) -> bytes:
    return (json.dumps(data, ensure_ascii=False, sort_keys=True, indent=1) + "\n").encode("utf-8")


@dataclass(frozen=True, slots=True)
class Digest:
    size: int
    sha256: str
    sm3: str


def hash_stream(read: Callable[[int], bytes]) -> Digest:
    """SHA-256 and SM3 (GB/T 32905, what Chinese courts' tools check) in one streaming pass."""
    sha, sm3 = hashlib.sha256(), hashlib.new("sm3")
    size = 0
    while chunk := read(CHUNK):
        sha.update(chunk)
        sm3.update(chunk)
        size += len(chunk)
    return Digest(size, sha.hexdigest(), sm3.hexdigest())


def hash_file(path: Path) -> Digest:
    with path.open("rb") as fh:
        return hash_stream(fh.read)


@dataclass(slots=True)
class FileEntry:
    path: str  # POSIX path on the disc, relative to its root
    size: int
    sha256: str
    sm3: str
    role: str  # video | subtitles | chapters | original | original_remux | sidecar | statement | ...
    format: str  # e.g. "mp4 (h264, aac, mov_text)", "mpegts", "json", "pdf"
    duration: float | None = None
    stage: str | None = None
    camera: str | None = None
    rendition: str | None = None
    start: str | None = None  # wall clock covered (ISO UTC), for media
    end: str | None = None
    sources: list[dict[str, Any]] = field(default_factory=list)
    discs: dict[str, int] = field(default_factory=dict)  # copy -> disc number; absent: not on that copy
    common: bool = False  # on every disc of a copy (page, statement, reports, verifier, key)
    # G.711 sound the file carries (originals and their remux): codec, sample_rate, bytes, sha256
    # of the payload, and for a remux each source's share ("parts"); the verifiers re-derive it.
    g711: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "path": self.path,
            "size": self.size,
            "sha256": self.sha256,
            "sm3": self.sm3,
            "role": self.role,
            "format": self.format,
            "discs": self.discs,
            "common": self.common,
        }
        optional = {
            "duration": self.duration,
            "stage": self.stage,
            "camera": self.camera,
            "rendition": self.rendition,
            "start": self.start,
            "end": self.end,
        }
        data.update({k: v for k, v in optional.items() if v is not None})
        if self.sources:
            data["sources"] = self.sources
        if self.g711 is not None:
            data["g711"] = self.g711
        return data


def entry_for(root: Path, rel: str, role: str, fmt: str, **extra: Any) -> FileEntry:
    digest = hash_file(root / rel)
    return FileEntry(rel, digest.size, digest.sha256, digest.sm3, role, fmt, **extra)


def sums_text(rows: Iterable[tuple[str, str]]) -> bytes:
    """``sha256sum``/``sm3sum`` format: hash, two spaces, path; sorted by path."""
    return "".join(f"{digest}  {path}\n" for path, digest in sorted(rows, key=lambda r: r[0])).encode()


def build_manifest(header: dict[str, Any], files: Sequence[FileEntry]) -> bytes:
    data = dict(header)
    data["format"] = FORMAT
    data["files"] = [f.to_json() for f in sorted(files, key=lambda f: f.path)]
    return canonical_json(data)


def export_header(
    plan: ExportPlan,
    *,
    export_id: str,
    created: datetime,
    time_zone: str,
    alerts: Sequence[dict[str, Any]],
    allow_unexplained: bool,
    late_entries: Sequence[dict[str, Any]] = (),
    media: dict[str, Any],
    copies: dict[str, int],
    fingerprint: str,
    custody: dict[str, Any],
    generator: dict[str, str],
) -> dict[str, Any]:
    """Everything the manifest says besides its file list: case, subject, officers, stages with
    their events (late ones marked), gaps, unexplained intervals, late entries, alerts, media,
    copies, key and custody."""
    req = plan.request
    late_events = {x["id"] for x in late_entries if x.get("kind") == "event"}
    return {
        "export_id": export_id,
        "created": iso(created),
        "time_zone": time_zone,
        "case": {"number": req.case.case_number, "title": req.case.title, "charge": req.case.charge},
        "subject": {
            "subject_id": req.subject.subject_id,
            "name": req.subject.name,
            "id_number": req.subject.id_number,
            "role": req.subject.role,
            "minor": req.subject.minor,
        },
        "officers": [
            {"name": o.name, "role": o.role.value, "officer_id": o.officer_id, "badge": o.badge}
            for o in req.officers
        ],
        "place": req.place,
        "range": {"start": iso(plan.range.start), "end": iso(plan.range.end)},
        "stages": [
            {
                "slug": s.slug,
                "kind": s.kind.value,
                "number": s.number,
                "label_zh": s.label_zh,
                "label_en": s.label_en,
                "start": iso(s.interval.start),
                "end": iso(s.interval.end),
                "rooms": list(s.room_ids),
                "cameras": [c.camera_id for c in s.cameras],
                "events": [
                    {
                        "type": e.type.value,
                        "time": iso(e.time),
                        "event_id": e.event_id,
                        "late": e.event_id in late_events,
                    }
                    for e in s.events
                ],
            }
            for s in plan.stages
        ],
        "gaps": [{**g.to_json(), "stage": s.slug} for s, g in plan.gaps],
        "unexplained": [{"start": iso(r.start), "end": iso(r.end)} for r in plan.unexplained],
        "late_entries": [dict(x) for x in late_entries],
        "alerts": [
            {k: a.get(k) for k in ("id", "rule", "severity", "state", "start", "end", "room_id", "camera_id")}
            for a in alerts
        ],
        "allow_unexplained": allow_unexplained,
        "media": media,
        "copies": copies,
        "public_key": {"algorithm": "Ed25519", "fingerprint_sha256": fingerprint, "path": "public_key.pem"},
        "custody": custody,
        "generator": generator,
    }
