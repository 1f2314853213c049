"""WORM evidence storage: every stored object locked until its retention ends, legal holds.

* :class:`RetentionPolicy` says how long an object is kept: a segment, its sidecar and a gap
  record by the kind of the room its camera (the key's first component) is in; body-camera clips
  (``bodycam/…``) for ``bodycam_days``; a camera the configuration does not know, the longest.
* :class:`WormS3Storage`: the bucket is created with object lock; every PUT carries the retention
  (mode and retain-until) and a SHA-256 checksum header (S3 requires one with object lock). S3
  itself then refuses to delete the object's version before retain-until or while a legal hold
  is on; this class refuses earlier and clearer (:class:`ObjectLocked`), never overwrites a locked
  key with other content, and once allowed deletes every version of the key.
* :class:`WormLocalStorage`: the same rules for a local directory, with a marker per object under
  ``<root>/.worm/<key>.json`` (retain-until, mode, legal hold; hidden from ``list``).
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import stat
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from minio.commonconfig import COMPLIANCE, GOVERNANCE
from minio.retention import Retention

from domain.errors import StorageError
from domain.types import UTC, RoomKind, iso, parse_iso
from pipeline.settings import RetentionConfig, Settings
from pipeline.storage import (
    STORED_FILE_MODE,
    LocalStorage,
    S3Storage,
    Storage,
    StoredObject,
    digest_file,
    open_storage,
)

log = logging.getLogger(__name__)

MARKER_DIR = ".worm"
BODYCAM_PREFIX = "bodycam"


class ObjectLocked(StorageError):
    """The object is under retention or legal hold: it may be neither deleted nor overwritten."""

    code = "object_locked"


@runtime_checkable
class EvidenceStorage(Protocol):
    """What retention and legal hold need of a storage back end (both WORM classes have it)."""

    policy: RetentionPolicy

    def set_legal_hold(self, key: str, on: bool) -> None: ...

    def legal_hold(self, key: str) -> bool: ...

    def retain_until(self, key: str) -> datetime | None: ...

    def delete(self, key: str) -> None: ...

    def exists(self, key: str) -> bool: ...


class RetentionPolicy:
    """Retain-until of a storage key, from the centre's rooms and the retention settings."""

    def __init__(self, cfg: RetentionConfig, room_kind_of_camera: dict[str, RoomKind]) -> None:
        self.cfg = cfg
        self._kinds = dict(room_kind_of_camera)

    @classmethod
    def from_settings(cls, settings: Settings) -> RetentionPolicy:
        return cls(settings.retention, {cam.id: room.kind for room, cam in settings.cameras()})

    def days_for_key(self, key: str) -> int:
        first = key.split("/", 1)[0]
        if first == BODYCAM_PREFIX:
            return self.cfg.bodycam_days
        return self.cfg.days_for(self._kinds.get(first))

    def retain_until(self, key: str, now: datetime | None = None) -> datetime:
        start = now or datetime.now(UTC)
        return start + timedelta(days=self.days_for_key(key))


def _expired(until: datetime | None, now: datetime | None = None) -> bool:
    return until is None or until <= (now or datetime.now(UTC))


class WormLocalStorage(LocalStorage):
    """A local directory that enforces retention and legal hold through per-object markers."""

    def __init__(self, root: Path, policy: RetentionPolicy) -> None:
        super().__init__(root)
        self.policy = policy
        self._marks = threading.Lock()

    def describe(self) -> str:
        return f"local directory {self.root} (WORM: retention and legal hold enforced)"

    def _marker(self, key: str) -> Path:
        return self.root / MARKER_DIR / f"{self._path(key).relative_to(self.root)}.json"

    def _read_marker(self, key: str) -> dict[str, Any]:
        try:
            data = json.loads(self._marker(key).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:  # a damaged marker locks rather than frees
            raise ObjectLocked(f"retention marker of {key} unreadable: {exc}", key=key) from exc
        return data if isinstance(data, dict) else {}

    def _write_marker(self, key: str, data: dict[str, Any]) -> None:
        path = self._marker(key)
        try:
            self._makedirs(path.parent)
            tmp = path.with_name(f".{path.name}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, STORED_FILE_MODE | stat.S_IWUSR)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh, sort_keys=True)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            raise StorageError(f"cannot write retention marker of {key}: {exc}", key=key) from exc

    def _locked_reason(self, key: str) -> str | None:
        mark = self._read_marker(key)
        if mark.get("legal_hold"):
            return "under legal hold"
        until = mark.get("retain_until")
        if until and not _expired(parse_iso(until)):
            return f"retained until {until} ({mark.get('mode', '')})"
        return None

    def put_file(self, key: str, path: Path, sha256: str) -> StoredObject:
        dest = self._path(key)
        with self._marks:
            if dest.is_file():
                have = digest_file(dest)
                reason = self._locked_reason(key)
                if have.sha256 != sha256.lower() and reason is not None:
                    raise ObjectLocked(f"refusing to overwrite {key}: {reason}", key=key)
            stored = super().put_file(key, path, sha256)
            mark = self._read_marker(key)
            if not mark.get("retain_until"):
                mark.update(retain_until=iso(self.policy.retain_until(key)), mode=self.policy.cfg.mode)
                mark.setdefault("legal_hold", False)
                self._write_marker(key, mark)
        return stored

    def delete(self, key: str) -> None:
        with self._marks:
            reason = self._locked_reason(key)
            if reason is not None:
                raise ObjectLocked(f"refusing to delete {key}: {reason}", key=key)
            super().delete(key)
            with contextlib.suppress(FileNotFoundError):
                self._marker(key).unlink()

    def set_legal_hold(self, key: str, on: bool) -> None:
        if not self.exists(key):
            raise StorageError(f"no stored object {key} to hold", key=key)
        with self._marks:
            mark = self._read_marker(key)
            mark["legal_hold"] = on
            self._write_marker(key, mark)

    def legal_hold(self, key: str) -> bool:
        return bool(self._read_marker(key).get("legal_hold"))

    def retain_until(self, key: str) -> datetime | None:
        until = self._read_marker(key).get("retain_until")
        return parse_iso(until) if until else None


class WormS3Storage(S3Storage):
    """An S3 bucket with object lock (MinIO ``mc mb --with-lock``, or created here with it)."""

    def __init__(self, *args: Any, policy: RetentionPolicy, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.policy = policy

    def describe(self) -> str:
        return f"S3 bucket {self.bucket} at {self.endpoint} (object lock)"

    def _ensure_bucket(self) -> None:
        if self._bucket_ready:
            return
        with self._lock, self._errors("create bucket"):
            if not self._bucket_ready and not self._client.bucket_exists(self.bucket):
                self._client.make_bucket(self.bucket, object_lock=True)
                log.info("created bucket %s with object lock at %s", self.bucket, self.endpoint)
            self._bucket_ready = True

    def _put(self, key: str, src: Any, size: int, sha256: str, content_type: str) -> Any:
        until = self.policy.retain_until(key)
        mode = COMPLIANCE if self.policy.cfg.mode == "COMPLIANCE" else GOVERNANCE
        checksum = base64.b64encode(bytes.fromhex(sha256)).decode("ascii")
        with self._errors("put", key):
            return self._client.put_object(
                self.bucket,
                key,
                src,
                size,
                content_type=content_type,
                metadata={
                    "sha256": sha256,
                    "x-amz-checksum-sha256": checksum,
                    "x-amz-sdk-checksum-algorithm": "SHA256",
                },
                part_size=self._part_size,
                num_parallel_uploads=1,
                retention=Retention(mode, until),
            )

    def _lock_state(self, key: str) -> tuple[bool, datetime | None] | None:
        """(legal hold on, retain-until) of the current version; None if there is no object."""
        obj = self._stat(key)
        if obj is None:
            return None
        headers = {k.lower(): v for k, v in (obj.metadata or {}).items()}
        until_text = headers.get("x-amz-object-lock-retain-until-date")
        until = parse_iso(str(until_text)) if until_text else None
        hold = str(headers.get("x-amz-object-lock-legal-hold", "")).upper() == "ON"
        if "x-amz-object-lock-legal-hold" not in headers:
            with self._errors("get legal hold", key):
                hold = bool(self._client.is_object_legal_hold_enabled(self.bucket, key))
        return hold, until

    def _locked_reason(self, key: str) -> str | None:
        state = self._lock_state(key)
        if state is None:
            return None
        hold, until = state
        if hold:
            return "under legal hold"
        if not _expired(until):
            return f"retained until {iso(until) if until else '?'}"
        return None

    def put_file(self, key: str, path: Path, sha256: str) -> StoredObject:
        obj = self._stat(key)
        if obj is not None and self._meta_sha(obj) != sha256.lower():
            reason = self._locked_reason(key)
            if reason is not None:
                raise ObjectLocked(f"refusing to overwrite {key}: {reason}", key=key)
        return super().put_file(key, path, sha256)

    def delete(self, key: str) -> None:
        reason = self._locked_reason(key)
        if reason is not None:
            raise ObjectLocked(f"refusing to delete {key}: {reason}", key=key)
        with self._errors("list versions", key):
            versions = [
                o.version_id
                for o in self._client.list_objects(self.bucket, prefix=key, include_version=True)
                if o.object_name == key
            ]
        for version in versions:  # a versioned bucket: remove every version, not just hide it
            with self._errors("delete", key):
                self._client.remove_object(self.bucket, key, version_id=version)
        with self._lock:
            self._etags.pop(key, None)

    def used_bytes(self) -> int:
        """Bytes of every version in the bucket (what the quota counts)."""
        self._ensure_bucket()
        with self._errors("list", ""):
            return sum(
                int(o.size or 0)
                for o in self._client.list_objects(self.bucket, recursive=True, include_version=True)
            )

    def set_legal_hold(self, key: str, on: bool) -> None:
        self._ensure_bucket()
        with self._errors("legal hold", key):
            if on:
                self._client.enable_object_legal_hold(self.bucket, key)
            else:
                self._client.disable_object_legal_hold(self.bucket, key)

    def legal_hold(self, key: str) -> bool:
        state = self._lock_state(key)
        return bool(state and state[0])

    def retain_until(self, key: str) -> datetime | None:
        state = self._lock_state(key)
        return None if state is None else state[1]


def open_evidence_storage(settings: Settings) -> Storage:
    """The storage back end; its WORM variant when ``retention.object_lock`` is set."""
    if not settings.retention.object_lock:
        return open_storage(settings.storage)
    policy = RetentionPolicy.from_settings(settings)
    cfg = settings.storage
    if cfg.kind == "local":
        return WormLocalStorage(cfg.path, policy)
    base = open_storage(cfg)  # validates the settings (ConfigError)
    assert isinstance(base, S3Storage)
    access = cfg.access_key.get_secret_value() if cfg.access_key else ""
    secret = cfg.secret_key.get_secret_value() if cfg.secret_key else ""
    return WormS3Storage(
        base.endpoint,
        base.bucket,
        access,
        secret,
        cfg.region,
        policy=policy,
        connect_timeout=cfg.connect_timeout_seconds,
        read_timeout=cfg.read_timeout_seconds,
    )
