"""The export job: plan -> originals -> videos -> pages, statement, reports -> manifest, signature ->
master and working disc images.

Constant memory: every byte is streamed (copy, remux, hash, image) in chunks of at most a few
MiB; nothing holds a whole file. Progress is reported as a fraction with a message; ``cancel``
is checked between chunks and sources, and a cancelled (or failed) job removes everything it
wrote. A job is not resumed: re-running it starts over and, the output being deterministic,
gives the same images.
"""

from __future__ import annotations

import ctypes
import json
import logging
import re
import shutil
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO
from zoneinfo import ZoneInfo

from domain.types import BlobReader, iso, sidecar_key
from exporter import disc_page, manifest, statement
from exporter.capture_chain import CaptureChain, NeighbourLookup
from exporter.disc_page import event_label, gap_label
from exporter.errors import DiscCapacityError, ExportCancelled, SourceIntegrityError
from exporter.iso_image import (
    ImageFile,
    assign_discs,
    build_image,
    disc_footprint,
    media_capacity,
    volume_label,
)
from exporter.lanes import Caption, Mark, local_stamp
from exporter.manifest import FileEntry, entry_for
from exporter.plan import ExportPlan, Stage
from exporter.remux import FOUR_GIB, RemuxOptions, RenderedFile, SourceMedia, render_camera
from exporter.signing import load_signing_key, public_key_info, sign

log = logging.getLogger(__name__)

Progress = Callable[[float, str], None]
EVENT_CAPTION_SECONDS = 10
COPY_CHUNK = 4 * 1024 * 1024
VERSION = "0.1.0"


@dataclass(frozen=True, slots=True)
class ExportOptions:
    signing_key: Path
    media: str | int = "dvd5"  # dvd5 | dvd9 | bd25 | bd50 | a byte count
    time_zone: str = "Asia/Shanghai"
    originals_on_master: bool = True
    originals_on_working: bool = False
    allow_unexplained: bool = False
    max_file_bytes: int = FOUR_GIB - 32 * 1024 * 1024
    exported_by: str = ""
    host: str | None = None  # default: this machine's name
    system: str = "video-audit"
    reference_time: datetime | None = None  # default: now; fixes every timestamp on the disc
    audit_rows: tuple[dict[str, Any], ...] = ()
    # The audit trail's head when the export started, as anchored (pipeline/audit_anchor.py):
    # seq, hash, key_id, keyed_from, written, anchor, signer. In the custody record, so the disc
    # itself keeps a copy of the head outside the database.
    audit_head: dict[str, Any] | None = None
    # The case's risk alerts for the gap/alert report: dicts with id, rule, label_zh, label_en,
    # severity, state, start, end (ISO UTC or None), room_id, camera_id, message, acknowledged_by,
    # resolved_by, note (pipeline.export_service.case_alerts makes them).
    alerts: tuple[dict[str, Any], ...] = ()
    export_id: str | None = None
    chromium: str | None = None
    x264_preset: str = "veryfast"
    keep_staging: bool = False


@dataclass(frozen=True, slots=True)
class ExportResult:
    export_id: str
    directory: Path
    master_images: tuple[Path, ...]
    working_images: tuple[Path, ...]
    manifest: Path
    summary: dict[str, Any] = field(default_factory=dict)


def _check(cancel: threading.Event) -> None:
    if cancel.is_set():
        raise ExportCancelled("export cancelled")


@dataclass(slots=True)
class _Group:
    """Files that must sit on the same disc (a video with its text tracks; a segment with its sidecar)."""

    kind: str  # "video" | "original"
    entries: list[FileEntry]


def export_dir_name(case_number: str, subject_id: int, ref: datetime) -> str:
    """The export's directory name under ``out_dir``: a case number may hold anything a clerk
    typed (``/``, ``..``, NUL, backslashes, Unicode direction marks), so every character outside
    ``A-Z a-z 0-9 _ -`` becomes ``_`` and the name can only ever be one plain directory."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", case_number)[:64] or "case"
    return f"{safe}-{int(subject_id)}-{ref:%Y%m%dT%H%M%SZ}"


class _Job:
    def __init__(
        self,
        plan: ExportPlan,
        reader: BlobReader,
        out_dir: Path,
        options: ExportOptions,
        progress: Progress,
        cancel: threading.Event,
    ) -> None:
        self.plan, self.reader, self.options, self.cancel = plan, reader, options, cancel
        self._progress = progress
        self.tz = ZoneInfo(options.time_zone)
        self.ref = (options.reference_time or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
        self.export_id = options.export_id or export_dir_name(
            plan.request.case.case_number, plan.request.subject.subject_id, self.ref
        )
        self.dir = out_dir / self.export_id
        self.content = self.dir / ".staging" / "content"
        self.originals = options.originals_on_master or options.originals_on_working
        self.total_bytes = max(1, sum(s.size for s in self._all_sources()))
        self.done_bytes = 0
        self.groups: list[_Group] = []
        self.common: list[FileEntry] = []
        self.videos: list[dict[str, Any]] = []
        self.staged: dict[str, Path] = {}
        self.chain: CaptureChain | None = None  # the stored sidecars it read are reused

    # -- progress -------------------------------------------------------------------------------
    def progress(self, start: float, span: float, fraction: float, message: str) -> None:
        _check(self.cancel)
        self._progress(min(1.0, start + span * min(1.0, fraction)), message)

    def _all_sources(self) -> list[SourceMedia]:
        seen: dict[str, SourceMedia] = {}
        for stage in self.plan.stages:
            for _cam, sources in self._stage_sources(stage):
                for s in sources:
                    seen.setdefault(s.key, s)
        return list(seen.values())

    def _stage_sources(self, stage: Stage) -> list[tuple[str, list[SourceMedia]]]:
        out: list[tuple[str, list[SourceMedia]]] = []
        for cam in stage.cameras:
            if cam.segments:
                out.append(
                    (
                        cam.camera_id,
                        [
                            SourceMedia(
                                s.storage_key,
                                s.start,
                                s.end,
                                s.size,
                                s.stream.audio_codec,
                                s.stream.audio_sample_rate,
                            )
                            for s in cam.segments
                        ],
                    )
                )
        devices: dict[str, list[SourceMedia]] = {}
        for clip in stage.clips:
            devices.setdefault(f"bodycam-{clip.device_id}", []).append(
                SourceMedia(
                    clip.storage_key,
                    clip.start,
                    clip.end,
                    clip.size,
                    clip.stream.audio_codec if clip.stream else None,
                    clip.stream.audio_sample_rate if clip.stream else None,
                )
            )
        out.extend(sorted(devices.items()))
        return out

    # -- originals ------------------------------------------------------------------------------
    def stage_originals(self) -> None:
        records: dict[str, tuple[str, dict[str, Any]]] = {}
        for stage in self.plan.stages:
            for cam in stage.cameras:
                for seg in cam.segments:
                    records[seg.storage_key] = (seg.sha256, seg.to_json())
            for clip in stage.clips:
                records[clip.storage_key] = (
                    clip.sha256,
                    {
                        "kind": "bodycam_clip",
                        "clip_id": clip.clip_id,
                        "device_id": clip.device_id,
                        "officer_id": clip.officer_id,
                        "storage_key": clip.storage_key,
                        "start": iso(clip.start),
                        "end": iso(clip.end),
                        "size": clip.size,
                        "sha256": clip.sha256,
                        "sm3": clip.sm3,
                        "container": clip.container,
                    },
                )
        for key in sorted(records):
            expected, record = records[key]
            rel = f"originals/{key}"
            dest = self.content / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            digest = self._copy(key, dest)
            if digest.sha256 != expected:
                raise SourceIntegrityError(
                    f"{key}: stored bytes do not match the capture hash "
                    f"({digest.sha256} != {expected}); refusing to seal",
                    key=key,
                )
            self.staged[key] = dest
            src = [{"key": key, "sha256": expected, "start": record["start"], "end": record["end"]}]
            media = FileEntry(
                rel,
                digest.size,
                digest.sha256,
                digest.sm3,
                "original",
                record.get("container", "mpegts"),
                camera=key.split("/", 1)[0],
                start=record["start"],
                end=record["end"],
                sources=src,
            )
            side_rel = rel.rsplit(".", 1)[0] + ".json"
            stored = self._stored_sidecar(key)
            (self.content / side_rel).write_bytes(
                stored if stored is not None else manifest.canonical_json(record)
            )
            side = entry_for(
                self.content,
                side_rel,
                "sidecar",
                "json (stored sidecar)" if stored is not None else "json (index record)",
                camera=media.camera,
                sources=src,
            )
            self.groups.append(_Group("original", [media, side]))

    def _copy(self, key: str, dest: Path) -> manifest.Digest:
        with self.reader.open(key) as src, dest.open("wb") as out:

            def read(n: int) -> bytes:
                chunk = src.read(min(n, COPY_CHUNK))
                out.write(chunk)
                self.done_bytes += len(chunk)
                self.progress(0.0, 0.2, self.done_bytes / self.total_bytes, f"copying originals {key}")
                return chunk

            return manifest.hash_stream(read)

    def check_capture_chain(self, neighbours: NeighbourLookup | None) -> None:
        """Refuse (SourceIntegrityError) unless the recorder's sidecars and hash chain vouch for
        every segment the index planned (exporter/capture_chain.py)."""
        self.chain = CaptureChain(self.reader, neighbours)
        segments = [seg for stage in self.plan.stages for cam in stage.cameras for seg in cam.segments]
        self.progress(0.0, 0.0, 0.0, f"checking the capture chain of {len(segments)} segment(s)")
        self.chain.check(segments)

    def _stored_sidecar(self, key: str) -> bytes | None:
        side = sidecar_key(key)
        if side == key:
            return None
        if self.chain is not None and key in self.chain.sidecars:
            return self.chain.sidecars[key]
        try:
            with self.reader.open(side) as fh:
                return fh.read()
        except Exception:  # a backend without the sidecar: the index record stands in (said in the manifest)
            return None

    # -- videos ---------------------------------------------------------------------------------
    def _open_source(self, src: SourceMedia) -> BinaryIO | str:
        staged = self.staged.get(src.key)
        return str(staged) if staged is not None else self.reader.open(src.key)

    def render_videos(self) -> None:
        opts = RemuxOptions(
            max_file_bytes=self.options.max_file_bytes,
            time_zone=self.options.time_zone,
            x264_preset=self.options.x264_preset,
        )
        self.done_bytes = 0
        for stage in self.plan.stages:
            for cam_id, sources in self._stage_sources(stage):
                captions, marks = self._captions(stage, cam_id)
                stem = cam_id.replace("/", "_")

                def tick(n: int, cam: str = cam_id, st: Stage = stage) -> None:
                    self.done_bytes += n
                    self.progress(0.2, 0.5, self.done_bytes / self.total_bytes, f"remuxing {st.slug} {cam}")

                files = render_camera(
                    sources,
                    self._open_source,
                    self.content / "videos" / stage.slug,
                    stem,
                    captions,
                    marks,
                    opts,
                    tick,
                )
                for f in files:
                    self._add_video(stage, cam_id, f, sources)

    def _captions(self, stage: Stage, cam_id: str) -> tuple[list[Caption], list[Mark]]:
        captions = [
            Caption(e.time, e.time + timedelta(seconds=EVENT_CAPTION_SECONDS), event_label(e.type))
            for e in stage.events
        ]
        marks = [Mark(e.time, event_label(e.type)) for e in stage.events]
        for cam in stage.cameras:
            if cam.camera_id != cam_id:
                continue
            for g in cam.gaps:
                captions.append(Caption(g.start, g.end, gap_label(g.cause)))
                marks.append(Mark(g.start, gap_label(g.cause)))
                marks.append(Mark(g.end, "录像恢复 recording resumed"))
        return captions, marks

    def _add_video(self, stage: Stage, cam_id: str, f: RenderedFile, sources: list[SourceMedia]) -> None:
        rel = f.path.relative_to(self.content).as_posix()
        by_key = {s.key: s for s in sources}
        hashes = {seg.storage_key: seg.sha256 for c in stage.cameras for seg in c.segments}
        hashes.update({c.storage_key: c.sha256 for c in stage.clips})
        src = [
            {"key": k, "sha256": hashes.get(k, ""), "start": iso(by_key[k].start), "end": iso(by_key[k].end)}
            for k in f.sources
            if k in by_key
        ]
        fmt = f"mp4 ({f.video_codec}, aac, mov_text)"
        common = {
            "stage": stage.slug,
            "camera": cam_id,
            "rendition": f.rendition,
            "start": iso(f.start),
            "end": iso(f.end),
        }
        entries = [
            entry_for(self.content, rel, "video", fmt, duration=round(f.duration, 3), sources=src, **common)
        ]
        for path, role in ((f.subtitles, "subtitles"), (f.chapters, "chapters")):
            if path is not None:
                entries.append(
                    entry_for(
                        self.content, path.relative_to(self.content).as_posix(), role, "webvtt", **common
                    )
                )
        self.groups.append(_Group("video", entries))
        self.videos.append(
            {
                "path": rel,
                "stage": stage.slug,
                "camera": cam_id,
                "rendition": f.rendition,
                "playable": f.video_codec == "h264",
                "start_local": local_stamp(f.start, self.tz),
                "end_local": local_stamp(f.end, self.tz),
                "duration": round(f.duration, 3),
                "subtitles": entries[1].path if len(entries) > 1 else None,
                "chapters": entries[2].path if len(entries) > 2 else None,
                "chapter_list": f.chapter_list,
            }
        )

    # -- documents ------------------------------------------------------------------------------
    def custody(self) -> dict[str, Any]:
        return {
            "export_id": self.export_id,
            "exported_by": self.options.exported_by or "unknown",
            "exported_at": iso(self.ref),
            "exported_at_local": local_stamp(self.ref, self.tz),
            "system": f"{self.options.system} {VERSION}",
            "host": self.options.host or socket.gethostname(),
            **({"audit_head": dict(self.options.audit_head)} if self.options.audit_head is not None else {}),
            "audit": [dict(r) for r in self.options.audit_rows],
        }

    def write_documents(self, fingerprint: str, public_pem: bytes) -> None:
        c = self.content
        custody = self.custody()
        gaps = disc_page.gaps_data(self.plan, self.tz, self.options.alerts)
        docs: list[tuple[str, bytes, str, str]] = [
            ("gaps.json", manifest.canonical_json(gaps), "report", "json"),
            ("gaps.html", disc_page.gaps_html(gaps).encode(), "report", "html"),
            ("custody.json", manifest.canonical_json(custody), "custody", "json"),
            ("custody.html", disc_page.custody_html(custody).encode(), "custody", "html"),
            (
                "statement.html",
                statement.statement_html(
                    self.plan, self.tz, fingerprint, self.ref, len(self.options.alerts)
                ).encode(),
                "statement",
                "html",
            ),
            ("verify.py", Path(__file__).with_name("disc_verifier.py").read_bytes(), "verifier", "python"),
            ("public_key.pem", public_pem, "key", "pem (Ed25519 public key)"),
        ]
        for rel, data, _role, _fmt in docs:
            (c / rel).write_bytes(data)
        statement.html_to_pdf(c / "statement.html", c / "statement.pdf", self.ref, self.options.chromium)
        docs.append(("statement.pdf", b"", "statement", "pdf"))
        for rel, _data, role, fmt in docs:
            e = entry_for(c, rel, role, fmt)
            e.common = True
            self.common.append(e)
        files = [
            {"path": e.path, "size": e.size, "sha256": e.sha256}
            for e in sorted(self.common + [x for g in self.groups for x in g.entries], key=lambda e: e.path)
        ]
        page = disc_page.index_html(
            disc_page.page_data(self.plan, self.tz, self.videos, files, custody, fingerprint)
        )
        (c / "index.html").write_text(page, encoding="utf-8")
        e = entry_for(c, "index.html", "page", "html")
        e.common = True
        self.common.append(e)

    # -- manifest and images --------------------------------------------------------------------
    def header(self, fingerprint: str, copies: dict[str, int], capacity: int) -> dict[str, Any]:
        req, plan = self.plan.request, self.plan
        return {
            "export_id": self.export_id,
            "created": iso(self.ref),
            "time_zone": self.options.time_zone,
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
                        {"type": e.type.value, "time": iso(e.time), "event_id": e.event_id} for e in s.events
                    ],
                }
                for s in plan.stages
            ],
            "gaps": [{**g.to_json(), "stage": s.slug} for s, g in plan.gaps],
            "unexplained": [{"start": iso(r.start), "end": iso(r.end)} for r in plan.unexplained],
            "alerts": [
                {
                    k: a.get(k)
                    for k in ("id", "rule", "severity", "state", "start", "end", "room_id", "camera_id")
                }
                for a in self.options.alerts
            ],
            "allow_unexplained": self.options.allow_unexplained,
            "media": {"name": str(self.options.media), "capacity": capacity},
            "copies": copies,
            "public_key": {
                "algorithm": "Ed25519",
                "fingerprint_sha256": fingerprint,
                "path": "public_key.pem",
            },
            "custody": {k: v for k, v in self.custody().items() if k != "audit"},
            "generator": {"system": self.options.system, "version": VERSION},
        }

    def assign(self, capacity: int, fixed: int) -> dict[str, int]:
        copies: dict[str, int] = {}
        for copy, with_originals in (
            ("master", self.options.originals_on_master),
            ("working", self.options.originals_on_working),
        ):
            groups = [g for g in self.groups if g.kind == "video" or with_originals]
            sizes = [sum(disc_footprint(e.size) for e in g.entries) for g in groups]
            numbers = assign_discs(sizes, fixed, capacity, [g.entries[0].path for g in groups])
            for g, n in zip(groups, numbers, strict=True):
                for e in g.entries:
                    e.discs[copy] = n
            copies[copy] = max(numbers, default=1)
            for e in self.common:
                e.discs[copy] = 0
        return copies


_M_MMAP_THRESHOLD = -3


def bound_heap() -> None:
    """Keep glibc from growing the heap with libav's large packet buffers.

    glibc raises its mmap threshold each time a large mmapped block is freed, after which every
    demuxed packet buffer (hundreds of KiB) comes from the heap and fragments it: measured, RSS grew
    ~25 MB per opened segment and plateaued near 300 MB. A fixed 128 KiB threshold (glibc's own
    default, made static) keeps large buffers in mmap, returned on free: RSS stays ~50 MB. This
    is process-wide and harmless for the rest of the process; a no-op off glibc.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, 128 * 1024)
    except (OSError, AttributeError):
        log.debug("not glibc: heap bound not applied")


def run_export(
    plan: ExportPlan,
    reader: BlobReader,
    out_dir: Path,
    options: ExportOptions,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    neighbours: NeighbourLookup | None = None,
) -> ExportResult:
    """Build the master and working disc images of ``plan`` under ``out_dir/<export_id>/``.

    ``neighbours`` finds the index's records of segments next to the planned ones (by camera and
    sequence number), so the hash chain is checked across the plan's edges too."""
    plan.require_explained(options.allow_unexplained)
    bound_heap()
    job = _Job(plan, reader, out_dir, options, progress or (lambda _f, _m: None), cancel or threading.Event())
    job.check_capture_chain(neighbours)  # before anything is written
    if job.dir.exists():
        shutil.rmtree(job.dir)  # a previous, interrupted run of the same export: start over
    try:
        return _run(job)
    except BaseException:
        shutil.rmtree(job.dir, ignore_errors=True)
        raise


def _run(job: _Job) -> ExportResult:
    opts = job.options
    key = load_signing_key(opts.signing_key)
    pub = public_key_info(key)
    job.content.mkdir(parents=True)
    job.progress(0.0, 0.0, 0.0, "starting")
    if job.originals:
        job.stage_originals()
    job.render_videos()
    job.progress(0.7, 0.05, 0.0, "writing statement, reports and page")
    job.write_documents(pub.fingerprint, pub.pem)
    capacity = media_capacity(opts.media)
    common_bytes = sum(disc_footprint(e.size) for e in job.common)
    draft = manifest.build_manifest(
        job.header(pub.fingerprint, {}, capacity), job.common + [e for g in job.groups for e in g.entries]
    )
    per_disc_estimate = 3 * len(draft) + 64 * 1024  # manifest + sums + disc.json grow with disc numbers only
    copies = job.assign(capacity, common_bytes + per_disc_estimate)
    entries = job.common + [e for g in job.groups for e in g.entries]
    manifest_bytes = manifest.build_manifest(job.header(pub.fingerprint, copies, capacity), entries)
    signature = sign(key, manifest_bytes)
    (job.dir / manifest.MANIFEST).write_bytes(manifest_bytes)
    (job.dir / manifest.SIGNATURE).write_bytes(signature)
    (job.dir / "public_key.pem").write_bytes(pub.pem)

    images: dict[str, list[Path]] = {"master": [], "working": []}
    total_discs = sum(copies.values())
    built = 0
    for copy, count in copies.items():
        for n in range(1, count + 1):
            label = volume_label(job.plan.request.case.case_number, copy, n, count)
            disc_dir = job.dir / ".staging" / f"{copy}-{n}"
            disc_dir.mkdir(parents=True)
            on_disc = [e for e in entries if copy in e.discs and e.discs[copy] in (0, n)]
            where = {e.path: e.discs[copy] for e in entries if copy in e.discs}
            disc_info = {
                "label": label,
                "copy": copy,
                "disc": n,
                "discs": count,
                "export_id": job.export_id,
                "case_number": job.plan.request.case.case_number,
                "files": sorted(e.path for e in on_disc),
                "set": [
                    {
                        "disc": i,
                        "label": volume_label(job.plan.request.case.case_number, copy, i, count),
                        "files": sorted(e.path for e in entries if e.discs.get(copy) == i),
                    }
                    for i in range(1, count + 1)
                ],
            }
            (disc_dir / manifest.DISC_JSON).write_bytes(manifest.canonical_json(disc_info))
            disc_js = {"copy": copy, "disc": n, "discs": count, "label": label, "where": where}
            (disc_dir / manifest.DISC_JS).write_text(
                "window.DISC = " + json.dumps(disc_js, ensure_ascii=False, sort_keys=True) + ";\n",
                encoding="utf-8",
            )
            (disc_dir / manifest.MANIFEST).write_bytes(manifest_bytes)
            (disc_dir / manifest.SIGNATURE).write_bytes(signature)
            extra = [manifest.MANIFEST, manifest.DISC_JSON, manifest.DISC_JS]
            local = {p: manifest.hash_file(disc_dir / p) for p in extra}
            rows256 = [(e.path, e.sha256) for e in on_disc] + [(p, d.sha256) for p, d in local.items()]
            rows_sm3 = [(e.path, e.sm3) for e in on_disc] + [(p, d.sm3) for p, d in local.items()]
            (disc_dir / manifest.SHA256SUMS).write_bytes(manifest.sums_text(rows256))
            (disc_dir / manifest.SM3SUMS).write_bytes(manifest.sums_text(rows_sm3))
            files = [ImageFile(e.path, job.content / e.path) for e in on_disc]
            files += [ImageFile(p, disc_dir / p) for p in manifest.PER_DISC_FILES]
            out = job.dir / copy / f"{label}.iso"

            def img_progress(done: int, total: int, b: int = built, lbl: str = label) -> None:
                job.progress(0.75, 0.25, (b + done / max(total, 1)) / total_discs, f"writing image {lbl}")

            size = build_image(out, files, label, job.ref, img_progress)
            if size > capacity:
                raise DiscCapacityError(
                    f"{out.name} is {size} bytes, over the medium's {capacity}",
                    image=str(out),
                    size=size,
                    capacity=capacity,
                )
            images[copy].append(out)
            built += 1
    if not opts.keep_staging:
        shutil.rmtree(job.dir / ".staging")
    job.progress(1.0, 0.0, 0.0, "done")
    summary = {
        "export_id": job.export_id,
        "files": len(entries),
        "bytes": sum(e.size for e in entries),
        "videos": len(job.videos),
        "gaps": len(job.plan.gaps),
        "unexplained": len(job.plan.unexplained),
        "discs": copies,
        "fingerprint": pub.fingerprint,
        "range": {"start": iso(job.plan.range.start), "end": iso(job.plan.range.end)},
    }
    log.info("export %s done: %s", job.export_id, summary)
    return ExportResult(
        job.export_id,
        job.dir,
        tuple(images["master"]),
        tuple(images["working"]),
        job.dir / manifest.MANIFEST,
        summary,
    )
