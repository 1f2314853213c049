"""The recorder's side of the spool (docs/design/contracts.md): chain state, open-segment markers, sidecars,
gap records, and crash recovery of segments a dead process left open.

Durability order for a segment: media closed and fsynced (file + directory) -> sidecar written
atomically -> state.json written atomically -> partial marker removed -> sink told. A crash between
any two steps is repaired by :meth:`CameraSpool.recover` on the next start.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import av

from domain.errors import SpoolError
from domain.types import (
    ClockSource,
    GapCause,
    GapRecord,
    SegmentRecord,
    StreamInfo,
    from_unix,
    gap_key,
    iso,
    parse_iso,
    sidecar_key,
    to_unix,
)
from recorders.ts_writer import SPOOL_DIR_MODE, SPOOL_FILE_MODE, fsync_dir, make_dirs

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
PARTIAL_SUFFIX = ".partial.json"
QUARANTINE_DIR = "quarantine"
# An audio outage that has not ended yet. Hidden: the uploader takes only closed sidecars, and
# recovery takes only partial markers.
AUDIO_OUTAGE_FILE = ".audio_lost.open.json"


def prepare_spool_root(root: Path) -> None:
    """Create the spool root 0700, or take group and other access away from an existing one
    (a spool made by an older release was 0755 with 0644 files: closing the root closes them)."""
    try:
        make_dirs(root)
        mode = root.stat().st_mode & 0o7777
        if mode & 0o077:
            os.chmod(root, mode & ~0o077 | SPOOL_DIR_MODE)
    except OSError as exc:
        raise SpoolError(f"cannot create or protect the spool {root}: {exc}", path=str(root)) from exc


def atomic_write_json(path: Path, data: dict[str, Any]) -> None:
    """tmp + fsync + rename + directory fsync: the file is either the old or the new version."""
    try:
        make_dirs(path.parent)
        tmp = path.with_name(f".{path.name}.tmp")
        payload = json.dumps(data, ensure_ascii=False, sort_keys=True, indent=1).encode("utf-8")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, SPOOL_FILE_MODE)
        try:
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as exc:
        raise SpoolError(f"could not write {path}: {exc}", path=str(path)) from exc


def hash_file(path: Path, sm3: bool) -> tuple[str, str | None]:
    """SHA-256 (and SM3 if asked and available) of a closed file."""
    sha = hashlib.sha256()
    sm = hashlib.new("sm3") if sm3 else None
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                sha.update(chunk)
                if sm is not None:
                    sm.update(chunk)
    except OSError as exc:
        raise SpoolError(f"could not read {path} to hash it: {exc}", path=str(path)) from exc
    return sha.hexdigest(), None if sm is None else sm.hexdigest()


def growing_segment(spool: Path, camera_id: str) -> tuple[Path, datetime | None] | None:
    """The camera's open (growing) segment in the spool and its start, if it is recording: the
    newest partial marker whose media exists. Readers (live view, picture checks) tail it; the
    spool's layout is the recorder's, so the lookup lives here."""
    markers = sorted((spool / camera_id).glob(f"*/*/*/*{PARTIAL_SUFFIX}"))
    for marker in reversed(markers):
        media = marker.with_name(marker.name[: -len(PARTIAL_SUFFIX)] + ".ts")
        if media.exists():
            start: datetime | None = None
            try:
                doc = json.loads(marker.read_text(encoding="utf-8"))
                raw = doc.get("start")
                start = parse_iso(raw) if isinstance(raw, str) else None
            except (OSError, ValueError):
                start = None
            return media, start
    return None


@dataclass(frozen=True, slots=True)
class MediaSpan:
    packets: int
    video_frames: int
    seconds: float  # first video pts .. last video pts + one frame


def media_span(path: Path) -> MediaSpan | None:
    """Demux (no decoding) as far as the file is readable; None if it holds no video packet."""
    try:
        container: Any = av.open(str(path), format="mpegts")
    except Exception as exc:
        log.warning("partial segment unreadable", extra={"path": str(path), "error": str(exc)})
        return None
    packets = frames = 0
    first = last = prev_dts = None
    step = 0
    tb = 0.0
    try:
        video = container.streams.video[0] if container.streams.video else None
        if video is None:
            return None
        tb = float(video.time_base)
        try:
            for packet in container.demux():
                if not packet.size:
                    continue
                packets += 1
                if packet.stream_index != video.index or packet.pts is None:
                    continue
                frames += 1
                # With B-frames the frame shown last is not the one received last: the span ends
                # at the largest presentation time; a frame lasts one decoding-time step.
                if first is None:
                    first = last = packet.pts
                elif packet.pts > last:
                    last = packet.pts
                dts = packet.dts
                if dts is not None and prev_dts is not None and dts > prev_dts:
                    step = dts - prev_dts
                prev_dts = dts
        except Exception as exc:  # the file was cut mid-packet: keep what was read
            log.info(
                "partial segment read to its last complete packet",
                extra={"path": str(path), "error": str(exc)},
            )
    finally:
        container.close()
    if first is None or last is None:
        return None
    return MediaSpan(packets, frames, max(0.0, (last - first + step) * tb))


@dataclass(slots=True)
class ChainState:
    """What ``state.json`` remembers across runs and restarts."""

    last_seq: int = -1
    last_sha256: str | None = None
    last_end: float | None = None  # unix seconds

    def to_json(self, camera_id: str) -> dict[str, Any]:
        return {
            "camera_id": camera_id,
            "last_seq": self.last_seq,
            "last_sha256": self.last_sha256,
            "last_end": None if self.last_end is None else iso(from_unix(self.last_end)),
        }


class CameraSpool:
    """One camera's files in the spool."""

    def __init__(self, root: Path, camera_id: str) -> None:
        self.root = root
        self.camera_id = camera_id
        self.dir = root / camera_id
        self.state_path = self.dir / STATE_FILE

    # -- paths --------------------------------------------------------------------------------
    def media_path(self, key: str) -> Path:
        return self.root / key

    def sidecar_path(self, key: str) -> Path:
        return self.root / sidecar_key(key)

    def partial_path(self, key: str) -> Path:
        return self.root / (key.rsplit(".", 1)[0] + PARTIAL_SUFFIX)

    # -- chain state --------------------------------------------------------------------------
    def load_state(self) -> ChainState:
        try:
            data = json.loads(self.state_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return ChainState()
        except (OSError, ValueError) as exc:
            raise SpoolError(
                f"chain state {self.state_path} unreadable: {exc}", path=str(self.state_path)
            ) from exc
        end = data.get("last_end")
        return ChainState(
            int(data.get("last_seq", -1)),
            data.get("last_sha256"),
            None if end is None else to_unix(parse_iso(end)),
        )

    def save_state(self, state: ChainState) -> None:
        atomic_write_json(self.state_path, state.to_json(self.camera_id))

    # -- segments -----------------------------------------------------------------------------
    def probe_writable(self, size: int) -> None:
        """Write, fsync and remove ``size`` bytes in the camera's directory; SpoolError if the
        spool cannot take them (the worker's test that a full disk has room again)."""
        path = self.dir / ".probe"
        try:
            make_dirs(self.dir)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, SPOOL_FILE_MODE)
            try:
                view = memoryview(bytes(size))
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise SpoolError(f"spool {self.dir} still not writable: {exc}", path=str(path)) from exc
        finally:
            with contextlib.suppress(OSError):
                path.unlink()

    def prepare(self, key: str) -> Path:
        path = self.media_path(key)
        try:
            make_dirs(path.parent)
        except OSError as exc:
            raise SpoolError(f"could not create {path.parent}: {exc}", path=str(path.parent)) from exc
        return path

    def write_partial(self, key: str, marker: dict[str, Any]) -> None:
        atomic_write_json(self.partial_path(key), marker)

    def commit(self, record: SegmentRecord, state: ChainState) -> Path:
        """Sidecar, then chain state, then the partial marker goes. The media is already fsynced."""
        sidecar = self.sidecar_path(record.storage_key)
        atomic_write_json(sidecar, record.to_json())
        state.last_seq = record.seq
        state.last_sha256 = record.sha256
        state.last_end = to_unix(record.end)
        self.save_state(state)
        try:
            self.partial_path(record.storage_key).unlink(missing_ok=True)
        except OSError as exc:
            raise SpoolError(f"could not remove partial marker: {exc}", key=record.storage_key) from exc
        return sidecar

    def write_gap(self, gap: GapRecord) -> Path:
        path = self.root / gap_key(gap)
        atomic_write_json(path, gap.to_json())
        return path

    # -- audio outages ------------------------------------------------------------------------
    @property
    def audio_outage_path(self) -> Path:
        return self.dir / AUDIO_OUTAGE_FILE

    def open_audio_outage(self, start: float, detail: str) -> None:
        """The camera's audio stopped at ``start`` while its video goes on: kept on disk until it
        ends, so a crash meanwhile still records it (closed at the chain's end on recovery)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(
            self.audio_outage_path,
            {"camera_id": self.camera_id, "start": iso(from_unix(start)), "detail": detail},
        )

    def close_audio_outage(self, end: float) -> tuple[GapRecord, Path] | None:
        """The open audio outage as an ``audio_lost`` gap ending at ``end`` (written, marker gone)."""
        try:
            data = json.loads(self.audio_outage_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise SpoolError(
                f"audio outage marker unreadable: {exc}", path=str(self.audio_outage_path)
            ) from exc
        start = parse_iso(data["start"])
        gap = GapRecord(
            self.camera_id,
            start,
            max(start, from_unix(end)),
            GapCause.AUDIO_LOST,
            str(data.get("detail", "")),
        )
        path = self.write_gap(gap)
        try:
            self.audio_outage_path.unlink(missing_ok=True)
        except OSError as exc:
            raise SpoolError(f"could not remove audio outage marker: {exc}", path=str(path)) from exc
        return gap, path

    # -- crash recovery -----------------------------------------------------------------------
    def recover(
        self, compute_sm3: bool = False
    ) -> tuple[list[tuple[SegmentRecord, Path, Path]], list[tuple[GapRecord, Path]]]:
        """Close every segment a previous process left open (its ``*.partial.json``).

        Returns the recovered segments (record, media, sidecar) and the gaps their markers carried
        (the gap a run's first segment ends, written only once that segment is closed)."""
        gaps: list[tuple[GapRecord, Path]] = []
        if not self.dir.is_dir():
            return [], gaps
        markers: list[tuple[int, Path, dict[str, Any]]] = []
        for path in self.dir.rglob("*" + PARTIAL_SUFFIX):
            if QUARANTINE_DIR in path.relative_to(self.dir).parts:
                continue
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
                markers.append((int(data["seq"]), path, data))
            except (OSError, ValueError, KeyError) as exc:
                log.error(
                    "partial marker unreadable; kept aside",
                    extra={"camera_id": self.camera_id, "path": str(path), "error": str(exc)},
                )
                self._quarantine(path, None)
        state = self.load_state()
        done: list[tuple[SegmentRecord, Path, Path]] = []
        for _seq, marker_path, data in sorted(markers, key=lambda m: m[0]):
            result = self._recover_one(marker_path, data, state, compute_sm3, gaps)
            if result is not None:
                done.append(result)
        if self.audio_outage_path.exists() and state.last_end is not None:
            # the audio was still missing when the process stopped: it ends where the footage does
            closed = self.close_audio_outage(state.last_end)
            if closed is not None:
                gaps.append(closed)
        return done, gaps

    def _recover_one(
        self,
        marker_path: Path,
        data: dict[str, Any],
        state: ChainState,
        compute_sm3: bool,
        gaps: list[tuple[GapRecord, Path]],
    ) -> tuple[SegmentRecord, Path, Path] | None:
        key = str(data["storage_key"])
        media = self.media_path(key)
        sidecar = self.sidecar_path(key)
        seq = int(data["seq"])
        if sidecar.exists():
            # Crashed after the sidecar was written: the segment is closed; finish the bookkeeping.
            record = SegmentRecord.from_json(json.loads(sidecar.read_text(encoding="utf-8")))
            if state.last_seq < record.seq:
                state.last_seq, state.last_sha256 = record.seq, record.sha256
                state.last_end = to_unix(record.end)
                self.save_state(state)
            marker_path.unlink(missing_ok=True)
            return None
        if not media.exists() and state.last_seq >= seq:
            marker_path.unlink(missing_ok=True)  # closed, uploaded and removed before the crash
            return None
        span = media_span(media) if media.exists() else None
        if span is None:
            log.error(
                "partial segment is empty or unreadable; kept aside in quarantine, chain unchanged",
                extra={"camera_id": self.camera_id, "key": key},
            )
            self._quarantine(marker_path, media if media.exists() else None)
            return None
        fd = os.open(media, os.O_RDONLY)
        try:
            os.fsync(fd)
            size = os.fstat(fd).st_size
        finally:
            os.close(fd)
        sha, sm3 = hash_file(media, compute_sm3)
        mapping = data.get("mapping") or {}
        rate = float(mapping.get("rate", 1.0))
        start = parse_iso(data["start"])
        end = from_unix(to_unix(start) + span.seconds * rate)
        record = SegmentRecord(
            camera_id=self.camera_id,
            run_id=str(data["run_id"]),
            seq=seq,
            start=start,
            end=end,
            storage_key=key,
            size=size,
            sha256=sha,
            prev_sha256=data.get("prev_sha256"),
            clock_source=ClockSource(data["clock_source"]),
            stream=StreamInfo(**data["stream"]),
            sm3=sm3,
            packets=span.packets,
            recovered=True,
        )
        if data.get("gap_before"):
            gap = GapRecord.from_json(data["gap_before"])
            gaps.append((gap, self.write_gap(gap)))
        sidecar = self.commit(record, state)
        log.warning(
            "recovered partial segment after a crash",
            extra={"camera_id": self.camera_id, "key": key, "seconds": round(span.seconds, 3)},
        )
        return record, media, sidecar

    def _quarantine(self, marker: Path, media: Path | None) -> None:
        target = self.dir / QUARANTINE_DIR
        try:
            make_dirs(target)
            for path in (marker, media):
                if path is not None and path.exists():
                    shutil.move(str(path), str(target / path.name))
            fsync_dir(target)
        except OSError as exc:
            raise SpoolError(f"could not move {marker} aside: {exc}", path=str(marker)) from exc
