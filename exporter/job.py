"""The export job: plan -> originals (+ their G.711 remux) -> videos -> pages, statement, reports ->
manifest, signature -> master and working disc images.

Constant memory: every byte is streamed (copy, remux, hash, image) in chunks of at most a few
MiB; nothing holds a whole file. Progress is reported as a fraction with a message; ``cancel``
is checked between chunks and sources, and a cancelled (or failed) job removes everything it
wrote. A job is not resumed: re-running it starts over and, the output being deterministic,
gives the same images.
"""

from __future__ import annotations

import ctypes
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

from domain.names import EVENT_NAMES
from domain.types import BlobReader, iso, sidecar_key
from exporter import disc_page, disc_set, manifest, statement
from exporter.capture_chain import CaptureChain, NeighbourLookup
from exporter.disc_page import CUES_SUFFIX, event_label, gap_label, gap_titles, write_cues_js
from exporter.disc_set import FileGroup
from exporter.errors import ExportCancelled, SourceIntegrityError
from exporter.g711_remux import (
    REMUX_DIR,
    RemuxedOriginal,
    find_ffmpeg,
    needs_remux,
    remux_entry,
    remux_g711,
)
from exporter.iso_image import disc_footprint, media_capacity
from exporter.lanes import Caption, Mark, local_stamp
from exporter.manifest import FileEntry, entry_for
from exporter.plan import AcceptedInterval, ExportPlan, Stage
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
    # Unexplained intervals the operator accepts with a note (statement and gap report quote it).
    accepted: tuple[AcceptedInterval, ...] = ()
    max_file_bytes: int = FOUR_GIB - 32 * 1024 * 1024
    exported_by: str = ""
    host: str | None = None  # default: this machine's name
    system: str = "video-audit"
    reference_time: datetime | None = None  # default: now; fixes every timestamp on the disc
    audit_rows: tuple[dict[str, Any], ...] = ()
    # The audit trail's head when the export started, as anchored (pipeline/storage/anchors.py):
    # seq, hash, key_id, keyed_from, written, anchor, signer. In the custody record, so the disc
    # itself keeps a copy of the head outside the database.
    audit_head: dict[str, Any] | None = None
    # The case's risk alerts for the gap/alert report: dicts with id, rule, label_zh, label_en,
    # severity, state, start, end (ISO UTC or None), room_id, camera_id, message, acknowledged_by,
    # resolved_by, note (pipeline.export.service.case_alerts makes them).
    alerts: tuple[dict[str, Any], ...] = ()
    # Late entries in the range: readings written after the late-entry window or into a range
    # already on a disc. Dicts with kind ("event" or "observation"), id, type, time (ISO UTC),
    # room_id, entered_by, entered_at (pipeline.export.service.late_entries makes them).
    late_entries: tuple[dict[str, Any], ...] = ()
    export_id: str | None = None
    chromium: str | None = None
    x264_preset: str = "veryfast"
    keep_staging: bool = False
    # Beside the originals, per stage and camera with G.711 sound: a Matroska remux that players
    # open with that sound (exporter/g711_remux.py); costs about the originals' size again.
    g711_remux: bool = True
    ffmpeg: str | None = None  # default: ffmpeg on PATH


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
        # The remux goes where the originals go; only G.711 footage needs one.
        self.g711_bytes = sum(s.size for s in self._all_sources() if needs_remux(s))
        self.with_remux = self.originals and options.g711_remux and self.g711_bytes > 0
        self.video_phase = (0.35, 0.35) if self.with_remux else (0.2, 0.5)
        self.original_entries: dict[str, FileEntry] = {}
        self.remuxed: list[dict[str, Any]] = []
        self.done_bytes = 0
        self.groups: list[FileGroup] = []
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
                    clip.container,
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
            self.original_entries[key] = media
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
            self.groups.append(FileGroup("original", [media, side]))

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

    # -- originals with their sound -------------------------------------------------------------
    def render_g711_remux(self) -> None:
        ffmpeg = find_ffmpeg(self.options.ffmpeg)
        self.done_bytes = 0
        for stage in self.plan.stages:
            for cam_id, sources in self._stage_sources(stage):
                if not any(needs_remux(s) for s in sources):
                    continue

                def tick(n: int, cam: str = cam_id, st: Stage = stage) -> None:
                    self.done_bytes += n
                    frac = self.done_bytes / self.g711_bytes
                    self.progress(0.2, 0.15, frac, f"remuxing originals with sound {st.slug} {cam}")

                files = remux_g711(
                    sources,
                    self._open_source,
                    self.content / REMUX_DIR / stage.slug,
                    cam_id.replace("/", "_"),
                    f"{cam_id} · {stage.label_zh} {stage.label_en} · 原始录像 original recording",
                    self.tz,
                    self.options.max_file_bytes,
                    ffmpeg,
                    tick,
                )
                for f in files:
                    self._add_remux(stage, cam_id, f)

    def _add_remux(self, stage: Stage, cam_id: str, f: RemuxedOriginal) -> None:
        entry = remux_entry(self.content, f, stage.slug, cam_id, self.original_entries)
        self.groups.append(FileGroup("original", [entry]))
        self.remuxed.append(
            {
                "path": entry.path,
                "stage": stage.slug,
                "camera": cam_id,
                "codec": f.audio_codec,
                "start_local": local_stamp(f.start, self.tz),
                "end_local": local_stamp(f.end, self.tz),
            }
        )

    def sound_note(self) -> str | None:
        """Which note the statement gives on hearing the originals' G.711 (statement.SOUND_NOTES)."""
        if self.remuxed:
            return "remux"
        if self.originals and self.g711_bytes:
            return "originals"
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
                    start, span = self.video_phase
                    self.progress(
                        start, span, self.done_bytes / self.total_bytes, f"remuxing {st.slug} {cam}"
                    )

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
        marks = [Mark(e.time, *EVENT_NAMES[e.type]) for e in stage.events]
        for cam in stage.cameras:
            if cam.camera_id != cam_id:
                continue
            for g in cam.gaps:
                captions.append(Caption(g.start, g.end, gap_label(g.cause)))
                begun, resumed = gap_titles(g.cause)
                marks.append(Mark(g.start, *begun))
                marks.append(Mark(g.end, *resumed))
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
        paths: dict[str, str] = {}
        tracks: list[tuple[Path | None, str, str]] = [
            (f.subtitles, "subtitles", "webvtt"),
            (f.chapters, "chapters", "webvtt"),
        ]
        if f.subtitles is not None:
            cues = f.path.with_name(f.path.stem + CUES_SUFFIX)
            write_cues_js(f.subtitles, cues, rel)
            tracks.append((cues, "cues", "javascript (the subtitles' cues, for index.html)"))
        for path, role, form in tracks:
            if path is not None:
                paths[role] = path.relative_to(self.content).as_posix()
                entries.append(entry_for(self.content, paths[role], role, form, **common))
        self.groups.append(FileGroup("video", entries))
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
                "subtitles": paths.get("subtitles"),
                "chapters": paths.get("chapters"),
                "cues": paths.get("cues"),
                "chapter_list": [[c.start_ms, c.end_ms, c.zh, c.en] for c in f.chapter_list],
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
        gaps = disc_page.gaps_data(self.plan, self.tz, self.options.alerts, self.options.accepted)
        docs: list[tuple[str, bytes, str, str]] = [
            ("gaps.json", manifest.canonical_json(gaps), "report", "json"),
            ("gaps.html", disc_page.gaps_html(gaps).encode(), "report", "html"),
            ("custody.json", manifest.canonical_json(custody), "custody", "json"),
            ("custody.html", disc_page.custody_html(custody).encode(), "custody", "html"),
            (
                "statement.html",
                statement.statement_html(
                    self.plan,
                    self.tz,
                    fingerprint,
                    self.ref,
                    len(self.options.alerts),
                    self.sound_note(),
                    self.options.accepted,
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
            disc_page.page_data(
                self.plan,
                self.tz,
                self.videos,
                files,
                custody,
                self.remuxed,
                self.options.late_entries,
                fingerprint,
            )
        )
        (c / "index.html").write_text(page, encoding="utf-8")
        e = entry_for(c, "index.html", "page", "html")
        e.common = True
        self.common.append(e)

    # -- manifest -------------------------------------------------------------------------------
    def header(self, fingerprint: str, copies: dict[str, int], capacity: int) -> dict[str, Any]:
        o = self.options
        return manifest.export_header(
            self.plan,
            export_id=self.export_id,
            created=self.ref,
            time_zone=o.time_zone,
            alerts=o.alerts,
            late_entries=o.late_entries,
            allow_unexplained=o.allow_unexplained,
            media={"name": str(o.media), "capacity": capacity},
            copies=copies,
            fingerprint=fingerprint,
            custody={k: v for k, v in self.custody().items() if k != "audit"},
            generator={"system": o.system, "version": VERSION},
        )


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
    plan.require_explained(options.allow_unexplained, options.accepted)
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
    if job.with_remux:
        job.render_g711_remux()
    job.render_videos()
    job.progress(0.7, 0.05, 0.0, "writing statement, reports and page")
    job.write_documents(pub.fingerprint, pub.pem)
    capacity = media_capacity(opts.media)
    common_bytes = sum(disc_footprint(e.size) for e in job.common)
    entries = job.common + [e for g in job.groups for e in g.entries]
    draft = manifest.build_manifest(job.header(pub.fingerprint, {}, capacity), entries)
    per_disc_estimate = 3 * len(draft) + 64 * 1024  # manifest + sums + disc.json grow with disc numbers only
    with_originals = {"master": opts.originals_on_master, "working": opts.originals_on_working}
    copies = disc_set.assign(
        job.groups, job.common, with_originals, capacity, common_bytes + per_disc_estimate
    )
    manifest_bytes = manifest.build_manifest(job.header(pub.fingerprint, copies, capacity), entries)
    signature = sign(key, manifest_bytes)
    (job.dir / manifest.MANIFEST).write_bytes(manifest_bytes)
    (job.dir / manifest.SIGNATURE).write_bytes(signature)
    (job.dir / "public_key.pem").write_bytes(pub.pem)

    images = disc_set.write_images(
        copies,
        entries,
        manifest_bytes,
        signature,
        job.content,
        job.dir / ".staging",
        job.dir,
        (job.plan.request.case.case_number, job.export_id),
        job.ref,
        capacity,
        lambda fraction, message: job.progress(0.75, 0.25, fraction, message),
    )
    if not opts.keep_staging:
        shutil.rmtree(job.dir / ".staging")
    job.progress(1.0, 0.0, 0.0, "done")
    summary = {
        "export_id": job.export_id,
        "files": len(entries),
        "bytes": sum(e.size for e in entries),
        "videos": len(job.videos),
        "g711_remux_bytes": sum(e.size for e in entries if e.role == "original_remux"),
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
