"""Import of body-worn camera (执法记录仪) clips: stream, hash, probe, store, index.

An upload is a ``multipart/form-data`` request. Its body is parsed as it streams in (never
held whole in memory, never buffered by the framework): the file part is written in chunks
to a temporary file while SHA-256 and SM3 are computed and the bytes counted; past
``api.max_upload_bytes`` the upload is aborted with 413 and the temporary file removed, so
an oversized upload costs at most the limit in disk, never more. A declared Content-Length
above the limit is refused before a byte is read.

The spooled file is then probed with PyAV (container, codecs, duration, resolution,
``creation_time``) and its first video frame decoded: a file that does not demux or decode
is refused with 422. Only then is it put into storage (keyed by device, start time and
content hash, so a re-upload of the same bytes is idempotent) and recorded in the index;
if the index write fails the stored object is deleted again. Whatever happens, the
temporary file is removed before the request ends: nothing half-stored remains.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import av
from fastapi import Request
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool

from domain.errors import PayloadTooLarge, StorageError, ValidationFailed, VauditError
from domain.types import ImportedClip, StreamInfo, utc
from indexer.case_records import SYSTEM, Writer
from indexer.footage import FootageIndex, NewImport
from pipeline.settings import ApiConfig
from pipeline.storage import Storage
from recorders.ts_writer import make_dirs

log = logging.getLogger(__name__)

FIELD_LIMIT = 64 * 1024  # bytes of all non-file form fields together
ENVELOPE_SLACK = FIELD_LIMIT + 16 * 1024  # multipart headers and boundaries on top of the file
FIELDS = frozenset({"device_id", "officer_id", "subject_ids", "start_time", "evidence"})
_DEVICE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_EXT = {"mov": "mp4", "mp4": "mp4", "mpegts": "ts", "matroska": "mkv", "avi": "avi", "flv": "flv"}
_WRITE_BATCH = 1024 * 1024  # hand the spool file ~1 MiB at a time to a worker thread


@dataclass
class _Spool:
    """The file part as it arrives: a temporary file, its hashes and its size."""

    path: Path
    limit: int
    size: int = 0
    sha256: Any = field(default_factory=hashlib.sha256)
    sm3: Any = field(default_factory=lambda: hashlib.new("sm3"))
    pending: list[bytes] = field(default_factory=list)
    pending_bytes: int = 0

    def add(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise PayloadTooLarge(f"upload exceeds {self.limit} bytes", limit=self.limit)
        self.pending.append(data)
        self.pending_bytes += len(data)

    def flush(self) -> None:
        """Write and hash what arrived (run in a worker thread: SM3 is CPU-bound)."""
        data = b"".join(self.pending)
        self.pending.clear()
        self.pending_bytes = 0
        if data:
            self.sha256.update(data)
            self.sm3.update(data)
            with self.path.open("ab") as f:
                f.write(data)


@dataclass
class _Form:
    fields: dict[str, list[str]] = field(default_factory=dict)
    filename: str = ""
    files: int = 0
    field_bytes: int = 0


@dataclass(frozen=True, slots=True)
class Probe:
    container: str
    duration: timedelta
    stream: StreamInfo
    creation_time: datetime | None


class _Parser:
    """python-multipart callbacks routing the file part to the spool and fields to a dict."""

    def __init__(self, boundary: bytes, spool: _Spool) -> None:
        self.form = _Form()
        self.spool = spool
        self._header_name = b""
        self._header_value = b""
        self._disposition: dict[bytes, bytes] = {}
        self._name = ""
        self._is_file = False
        self._value = bytearray()
        callbacks: Any = {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda d, s, e: self._grow("_header_name", d[s:e]),
            "on_header_value": lambda d, s, e: self._grow("_header_value", d[s:e]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }
        self.parser = MultipartParser(boundary, callbacks)

    def _grow(self, attr: str, data: bytes) -> None:
        setattr(self, attr, getattr(self, attr) + data)
        if len(getattr(self, attr)) > 8192:
            raise ValidationFailed(
                "multipart header too long", fields=[{"field": "form", "message": "bad header"}]
            )

    def _part_begin(self) -> None:
        self._disposition, self._name, self._is_file = {}, "", False
        self._value = bytearray()

    def _header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            _, self._disposition = parse_options_header(self._header_value)
        self._header_name, self._header_value = b"", b""

    def _headers_finished(self) -> None:
        self._name = self._disposition.get(b"name", b"").decode("utf-8", "replace")
        self._is_file = b"filename" in self._disposition
        if self._is_file:
            if self._name != "file" or self.form.files:
                raise ValidationFailed(
                    "exactly one file part named 'file' is expected",
                    fields=[{"field": f"form.{self._name}", "message": "unexpected file part"}],
                )
            self.form.files += 1
            self.form.filename = self._disposition[b"filename"].decode("utf-8", "replace")
        elif self._name not in FIELDS:
            raise ValidationFailed(
                f"unknown form field {self._name!r}",
                fields=[{"field": f"form.{self._name}", "message": "unknown"}],
            )

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._is_file:
            self.spool.add(data[start:end])
            return
        self.form.field_bytes += end - start
        if self.form.field_bytes > FIELD_LIMIT:
            raise PayloadTooLarge(f"form fields exceed {FIELD_LIMIT} bytes", limit=FIELD_LIMIT)
        self._value += data[start:end]

    def _part_end(self) -> None:
        if not self._is_file:
            self.form.fields.setdefault(self._name, []).append(self._value.decode("utf-8", "replace"))


def probe(path: Path) -> Probe:
    """Container, codecs, duration and creation time; the first video frame must decode."""

    def refuse(why: str) -> ValidationFailed:
        return ValidationFailed(
            f"not a playable video: {why}", fields=[{"field": "form.file", "message": why}]
        )

    try:
        opened: Any = av.open(str(path))
        with opened as container:
            video: Any = next((s for s in container.streams if s.type == "video"), None)
            if video is None:
                raise refuse("no video stream")
            audio: Any = next((s for s in container.streams if s.type == "audio"), None)
            duration = _duration(container, video)
            if duration is None or duration <= timedelta(0):
                raise refuse("no duration")
            frame: Any = next(iter(container.decode(video)), None)
            if frame is None:
                raise refuse("no video frame decodes")
            vctx: Any = video.codec_context
            actx: Any = audio.codec_context if audio is not None else None
            stream = StreamInfo(
                video_codec=vctx.name,
                width=int(frame.width or vctx.width or 0),
                height=int(frame.height or vctx.height or 0),
                audio_codec=actx.name if actx is not None else None,
                audio_sample_rate=int(actx.sample_rate) if actx is not None and actx.sample_rate else None,
                audio_channels=_channels(actx),
            )
            created = container.metadata.get("creation_time") or video.metadata.get("creation_time")
            return Probe(container.format.name.split(",")[0], duration, stream, _parse_creation(created))
    except ValidationFailed:
        raise
    except (av.FFmpegError, ValueError, OSError, StopIteration) as exc:  # av raises many kinds
        raise refuse(f"{type(exc).__name__}: {exc}".strip()) from exc


def _duration(container: Any, video: Any) -> timedelta | None:
    if container.duration:
        return timedelta(microseconds=int(container.duration))  # AV_TIME_BASE is microseconds
    if video.duration and video.time_base:
        return timedelta(seconds=float(video.duration * video.time_base))
    return None


def _channels(actx: Any) -> int | None:
    if actx is None:
        return None
    layout = getattr(actx, "layout", None)
    count = getattr(layout, "nb_channels", None) or getattr(actx, "channels", None)
    return int(count) if count else None


def _parse_creation(text: str | None) -> datetime | None:
    if not text:
        return None
    with contextlib.suppress(ValueError):
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        # ISO BMFF stores creation_time in UTC; FFmpeg prints it with or without a zone.
        return utc(value if value.tzinfo else value.replace(tzinfo=UTC))
    return None


def clip_key(device_id: str, start: datetime, sha256: str, container: str) -> str:
    """bodycam/<device>/YYYY/MM/DD/<start>_<sha256 prefix>.<ext>: sortable, content-addressed."""
    s = utc(start)
    ext = _EXT.get(container, "bin")
    return f"bodycam/{device_id}/{s:%Y/%m/%d}/{s:%Y%m%dT%H%M%S}{s.microsecond:06d}Z_{sha256[:16]}.{ext}"


@dataclass(frozen=True, slots=True)
class Metadata:
    device_id: str
    officer_id: int | None
    subject_ids: tuple[int, ...]
    start_time: datetime | None
    evidence: bool


def parse_metadata(fields: dict[str, list[str]]) -> Metadata:
    problems: list[dict[str, str]] = []

    def one(name: str) -> str | None:
        values = fields.get(name, [])
        if len(values) > 1:
            problems.append({"field": f"form.{name}", "message": "given more than once"})
        return values[0].strip() if values else None

    device = one("device_id") or ""
    if not _DEVICE.fullmatch(device):
        problems.append({"field": "form.device_id", "message": "required: 1-64 of A-Z a-z 0-9 _ . -"})
    officer: int | None = None
    raw_officer = one("officer_id")
    if raw_officer:
        if raw_officer.isdigit():
            officer = int(raw_officer)
        else:
            problems.append({"field": "form.officer_id", "message": "not an integer"})
    subjects: list[int] = []
    for raw in fields.get("subject_ids", []):
        for part in filter(None, (p.strip() for p in raw.split(","))):
            if part.isdigit():
                subjects.append(int(part))
            else:
                problems.append({"field": "form.subject_ids", "message": f"{part!r} is not an integer"})
    start: datetime | None = None
    raw_start = one("start_time")
    if raw_start:
        try:
            start = datetime.fromisoformat(raw_start.replace("Z", "+00:00"))
        except ValueError:
            problems.append({"field": "form.start_time", "message": "not an ISO 8601 time"})
        if start is not None and start.tzinfo is None:
            problems.append({"field": "form.start_time", "message": "needs a time zone (e.g. Z or +08:00)"})
    evidence = (one("evidence") or "false").lower()
    if evidence not in ("true", "false", "1", "0"):
        problems.append({"field": "form.evidence", "message": "true or false"})
    if problems:
        raise ValidationFailed("upload metadata refused", fields=problems)
    return Metadata(device, officer, tuple(dict.fromkeys(subjects)), start, evidence in ("true", "1"))


class BodycamImporter:
    """Turns one upload request into a stored, indexed :class:`ImportedClip`."""

    def __init__(
        self, storage: Storage, footage: FootageIndex, config: ApiConfig, tmp_dir: Path | None = None
    ):
        self._storage = storage
        self._footage = footage
        self._config = config
        self._tmp_dir = Path(tmp_dir) if tmp_dir is not None else Path(tempfile.gettempdir())

    @property
    def tmp_dir(self) -> Path:
        return self._tmp_dir

    async def import_request(self, request: Request, writer: Writer = SYSTEM) -> tuple[ImportedClip, bool]:
        """Spool, check, probe, store and index one upload. ``writer``: who uploads; an officer may
        attach the clip only to subjects of their own cases (checked before anything is stored)."""
        limit = self._config.max_upload_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit + ENVELOPE_SLACK:
            raise PayloadTooLarge(f"upload of {declared} bytes exceeds {limit}", limit=limit)
        ctype, params = parse_options_header(request.headers.get("content-type", ""))
        boundary = params.get(b"boundary")
        if ctype != b"multipart/form-data" or not boundary:
            raise ValidationFailed(
                "expected multipart/form-data with a boundary",
                fields=[{"field": "header.content-type", "message": "multipart/form-data required"}],
            )
        make_dirs(self._tmp_dir)  # footage waits here: the spool's modes (0700, files 0600)
        fd, name = tempfile.mkstemp(prefix="bodycam-", suffix=".part", dir=self._tmp_dir)
        os.close(fd)
        spool = _Spool(Path(name), limit)
        try:
            parser = _Parser(boundary, spool)
            try:
                async for chunk in request.stream():
                    parser.parser.write(chunk)
                    if spool.pending_bytes >= _WRITE_BATCH:
                        await run_in_threadpool(spool.flush)
                parser.parser.finalize()
            except FormParserError as exc:  # python-multipart's error for a broken envelope
                raise ValidationFailed(
                    f"multipart body is malformed: {exc}", fields=[{"field": "form", "message": "malformed"}]
                ) from exc
            await run_in_threadpool(spool.flush)
            if parser.form.files != 1 or spool.size == 0:
                raise ValidationFailed(
                    "no file uploaded", fields=[{"field": "form.file", "message": "required"}]
                )
            meta = parse_metadata(parser.form.fields)
            return await run_in_threadpool(self._finish, spool, meta, parser.form.filename, writer)
        finally:
            with contextlib.suppress(OSError):
                spool.path.unlink(missing_ok=True)

    def _finish(
        self, spool: _Spool, meta: Metadata, filename: str, writer: Writer
    ) -> tuple[ImportedClip, bool]:
        self._footage.check_import_refs(meta.officer_id, meta.subject_ids, writer=writer)
        info = probe(spool.path)
        start = meta.start_time or info.creation_time
        if start is None:
            raise ValidationFailed(
                "start time unknown: give start_time, the file has no creation_time",
                fields=[{"field": "form.start_time", "message": "required (the file has no creation_time)"}],
            )
        start = utc(start)
        limit = self._footage.store.now() + timedelta(seconds=self._config.max_future_seconds)
        if start > limit:
            raise ValidationFailed(
                "start time in the future", fields=[{"field": "form.start_time", "message": "in the future"}]
            )
        sha256, sm3 = spool.sha256.hexdigest(), spool.sm3.hexdigest()
        key = clip_key(meta.device_id, start, sha256, info.container)
        existed = self._storage.exists(key)
        self._storage.put_file(key, spool.path, sha256)
        new = NewImport(
            device_id=meta.device_id,
            officer_id=meta.officer_id,
            storage_key=key,
            original_name=filename[:500],
            size=spool.size,
            sha256=sha256,
            sm3=sm3,
            start=start,
            end=start + info.duration,
            container=info.container,
            stream=info.stream,
            subject_ids=meta.subject_ids,
            evidence=meta.evidence,
        )
        try:
            clip, created = self._footage.add_imported_file(new, writer)
        except VauditError:
            if not existed:  # the index refused it: do not leave an unindexed object behind
                try:
                    self._storage.delete(key)
                except StorageError:
                    log.exception("could not remove %s after the index refused it", key)
            raise
        log.info(
            "body-camera clip %s: %d bytes, %s, %s", key, spool.size, info.stream.video_codec, info.duration
        )
        return clip, created
