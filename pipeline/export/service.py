"""From the index to a court disc: gathers a subject's footage, events and people, plans the
export and runs it; also the background jobs behind ``POST /api/v1/exports``.

The exporter itself is pure of the index and storage; this module is the glue.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from domain.errors import (
    ConfigError,
    ConflictError,
    NotFoundError,
    ServiceStopped,
    ValidationFailed,
    VauditError,
)
from domain.types import (
    RoomKind,
    RoomStay,
    SegmentRecord,
    StayFootage,
    TimeRange,
    from_unix,
    iso,
    sidecar_key,
    utc,
)
from exporter.capture_chain import CaptureChain
from exporter.iso_image import MEDIA_BYTES
from exporter.job import ExportOptions, ExportResult, run_export
from exporter.plan import (
    AcceptedInterval,
    CaseInfo,
    ExportPlan,
    ExportRequest,
    Officer,
    OfficerRole,
    RoomInfo,
    SubjectInfo,
    build_plan,
    default_range,
)
from exporter.signing import public_key_info
from exporter.verify import VerifyReport, verify_images
from indexer.alert_store import AlertStore
from indexer.audit import AuditLog
from indexer.case_records import Entry
from indexer.case_store import CaseStore
from indexer.footage import FootageIndex
from indexer.reindex import parse_sidecar
from indexer.segment_store import SegmentStore
from pipeline.risk.rules import RULE_LABELS
from pipeline.settings import Settings
from pipeline.storage import Storage
from pipeline.storage.anchors import AnchorBook, centre_signing_key

logger = logging.getLogger(__name__)

_ROLE = {
    "interrogator": OfficerRole.INTERROGATOR,
    "lead": OfficerRole.INTERROGATOR,
    "assist": OfficerRole.INTERROGATOR,
    "recorder": OfficerRole.RECORDER,
    "interpreter": OfficerRole.INTERPRETER,
    "guardian": OfficerRole.GUARDIAN,
}
# Where footage of the arrest scene (body cameras before entry) is filed in the plan.
ARREST_ROOM = "arrest-scene"


@dataclass(frozen=True)
class ExportSpec:
    case: str  # case number or numeric case id
    subject: str  # subject id, ID number or name within the case
    start: datetime | None = None
    end: datetime | None = None
    media: str | int | None = None
    allow_unexplained: bool = False
    exported_by: str = ""
    # Unexplained intervals the operator accepts with a note (exporter.plan.AcceptedInterval).
    accepted: tuple[AcceptedInterval, ...] = ()
    originals_on_working: bool | None = None  # None: [export] originals_on_working


class ExportService:
    def __init__(self, settings: Settings, engine: Engine, storage: Storage) -> None:
        self.settings = settings
        self.engine = engine
        self.storage = storage
        self.cases = CaseStore(engine)
        self.footage = FootageIndex(self.cases)

    # --- planning --------------------------------------------------------------------------

    def case_id(self, case: str) -> int:
        """The id of a case given by number (or id); NotFoundError if there is none."""
        return self._case_id(case)

    def _case_id(self, case: str) -> int:
        return self.cases.case_id(case)

    def _subject_id(self, case_id: int, subject: str) -> int:
        subjects = self.cases.subjects_of_case(case_id)
        hits = [s for s in subjects if str(s.id) == subject or s.id_number == subject or s.name == subject]
        if not hits:
            raise NotFoundError(f"case {case_id} has no subject {subject!r}", subject=subject)
        if len(hits) > 1:
            raise ConflictError(
                f"{subject!r} names {len(hits)} subjects; give the subject id", subject=subject
            )
        return hits[0].id

    def _rooms(self) -> dict[str, RoomInfo]:
        rooms = {}
        for rid, name, kind in SegmentStore(self.engine).room_kinds():
            try:
                rk = RoomKind(kind)
            except ValueError:
                rk = RoomKind.OTHER
            rooms[rid] = RoomInfo(rid, name, rk)
        rooms[ARREST_ROOM] = RoomInfo(ARREST_ROOM, "抓获现场", RoomKind.ARREST)
        return rooms

    def plan(self, spec: ExportSpec) -> ExportPlan:
        case_id = self._case_id(spec.case)
        subject_id = self._subject_id(case_id, spec.subject)
        case = self.cases.get_case(case_id)
        subject = self.cases.get_subject(subject_id)
        officers = tuple(
            Officer(o.name, _ROLE.get((role or "").lower(), OfficerRole.OTHER), o.id, o.badge_number)
            for o, role in self.cases.case_officers(case_id)
        )
        events = [e.event for e in self.cases.events(case_id=case_id)]
        stays = self.footage.trajectory(subject_id)
        now = self.cases.now()
        first_stay = min((st.start for st in stays), default=now)
        # Without --from, look a day before the first stay for the body-camera arrest clip.
        lo = utc(spec.start) if spec.start else first_stay - timedelta(hours=24)
        hi = utc(spec.end) if spec.end else now
        if hi <= lo:
            raise ValidationFailed(
                "export range is empty", fields=[{"field": "to", "message": "not after from"}]
            )
        stay_footage, clips = self.footage.subject_footage(subject_id, lo, hi, now=now)
        first = min((fp.interval.start for fp in stay_footage), default=hi)
        before = tuple(c for c in clips if c.start < first)
        if before:
            scene = TimeRange(min(c.start for c in before), max(c.end for c in before))
            stay = RoomStay(
                subject_id, ARREST_ROOM, RoomKind.ARREST, scene.start, scene.end, "bodycam", "bodycam"
            )
            stay_footage = [StayFootage(stay, scene, (), before), *stay_footage]
        rng: TimeRange | None = None
        if spec.start is not None or spec.end is not None:
            default = None if spec.start and spec.end else default_range(stay_footage, events, subject_id)
            rng = TimeRange(
                utc(spec.start) if spec.start else default.start,  # type: ignore[union-attr]
                utc(spec.end) if spec.end else default.end,  # type: ignore[union-attr]
            )
        request = ExportRequest(
            case=CaseInfo(case.case_number, case.title, case.charge),
            subject=SubjectInfo(
                subject_id, subject.name, subject.id_number or "", subject.role, subject.minor
            ),
            officers=officers,
            range=rng,
            place=self.settings.centre.name,
        )
        return build_plan(request, stay_footage, events, self._rooms())

    def preview(self, spec: ExportSpec) -> dict[str, Any]:
        """What an export of ``spec`` would hold, from the plan the export itself builds: its range,
        stages and the unexplained intervals it would refuse (so the case page and the export
        dialog count the same holes as the exporter), and the choices the export request offers."""
        plan = self.plan(spec)
        cfg = self.settings.export
        return {
            "range": {"start": iso(plan.range.start), "end": iso(plan.range.end)},
            "stages": [
                {
                    "kind": st.kind.value,
                    "label_zh": st.label_zh,
                    "label_en": st.label_en,
                    "start": iso(st.interval.start),
                    "end": iso(st.interval.end),
                    "rooms": list(st.room_names),
                }
                for st in plan.stages
            ],
            "gaps": len(plan.gaps),
            "unexplained": [
                {"start": iso(r.start), "end": iso(r.end), "seconds": round(r.seconds, 3)}
                for r in plan.unexplained
            ],
            "unexplained_seconds": round(sum(r.seconds for r in plan.unexplained), 3),
            "media": [{"name": n, "bytes": b} for n, b in MEDIA_BYTES.items()],
            "default_media": str(cfg.media),
            "originals_on_master": True,
            "originals_on_working": cfg.originals_on_working,
        }

    # --- running ---------------------------------------------------------------------------

    def options(self, spec: ExportSpec, plan: ExportPlan | None = None) -> ExportOptions:
        """``plan``: the export's plan (its range bounds the late entries listed on the disc)."""
        cfg = self.settings.export
        centre_signing_key(self.settings)  # made on first use
        return ExportOptions(
            signing_key=cfg.signing_key,
            media=spec.media or cfg.media,
            time_zone=self.settings.centre.timezone,
            allow_unexplained=spec.allow_unexplained,
            accepted=spec.accepted,
            exported_by=spec.exported_by or cfg.exported_by,
            system=f"video-audit {self.settings.centre.id}",
            chromium=cfg.chromium,
            originals_on_working=(
                cfg.originals_on_working if spec.originals_on_working is None else spec.originals_on_working
            ),
            g711_remux=cfg.g711_remux,
            audit_rows=self.case_audit(spec.case),
            audit_head=self.anchor_audit(),
            alerts=self.case_alerts(spec.case, spec.subject),
            late_entries=self.late_entries(spec.case, spec.subject, plan.range) if plan is not None else (),
        )

    def late_entries(self, case: str, subject: str, rng: TimeRange) -> tuple[dict[str, Any], ...]:
        """Late entries in ``rng`` for the disc: the case's events about this subject or about no
        one subject, and the subject's location readings, by time."""
        case_id = self._case_id(case)
        subject_id = self._subject_id(case_id, subject)
        out: list[dict[str, Any]] = []
        for e in self.cases.events(case_id=case_id, start=rng.start, end=rng.end):
            if e.entry.late and e.event.subject_id in (None, subject_id):
                out.append(
                    _late(
                        "event", e.event.event_id, e.event.type.value, e.event.time, e.event.room_id, e.entry
                    )
                )
        for o in self.cases.late_observations(subject_id, rng.start, rng.end):
            out.append(_late("observation", o.client_id, o.source.value, o.time, o.room_id, o.entry))
        return tuple(sorted(out, key=lambda x: (x["time"], x["kind"], x["id"])))

    def anchor_audit(self) -> dict[str, Any]:
        """Anchor the audit trail's head now (pipeline/storage/anchors.py); what the disc's chain
        of custody records of it. If storage refuses, the head still goes on the disc."""
        head = AuditLog(self.engine, None).head()
        try:
            return AnchorBook.for_settings(self.settings, self.storage).write(head).custody()
        except VauditError as exc:
            logger.warning(
                "export: the audit head could not be anchored in storage", extra={"error": exc.message}
            )
            return {
                "seq": head.seq,
                "hash": head.hash,
                "key_id": head.key_id,
                "keyed_from": head.keyed_from,
                "written": iso(datetime.now(UTC)),
                "anchor": None,
                "signer": None,
            }

    def case_alerts(self, case: str, subject: str) -> tuple[dict[str, Any], ...]:
        """The risk alerts for the disc's gap/alert report: those of the case about this subject
        or about no one subject (co-suspects), and those of a room while the subject was in it."""
        case_id = self._case_id(case)
        subject_id = self._subject_id(case_id, subject)
        stays = [(st.room_id, st.start, st.end) for st in self.footage.trajectory(subject_id)]
        out = []
        for a in AlertStore(self.engine).of_case(case_id, stays):
            others = a.subject_id is not None and a.subject_id != subject_id
            if a.case_id == case_id and others and subject_id not in a.details.get("subject_ids", []):
                continue  # another subject's own alert (e.g. their time limit)
            zh, en = RULE_LABELS.get(a.rule, (a.rule, a.rule))
            out.append(
                {
                    "id": a.id,
                    "rule": a.rule,
                    "label_zh": zh,
                    "label_en": en,
                    "severity": a.severity,
                    "state": a.state,
                    "start": iso(a.start),
                    "end": iso(a.end) if a.end else None,
                    "room_id": a.room_id,
                    "camera_id": a.camera_id,
                    "message": a.message,
                    "acknowledged_by": a.acknowledged_by,
                    "resolved_by": a.resolved_by,
                    "note": a.note,
                }
            )
        return tuple(out)

    def case_audit(self, case: str) -> tuple[dict[str, Any], ...]:
        """The audit rows about this case (views, searches that opened it, exports, downloads),
        oldest first, for the disc's chain of custody."""
        number = self.cases.get_case(self.case_id(case)).case_number
        obj = f"case:{number}"
        rows = [r for r in AuditLog(self.engine, None).rows(object_prefix=obj, limit=1000) if r.object == obj]
        return tuple(
            {
                "seq": r.seq,
                "time": iso(from_unix(r.time_us / 1_000_000)),
                "user": r.user,
                "action": r.action,
                "client": r.client_addr or "",
                "hash": r.hash,
            }
            for r in reversed(rows)
        )

    def run(
        self,
        spec: ExportSpec,
        out_dir: Path | None = None,
        progress: Callable[[float, str], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> ExportResult:
        plan = self.plan(spec)
        out = out_dir or self.settings.export.out_dir
        out.mkdir(parents=True, exist_ok=True)
        result = run_export(
            plan,
            self.storage,
            out,
            self.options(spec, plan),
            progress=progress,
            cancel=cancel,
            neighbours=self.segments_by_seq,
        )
        # What is on a disc now: readings written into this range later are late entries.
        case_id = self._case_id(spec.case)
        subject_id = plan.request.subject.subject_id
        self.cases.record_export(case_id, subject_id, plan.range.start, plan.range.end, result.export_id)
        return result

    def segments_by_seq(self, camera_id: str, seqs: Sequence[int]) -> dict[int, SegmentRecord]:
        """The index's records of ``camera_id``'s segments with these sequence numbers."""
        return SegmentStore(self.engine).segments_by_seq(camera_id, seqs)

    def capture_hash(self, storage_key: str) -> str | None:
        """The SHA-256 the index recorded at capture for a segment or imported clip."""
        return SegmentStore(self.engine).capture_hash(storage_key)

    def recorded_hash(self, storage_key: str) -> str | None:
        """The SHA-256 the recorder wrote in the segment's own stored sidecar (None: no sidecar,
        e.g. a body-camera clip)."""
        raw = CaptureChain(self.storage).sidecar_bytes(storage_key)
        if raw is None or sidecar_key(storage_key) == storage_key:
            return None
        try:
            record = parse_sidecar(raw)
        except ValueError:
            return "(unreadable sidecar)"
        return record.sha256 if isinstance(record, SegmentRecord) else None

    def expected_fingerprint(self) -> str | None:
        """The centre's key fingerprint: ``[export] key_fingerprint``, else that of the signing key
        (None: neither is there)."""
        cfg = self.settings.export
        if cfg.key_fingerprint is not None:
            return cfg.key_fingerprint
        key = centre_signing_key(self.settings, create=False)
        return None if key is None else public_key_info(key).fingerprint

    def verify(self, images: list[Path], expected_key: str | None = None) -> VerifyReport:
        """The images against their signed manifests, the centre's key (``expected_key``, else
        :meth:`expected_fingerprint`: ConfigError if there is none), the index and the stored
        sidecars."""
        expected = expected_key or self.expected_fingerprint()
        if expected is None:
            raise ConfigError(
                "no key to check the discs against: set [export] key_fingerprint (the fingerprint "
                "on the centre's statements) or signing_key"
            )
        return verify_images(
            images, index_lookup=self.capture_hash, record_lookup=self.recorded_hash, expected_key=expected
        )


def _late(
    kind: str, client_id: str, what: str, at: datetime, room: str | None, entry: Entry
) -> dict[str, Any]:
    return {
        "kind": kind,
        "id": client_id,
        "type": what,
        "time": iso(at),
        "room_id": room,
        "entered_by": entry.by,
        "entered_at": iso(entry.at) if entry.at is not None else None,
    }


# --- background jobs for the API -------------------------------------------------------------


@dataclass
class ExportJob:
    job_id: str
    spec: ExportSpec
    state: str = "queued"  # queued | running | done | failed | cancelled
    progress: float = 0.0
    message: str = ""
    created: float = field(default_factory=time.time)
    finished: float | None = None
    error: dict[str, Any] | None = None
    result: ExportResult | None = None
    cancel: threading.Event = field(default_factory=threading.Event)

    def to_json(self) -> dict[str, Any]:
        spec = self.spec
        body: dict[str, Any] = {
            "id": self.job_id,
            "state": self.state,
            "progress": round(self.progress, 4),
            "message": self.message,
            "case": spec.case,
            "subject": spec.subject,
            "created": iso(datetime.fromtimestamp(self.created, UTC)),
            "finished": None if self.finished is None else iso(datetime.fromtimestamp(self.finished, UTC)),
            "exported_by": spec.exported_by,
            "from": None if spec.start is None else iso(spec.start),
            "to": None if spec.end is None else iso(spec.end),
            "media": spec.media,
            "originals_on_working": spec.originals_on_working,
            "accepted": [_accepted_json(a) for a in spec.accepted],
            "error": self.error,
        }
        if self.result is not None:
            body["export_id"] = self.result.export_id
            body["files"] = [p.name for p in (*self.result.master_images, *self.result.working_images)]
            # which image is the master (母盘) and which the working copy (工作盘)
            body["master_files"] = [p.name for p in self.result.master_images]
            body["working_files"] = [p.name for p in self.result.working_images]
            body["summary"] = self.result.summary
        return body


def _accepted_json(a: AcceptedInterval) -> dict[str, Any]:
    return {
        "start": iso(a.range.start),
        "end": iso(a.range.end),
        "note": a.note,
        "accepted_by": a.accepted_by,
    }


def _accepted_from(doc: dict[str, Any]) -> AcceptedInterval:
    rng = TimeRange(_parse(doc["start"]), _parse(doc["end"]))
    return AcceptedInterval(rng, doc["note"], doc.get("accepted_by", ""))


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


INTERRUPTED = "interrupted"  # error code of a job whose process died while it was queued or running


def _journal_entry(job: ExportJob) -> dict[str, Any]:
    spec = job.spec
    entry: dict[str, Any] = {
        "id": job.job_id,
        "state": job.state,
        "progress": job.progress,
        "message": job.message,
        "created": job.created,
        "finished": job.finished,
        "error": job.error,
        "spec": {
            "case": spec.case,
            "subject": spec.subject,
            "start": None if spec.start is None else iso(spec.start),
            "end": None if spec.end is None else iso(spec.end),
            "media": spec.media,
            "allow_unexplained": spec.allow_unexplained,
            "exported_by": spec.exported_by,
            "accepted": [_accepted_json(a) for a in spec.accepted],
            "originals_on_working": spec.originals_on_working,
        },
        "result": None,
    }
    if job.result is not None:
        r = job.result
        entry["result"] = {
            "export_id": r.export_id,
            "directory": str(r.directory),
            "master_images": [str(p) for p in r.master_images],
            "working_images": [str(p) for p in r.working_images],
            "manifest": str(r.manifest),
            "summary": r.summary,
        }
    return entry


def _job_from_entry(entry: dict[str, Any]) -> ExportJob:
    s = entry["spec"]
    spec = ExportSpec(
        case=s["case"],
        subject=s["subject"],
        start=None if s["start"] is None else _parse(s["start"]),
        end=None if s["end"] is None else _parse(s["end"]),
        media=s["media"],
        allow_unexplained=s["allow_unexplained"],
        exported_by=s["exported_by"],
        # journals written before these fields existed have neither
        accepted=tuple(_accepted_from(a) for a in s.get("accepted", [])),
        originals_on_working=s.get("originals_on_working"),
    )
    job = ExportJob(
        entry["id"],
        spec,
        entry["state"],
        entry["progress"],
        entry["message"],
        entry["created"],
        entry["finished"],
        entry["error"],
    )
    r = entry.get("result")
    if r is not None:
        job.result = ExportResult(
            r["export_id"],
            Path(r["directory"]),
            tuple(Path(p) for p in r["master_images"]),
            tuple(Path(p) for p in r["working_images"]),
            Path(r["manifest"]),
            r["summary"],
        )
    return job


class ExportJobs:
    """Runs exports one at a time in a worker thread (they are CPU and disk heavy).

    With a ``journal`` directory every state change of a job is written there (one JSON file per
    job, atomically), so jobs outlive the process: after a crash (SIGKILL, power loss) a job that
    was queued or running is reported ``failed`` with error code ``interrupted`` and no files (what
    it had written is never offered for download), and finished jobs keep their images.
    """

    def __init__(self, service: ExportService, journal: Path | None = None) -> None:
        self.service = service
        self._jobs: dict[str, ExportJob] = {}
        self._lock = threading.Lock()
        self._queue: list[str] = []
        self._wake = threading.Condition(self._lock)
        self._thread = threading.Thread(target=self._loop, name="exports", daemon=True)
        self._stopping = False
        self._journal = journal
        if journal is not None:
            self._load_journal(journal)
        self._thread.start()

    def start(self) -> None:
        """Run the worker again after :meth:`stop`: an app served a second time (the demo serves
        its centre after its own export) runs its startup again, and its jobs must run too."""
        with self._wake:
            if self._thread.is_alive() and not self._stopping:
                return
        self._thread.join(10)
        with self._wake:
            self._stopping = False
            self._thread = threading.Thread(target=self._loop, name="exports", daemon=True)
            self._thread.start()
            self._wake.notify()

    def _save(self, job: ExportJob) -> None:
        """Journal the job's state (tmp, fsync, rename); a failure is logged, the job goes on."""
        if self._journal is None:
            return
        path = self._journal / f"{job.job_id}.json"
        tmp = path.with_suffix(".tmp")
        try:
            self._journal.mkdir(parents=True, exist_ok=True)
            with tmp.open("w", encoding="utf-8") as fh:
                json.dump(_journal_entry(job), fh, ensure_ascii=False)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            logger.error("cannot journal export job", extra={"job": job.job_id, "error": str(exc)})

    def _load_journal(self, journal: Path) -> None:
        for path in sorted(journal.glob("*.json")) if journal.is_dir() else []:
            try:
                job = _job_from_entry(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                logger.error(
                    "unreadable export job journal entry", extra={"path": str(path), "error": str(exc)}
                )
                continue
            if job.state in ("queued", "running"):
                was = job.state
                job.state, job.finished, job.result = "failed", time.time(), None
                job.error = {
                    "code": INTERRUPTED,
                    "message": f"the service stopped while this export was {was}; nothing it wrote is "
                    "offered for download; start the export again",
                    "details": {"state_before": was, "progress": job.progress},
                }
                logger.warning("export job interrupted by a restart", extra={"job": job.job_id, "was": was})
                self._save(job)
            elif job.state == "done" and job.result is not None:
                missing = [
                    p for p in (*job.result.master_images, *job.result.working_images) if not p.exists()
                ]
                if missing:
                    job.state, job.result = "failed", None
                    job.error = {
                        "code": "files_missing",
                        "message": "the export's images are gone",
                        "details": {"missing": [p.name for p in missing]},
                    }
                    self._save(job)
            self._jobs[job.job_id] = job

    def submit(self, spec: ExportSpec) -> ExportJob:
        self.service.plan(spec)  # refuse bad requests (unknown case, unexplained footage) up front
        with self._lock:
            if self._stopping:
                # a job queued now would wait for ever in silence
                raise ServiceStopped("the export service is stopping: start the export again later")
        job = ExportJob(uuid.uuid4().hex[:12], spec)
        self._save(job)
        with self._wake:
            self._jobs[job.job_id] = job
            self._queue.append(job.job_id)
            self._wake.notify()
        return job

    def get(self, job_id: str) -> ExportJob:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise NotFoundError(f"no export job {job_id!r}", job_id=job_id)
        return job

    def list(self) -> list[ExportJob]:
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: j.created, reverse=True)

    def cancel(self, job_id: str) -> ExportJob:
        job = self.get(job_id)
        job.cancel.set()
        with self._lock:
            if job.state == "queued":
                self._queue.remove(job_id)
                job.state, job.finished = "cancelled", time.time()
        self._save(job)
        return job

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            for job in self._jobs.values():
                job.cancel.set()
            self._wake.notify()
        self._thread.join(10)

    def _loop(self) -> None:
        while True:
            with self._wake:
                while not self._queue and not self._stopping:
                    self._wake.wait()
                if self._stopping:
                    return
                job = self._jobs[self._queue.pop(0)]
                job.state = "running"
            self._save(job)
            self._run(job)

    def _run(self, job: ExportJob) -> None:
        def progress(fraction: float, message: str) -> None:
            job.progress, job.message = fraction, message

        try:
            job.result = self.service.run(job.spec, progress=progress, cancel=job.cancel)
            job.state, job.progress, job.message = "done", 1.0, "done"
        except VauditError as exc:
            job.state = "cancelled" if job.cancel.is_set() else "failed"
            job.error = exc.to_json()
            logger.warning(
                "export job ended", extra={"job": job.job_id, "state": job.state, "error": exc.message}
            )
        except Exception as exc:
            job.state = "failed"
            job.error = {"code": "internal_error", "message": f"{type(exc).__name__}: {exc}", "details": {}}
            logger.exception("export job crashed", extra={"job": job.job_id})
        finally:
            job.finished = time.time()
            self._save(job)
