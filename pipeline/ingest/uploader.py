"""Drain the recorder's spool into storage with nothing lost (spool layout: docs/design/contracts.md).

For each closed sidecar, oldest first: upload the media (segments), verify it, upload the sidecar
under the key it has in the spool, verify it, hand the record to ``on_stored`` (the index write),
and only then delete media and sidecar from the spool. Any failure leaves both in the spool and the
step is redone later (puts and index writes are idempotent by key). Nothing leaves the spool
unverified: what cannot be uploaded (media missing, not matching its hash, malformed sidecar) is
moved to ``{spool}/quarantine/`` and reported through ``alert``.

Threads: one dispatcher scans the spool and hands single files to ``cfg.workers`` worker threads;
a file is in the hands of at most one worker. ``on_stored`` and ``alert`` are called from worker
threads (possibly several at once).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import queue
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from domain.errors import IntegrityError, SpoolError, StorageError, ValidationFailed
from domain.types import GapRecord, SegmentRecord, sidecar_key
from pipeline.settings import UploadConfig
from pipeline.storage import SourceMismatch, Storage, fsync_dir, validate_key
from recorders.ts_writer import make_dirs

log = logging.getLogger(__name__)

Record = SegmentRecord | GapRecord
QUARANTINE = "quarantine"
ALERT_UNAVAILABLE = "storage_unavailable"
ALERT_RESTORED = "storage_restored"
ALERT_INTEGRITY = "integrity"
ALERT_MALFORMED = "malformed_sidecar"
MIN_SCAN_INTERVAL = 0.1  # notify() storms (many cameras) cause at most this many spool scans a second


@dataclass(frozen=True, slots=True)
class UploaderStats:
    pending_files: int  # closed sidecars still in the spool
    spool_bytes: int  # every file under the spool: open segments, partials, quarantine included
    uploaded: int  # records stored, verified, indexed and removed from the spool
    failures: int  # failed attempts (storage, index, spool I/O)
    quarantined: int  # files moved to quarantine by this uploader
    storage_ok: bool
    oldest_pending_age: float | None  # seconds since the oldest pending sidecar was written
    last_error: str | None
    in_flight: int


def is_closed_sidecar(name: str) -> bool:
    return (
        name.endswith(".json")
        and not name.endswith(".partial.json")
        and name != "state.json"
        and not name.startswith(".")
    )


def parse_record(raw: bytes) -> Record:
    """A sidecar's record; ValueError (with the reason) if it is not a well-formed one."""
    try:
        data = json.loads(raw.decode("utf-8"))
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        kind = data.get("kind")
        if kind == "segment":
            segment = SegmentRecord.from_json(data)
            if not isinstance(segment.size, int) or segment.size < 0:
                raise ValueError(f"bad size {segment.size!r}")
            if not isinstance(segment.sha256, str) or not re.fullmatch(r"[0-9a-f]{64}", segment.sha256):
                raise ValueError(f"bad sha256 {segment.sha256!r}")
            return segment
        if kind == "gap":
            return GapRecord.from_json(data)
        raise ValueError(f"unknown kind {kind!r}")
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{type(exc).__name__}: {exc}") from exc


class _Quarantine(Exception):
    """The sidecar cannot be completed (its media is lost): move it aside and alert."""


class SpoolUploader:
    def __init__(
        self,
        spool: Path,
        storage: Storage,
        on_stored: Callable[[Record], None],
        cfg: UploadConfig,
        alert: Callable[[str, str], None] | None = None,
        *,
        rescan_seconds: float = 1.0,
    ) -> None:
        self._spool = spool
        self._quarantine = spool / QUARANTINE
        self._storage = storage
        self._on_stored = on_stored
        self._cfg = cfg
        self._alert = alert
        self._rescan_seconds = rescan_seconds
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._dirty = True
        self._stopping = False
        self._threads: list[threading.Thread] = []
        self._work: queue.SimpleQueue[Path | None] = queue.SimpleQueue()
        self._in_flight: set[Path] = set()
        self._finished: set[Path] = set()  # done since the last scan
        self._retry_at: dict[Path, float] = {}
        self._attempts: dict[Path, int] = {}
        self._storage_ok = True
        self._storage_backoff = 0.0
        self._storage_retry_at = 0.0
        self._outage_started = 0.0
        self._uploaded = 0
        self._failures = 0
        self._quarantined = 0
        self._last_error: str | None = None

    # -- control ------------------------------------------------------------------------------

    def start(self) -> None:
        with self._lock:
            if self._threads:
                raise RuntimeError("uploader already started")
            self._stopping = False
            self._threads = [threading.Thread(target=self._dispatch, name="upload-dispatch", daemon=True)]
            self._threads += [
                threading.Thread(target=self._worker, name=f"upload-{i}", daemon=True)
                for i in range(self._cfg.workers)
            ]
        for thread in self._threads:
            thread.start()
        log.info("uploader started: %s -> %s", self._spool, self._storage.describe())

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop after the files in hand; True if every thread ended within ``timeout``."""
        with self._lock:
            self._stopping = True
            threads, self._threads = self._threads, []
        self._wake.set()
        for _ in threads:
            self._work.put(None)
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in threads)

    def notify(self) -> None:
        """A segment or gap was closed: look at the spool now (cheap; safe from any thread)."""
        self._dirty = True
        self._wake.set()

    def drain(self, timeout: float) -> bool:
        """Wait until no closed sidecar is left in the spool (quarantine excepted) and no file is
        in hand. Needs a started uploader; False on timeout."""
        deadline = time.monotonic() + timeout
        self.notify()
        while True:
            pending, _ = self._walk()
            with self._lock:
                busy = bool(self._in_flight)
            if not pending and not busy:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)

    def stats(self) -> UploaderStats:
        pending, total = self._walk()
        oldest = min((mtime for mtime, _ in pending), default=None)
        with self._lock:
            return UploaderStats(
                pending_files=len(pending),
                spool_bytes=total,
                uploaded=self._uploaded,
                failures=self._failures,
                quarantined=self._quarantined,
                storage_ok=self._storage_ok,
                oldest_pending_age=None if oldest is None else max(0.0, time.time() - oldest / 1e9),
                last_error=self._last_error,
                in_flight=len(self._in_flight),
            )

    # -- scanning and dispatch ----------------------------------------------------------------

    def _walk(self) -> tuple[list[tuple[int, Path]], int]:
        """Closed sidecars (mtime_ns, path) oldest first, and the bytes of every spool file."""
        found: list[tuple[int, Path]] = []
        total = 0
        for dirpath, dirnames, filenames in os.walk(self._spool):
            here = Path(dirpath)
            if QUARANTINE in dirnames:  # ours ({spool}/quarantine) and the recorder's ({camera}/quarantine)
                dirnames.remove(QUARANTINE)
                for qpath, _, qfiles in os.walk(here / QUARANTINE):
                    for name in qfiles:
                        with contextlib.suppress(OSError):
                            total += (Path(qpath) / name).stat().st_size
            for name in filenames:
                try:
                    st = (here / name).stat()
                except OSError:
                    continue  # deleted while we looked
                total += st.st_size
                if is_closed_sidecar(name):
                    found.append((st.st_mtime_ns, here / name))
        found.sort()
        return found, total

    def _dispatch(self) -> None:
        backlog: list[Path] = []
        last_scan = 0.0
        scan_cost = 0.0
        while True:
            now = time.monotonic()
            since = now - last_scan
            # A scan stats every spool file. With a backlog of thousands (64 cameras on a loaded
            # host) it took seconds, with the workers idle meanwhile, and notify() (each closed
            # segment) asked for the next one at once: the backlog grew without bound. So a
            # notify() scans only once the backlog in hand is handed out, and periodic scans
            # take at most ~10 % of the dispatcher's time.
            with self._lock:
                waiting = any(
                    p not in self._in_flight and p not in self._finished and self._retry_at.get(p, 0.0) <= now
                    for p in backlog
                )
            periodic = max(self._rescan_seconds, 10 * scan_cost)
            if (self._dirty and since >= MIN_SCAN_INTERVAL and not waiting) or since >= periodic:
                self._dirty = False
                try:
                    backlog = [path for _, path in self._walk()[0]]
                except Exception:  # pragma: no cover - os.walk reports errors via onerror, not raises
                    log.exception("cannot scan spool %s", self._spool)
                last_scan = time.monotonic()
                scan_cost = last_scan - now
                with self._lock:
                    self._finished.clear()
                    known = set(backlog)
                    self._retry_at = {p: t for p, t in self._retry_at.items() if p in known}
                    self._attempts = {p: n for p, n in self._attempts.items() if p in known}
            since = time.monotonic() - last_scan
            wait = (MIN_SCAN_INTERVAL if self._dirty and not waiting else periodic) - since
            with self._lock:
                if self._stopping:
                    return
                now = time.monotonic()
                # While storage is down one probe at a time, after the backoff.
                limit = self._cfg.workers if self._storage_ok else 1
                if not self._storage_ok and now < self._storage_retry_at:
                    limit = 0
                    wait = min(wait, self._storage_retry_at - now)
                for path in backlog:
                    if len(self._in_flight) >= limit:
                        break
                    if path in self._in_flight or path in self._finished:
                        continue
                    retry = self._retry_at.get(path, 0.0)
                    if retry > now:
                        wait = min(wait, retry - now)
                        continue
                    self._in_flight.add(path)
                    self._work.put(path)
            self._wake.wait(max(0.01, wait))
            self._wake.clear()

    def _worker(self) -> None:
        while True:
            path = self._work.get()
            if path is None:
                return
            finished = False
            try:
                if not self._stopping:
                    finished = self._process(path)
            except Exception as exc:  # a bug or an unexpected library error: retry later, keep files
                log.exception("uploading %s failed unexpectedly", path)
                self._failed(path, f"{type(exc).__name__}: {exc}")
            finally:
                with self._lock:
                    self._in_flight.discard(path)
                    if finished:
                        self._finished.add(path)
                        self._retry_at.pop(path, None)
                        self._attempts.pop(path, None)
                self._wake.set()

    # -- one file ----------------------------------------------------------------------------

    def _process(self, sidecar: Path) -> bool:
        """Handle one closed sidecar; True when it has left the spool (stored or quarantined)."""
        rel = sidecar.relative_to(self._spool).as_posix()
        try:
            raw = sidecar.read_bytes()
        except FileNotFoundError:
            return True  # finished meanwhile (or moved by an operator)
        except OSError as exc:
            self._failed(sidecar, f"cannot read {rel}: {exc}")
            return False
        try:
            record = parse_record(raw)
            validate_key(rel)
            if isinstance(record, SegmentRecord):
                validate_key(record.storage_key)
                if sidecar_key(record.storage_key) != rel:
                    raise ValueError(f"describes segment {record.storage_key}, which belongs elsewhere")
        except (ValueError, ValidationFailed) as exc:
            return self._to_quarantine([sidecar], ALERT_MALFORMED, f"sidecar {rel} is malformed: {exc}")
        media = self._spool / record.storage_key if isinstance(record, SegmentRecord) else None
        try:
            if isinstance(record, SegmentRecord) and media is not None:
                self._store_media(record, media)
            self._storage.put_file(rel, sidecar, hashlib.sha256(raw).hexdigest())
            self._storage.verify(rel, len(raw), hashlib.sha256(raw).hexdigest())
        except _Quarantine as q:
            return self._to_quarantine([sidecar], ALERT_INTEGRITY, str(q))
        except SourceMismatch as exc:
            files = [p for p in (media, sidecar) if p is not None]
            message = f"{rel}: spool file does not match its record: {exc.message}"
            return self._to_quarantine(files, ALERT_INTEGRITY, message)
        except StorageError as exc:
            self._storage_failed(sidecar, exc)
            return False
        except (IntegrityError, SpoolError) as exc:
            log.error("%s: %s; kept in the spool, will retry", rel, exc.message)
            self._failed(sidecar, exc.message)
            return False
        self._storage_succeeded()
        try:
            self._on_stored(record)
        except Exception as exc:  # the index may be down: keep everything, retry later
            first = self._failed(sidecar, f"index write for {rel} failed: {exc}") == 1
            log.log(logging.WARNING if first else logging.DEBUG, "index write for %s failed: %s", rel, exc)
            return False
        try:
            if media is not None:
                media.unlink(missing_ok=True)
                fsync_dir(media.parent)
            sidecar.unlink(missing_ok=True)
            fsync_dir(sidecar.parent)
        except OSError as exc:
            log.error("stored %s but cannot remove it from the spool: %s", rel, exc)
            self._failed(sidecar, f"cannot remove {rel} from the spool: {exc}")
            return False
        with self._lock:
            self._uploaded += 1
        log.debug("stored %s", rel)
        return True

    def _store_media(self, record: SegmentRecord, media: Path) -> None:
        """Put and verify a segment's media; :class:`_Quarantine` if it is lost."""
        key = record.storage_key
        if media.exists():
            self._storage.put_file(key, media, record.sha256)
            self._storage.verify(key, record.size, record.sha256)
            return
        # No media in the spool: either a crash between the deletes (already stored) or a loss.
        if not self._storage.exists(key):
            raise _Quarantine(f"media {key} is missing from the spool and was never stored")
        try:
            self._storage.verify(key, record.size, record.sha256)
        except IntegrityError as exc:
            raise _Quarantine(f"media {key} is missing from the spool; stored copy: {exc.message}") from exc
        log.info("finishing %s: media already stored and verified", key)

    # -- outcomes ----------------------------------------------------------------------------

    def _failed(self, path: Path, message: str) -> int:
        """Count a failed attempt for ``path`` and schedule its retry; returns the attempt number."""
        with self._lock:
            self._failures += 1
            self._last_error = message
            attempts = self._attempts.get(path, 0) + 1
            self._attempts[path] = attempts
            delay = min(self._cfg.retry_initial_seconds * 2 ** (attempts - 1), self._cfg.retry_max_seconds)
            self._retry_at[path] = time.monotonic() + delay
        return attempts

    def _storage_failed(self, path: Path, exc: StorageError) -> None:
        with self._lock:
            self._failures += 1
            self._last_error = exc.message
            began = self._storage_ok
            if began:
                self._storage_ok = False
                self._outage_started = time.monotonic()
                self._storage_backoff = self._cfg.retry_initial_seconds
            else:
                self._storage_backoff = min(self._storage_backoff * 2, self._cfg.retry_max_seconds)
            self._storage_retry_at = time.monotonic() + self._storage_backoff
        if began:
            message = f"storage unavailable ({self._storage.describe()}): {exc.message}; spooling"
            log.error("%s", message)
            self._send(ALERT_UNAVAILABLE, message)
        else:
            log.debug("storage still unavailable: %s", exc.message)

    def _storage_succeeded(self) -> None:
        with self._lock:
            if self._storage_ok:
                return
            self._storage_ok = True
            self._storage_backoff = 0.0
            self._storage_retry_at = 0.0
            down = time.monotonic() - self._outage_started
        message = f"storage restored ({self._storage.describe()}) after {down:.1f} s; draining the spool"
        log.warning("%s", message)
        self._send(ALERT_RESTORED, message)
        self._wake.set()

    def _to_quarantine(self, files: list[Path], kind: str, message: str) -> bool:
        """Move files (media first, sidecar last) to ``{spool}/quarantine/`` keeping their paths;
        False (retry later) if they could not be moved."""
        for path in files:
            if not path.exists():
                continue
            dest = self._quarantine / path.relative_to(self._spool)
            n = 0
            while dest.exists():
                n += 1
                dest = dest.with_name(f"{path.name}.{n}")
            try:
                make_dirs(dest.parent)
                os.replace(path, dest)
                fsync_dir(dest.parent)
                fsync_dir(path.parent)
            except OSError as exc:
                log.error("cannot quarantine %s: %s", path, exc)
                self._failed(files[-1], f"cannot quarantine {path}: {exc}")
                return False
        with self._lock:
            self._quarantined += len(files)
            self._last_error = message
        log.error("%s; moved to %s", message, self._quarantine)
        self._send(kind, f"{message}; moved to {self._quarantine}")
        return True

    def _send(self, kind: str, message: str) -> None:
        if self._alert is None:
            return
        try:
            self._alert(kind, message)
        except Exception:
            log.exception("alert callback failed for %s", kind)


__all__ = ["Record", "SpoolUploader", "UploaderStats", "is_closed_sidecar", "parse_record"]
