"""Object storage back ends: a local directory or an S3 bucket (MinIO, any S3-compatible store).

Both satisfy :class:`domain.types.BlobReader`. File-system, ``minio`` and ``urllib3`` errors are mapped
here: StorageUnavailable (endpoint down, timeout, 5xx), StorageError (refused), IntegrityError (stored
bytes differ from their size/hash), NotFoundError, ValidationFailed (key refused), SpoolError (the
local source file could not be read). Keys are checked by :func:`validate_key`; nothing is ever
written outside the storage root or bucket.
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import io
import logging
import os
import re
import tempfile
import threading
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

import certifi
import urllib3
from minio import Minio
from minio.error import InvalidResponseError, MinioException, S3Error, ServerError
from minio.helpers import check_bucket_name

from domain.errors import (
    ConfigError,
    IntegrityError,
    NotFoundError,
    SpoolError,
    StorageError,
    StorageUnavailable,
    ValidationFailed,
)
from pipeline.settings import StorageConfig

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024
#: Files up to this size go to S3 in one PUT, so their ETag is the plain MD5 (segments are <= ~64 MiB).
S3_PART_SIZE = 128 * 1024 * 1024
MAX_KEY_LENGTH = 1024
_CONTENT_TYPES = {"ts": "video/mp2t", "json": "application/json"}
_REMEMBER_ETAGS = 4096  # MD5s of recent puts, for verify() without reading the object back
_PART = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,254}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
# Stored evidence: read-only for the service account and its group (a backup or verification
# account put in that group), nothing for others; directories 0750 (docs/DEPLOY.md "File modes").
STORED_FILE_MODE = 0o440
STORED_DIR_MODE = 0o750
_MISSING_CODES = frozenset({"NoSuchKey", "NoSuchObject", "NotFound", "ResourceNotFound"})
_BUSY_CODES = frozenset({"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout"})


class SourceMismatch(IntegrityError):
    """The local file handed to :meth:`Storage.put_file` does not match the checksum it came with."""

    code = "source_integrity_error"


@dataclass(frozen=True, slots=True)
class StoredObject:
    key: str
    size: int
    sha256: str
    etag: str | None = None  # S3 only: the MD5 (single part) the store reported


def validate_key(key: str) -> str:
    """``key`` if safe, else :class:`ValidationFailed`: relative, ``/``-separated, no empty, ``.`` or
    ``..`` component, only ``A-Z a-z 0-9 _ . -``, no component starting with ``.``."""
    why = _key_problem(key)
    if why:
        raise ValidationFailed(f"storage key {key!r} refused: {why}", key=repr(key))
    return key


def validate_prefix(prefix: str) -> str:
    """A listing prefix: empty, or a key (possibly partial in its last component, or ending in ``/``)."""
    if prefix == "":
        return prefix
    why = "empty path component ('//')" if "//" in prefix else _key_problem(prefix.removesuffix("/"))
    if why:
        raise ValidationFailed(f"storage prefix {prefix!r} refused: {why}", prefix=repr(prefix))
    return prefix


def _key_problem(key: object) -> str | None:
    if not isinstance(key, str) or not key:
        return "empty or not a string"
    if len(key) > MAX_KEY_LENGTH:
        return f"longer than {MAX_KEY_LENGTH} characters"
    for bad, why in (("\x00", "contains NUL"), ("\\", "contains a backslash"), ("//", "empty component")):
        if bad in key:
            return why
    if key.startswith("/") or key.endswith("/"):
        return "absolute path" if key.startswith("/") else "ends with '/'"
    for part in key.split("/"):
        if part in (".", ".."):
            return f"path component {part!r} not allowed"
        if not _PART.fullmatch(part):
            return f"path component {part!r} has characters outside A-Z a-z 0-9 _ . - (or starts with '.')"
    return None


def _check_sha(sha256: str) -> str:
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256.lower()):
        raise ValidationFailed(f"not a SHA-256 hex digest: {sha256!r}")
    return sha256.lower()


@dataclass(frozen=True, slots=True)
class Digest:
    size: int
    sha256: str
    etag: str  # S3 ETag for this part size: MD5 hex, or md5-of-part-md5s + "-N"


class _Hasher:
    def __init__(self, part_size: int) -> None:
        self._sha = hashlib.sha256()
        self._part_size = part_size
        self._parts: builtins.list[bytes] = []
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._in_part = 0
        self.size = 0

    def update(self, data: bytes) -> None:
        self._sha.update(data)
        self.size += len(data)
        view = memoryview(data)
        while view:
            take = min(len(view), self._part_size - self._in_part)
            self._md5.update(view[:take])
            self._in_part += take
            view = view[take:]
            if self._in_part == self._part_size:
                self._parts.append(self._md5.digest())
                self._md5 = hashlib.md5(usedforsecurity=False)
                self._in_part = 0

    def digest(self) -> Digest:
        parts = list(self._parts)
        if self._in_part or not parts:
            parts.append(self._md5.digest())
        if len(parts) == 1:
            etag = parts[0].hex()
        else:
            etag = hashlib.md5(b"".join(parts), usedforsecurity=False).hexdigest() + f"-{len(parts)}"
        return Digest(self.size, self._sha.hexdigest(), etag)


def digest_file(path: Path, part_size: int = S3_PART_SIZE) -> Digest:
    """Size, SHA-256 and S3 ETag of a local file; :class:`SpoolError` if it cannot be read."""
    hasher = _Hasher(part_size)
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(CHUNK):
                hasher.update(chunk)
    except OSError as exc:
        raise SpoolError(f"cannot read {path}: {exc}", path=str(path)) from exc
    return hasher.digest()


def _sha256_copy(path: Path, out: BinaryIO | None = None) -> tuple[int, str]:
    """(size, SHA-256) of a file without the S3 ETag's MD5s (local storage has no use for them),
    reading it once and copying it into ``out`` on the way if given. A read failure is
    :class:`SpoolError`; a write failure stays an ``OSError``."""
    sha = hashlib.sha256()
    size = 0
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    try:
        src = open(path, "rb", buffering=0)  # noqa: SIM115 (closed below; reads and writes fail apart)
    except OSError as exc:
        raise SpoolError(f"cannot read {path}: {exc}", path=str(path)) from exc
    with src:
        while True:
            try:
                n = src.readinto(buf)
            except OSError as exc:
                raise SpoolError(f"cannot read {path}: {exc}", path=str(path)) from exc
            if not n:
                break
            sha.update(view[:n])
            if out is not None:
                out.write(view[:n])
            size += n
    return size, sha.hexdigest()


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Storage(ABC):
    """Where footage and sidecars live for good. Satisfies :class:`domain.types.BlobReader`.

    - ``put_file``: store the file at ``key``; ``sha256`` is what it must hash to (else
      :class:`SourceMismatch`, nothing stored). Re-putting identical content is a no-op; a stored
      copy that does not match is replaced (logged).
    - ``verify``: :class:`IntegrityError` unless the stored object has this size and checksum.
    - ``open`` (caller closes) and ``size``: :class:`NotFoundError` if absent; ``list``: sorted keys.
    - ``delete``: deleting a missing key is not an error. ``describe``: for logs (no secrets).
    """

    @abstractmethod
    def put_file(self, key: str, path: Path, sha256: str) -> StoredObject: ...

    @abstractmethod
    def verify(self, key: str, size: int, sha256: str) -> None: ...

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def open(self, key: str) -> BinaryIO: ...

    @abstractmethod
    def size(self, key: str) -> int: ...

    @abstractmethod
    def list(self, prefix: str) -> Iterator[str]: ...

    @abstractmethod
    def delete(self, key: str) -> None: ...

    @abstractmethod
    def describe(self) -> str: ...


class LocalStorage(Storage):
    """A directory tree: ``root/<key>``. Writes are atomic (temp file, fsync, rename, fsync dir)
    and stored files are made read-only (:data:`STORED_FILE_MODE`)."""

    def __init__(self, root: Path) -> None:
        try:
            root.mkdir(parents=True, exist_ok=True, mode=STORED_DIR_MODE)
            # A root made by an older release was 0755 with 0444 files: closing it to others
            # closes everything below it.
            mode = root.stat().st_mode & 0o7777
            if mode & 0o027:
                os.chmod(root, mode & ~0o027)
        except OSError as exc:
            raise StorageError(f"cannot create storage directory {root}: {exc}", path=str(root)) from exc
        self.root = Path(os.path.realpath(root))

    def describe(self) -> str:
        return f"local directory {self.root}"

    def _path(self, key: str) -> Path:
        return self.root / validate_key(key)

    def _inside(self, path: Path) -> None:
        """Refuse a path that leaves the root through a symlink."""
        real = os.path.realpath(path)
        if os.path.commonpath([real, str(self.root)]) != str(self.root):
            raise StorageError(f"{path} resolves outside the storage root {self.root}", path=str(path))

    def _makedirs(self, directory: Path) -> None:
        missing: builtins.list[Path] = []
        probe = directory
        while not probe.is_dir():
            missing.append(probe)
            probe = probe.parent
        self._inside(probe)
        for new in reversed(missing):
            with contextlib.suppress(FileExistsError):
                new.mkdir(mode=STORED_DIR_MODE)
            fsync_dir(new.parent)
        self._inside(directory)

    def put_file(self, key: str, path: Path, sha256: str) -> StoredObject:
        dest = self._path(key)
        sha256 = _check_sha(sha256)
        try:
            self._makedirs(dest.parent)
            have = digest_file(dest) if dest.is_file() else None
        except (OSError, SpoolError) as exc:
            raise StorageError(f"cannot prepare {dest}: {exc}", key=key) from exc
        if have is not None:
            if have.sha256 == sha256:
                return StoredObject(key, have.size, sha256)
            log.warning("replacing stored %s: it hashes to %s, not %s", key, have.sha256, sha256)
        # One read of the source: hashed as it is copied, and the copy is kept only if the source
        # hashed to ``sha256``. verify() then re-hashes what landed in the store.
        tmp: str | None = None
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
            with os.fdopen(fd, "wb") as out:
                size, got = _sha256_copy(path, out)
                if got != sha256:
                    raise SourceMismatch(f"{path} hashes to {got}, not {sha256}; not stored", key=key)
                out.flush()
                os.fsync(out.fileno())
                os.fchmod(out.fileno(), STORED_FILE_MODE)
            os.replace(tmp, dest)
            tmp = None
            fsync_dir(dest.parent)
        except OSError as exc:
            raise StorageError(f"cannot write {dest}: {exc}", key=key) from exc
        finally:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
        return StoredObject(key, size, sha256)

    def verify(self, key: str, size: int, sha256: str) -> None:
        path = self._path(key)
        sha256 = _check_sha(sha256)
        try:
            self._inside(path)
            actual = path.stat().st_size
        except FileNotFoundError as exc:
            raise IntegrityError(f"stored {key} is missing", key=key) from exc
        except OSError as exc:
            raise StorageError(f"cannot stat {path}: {exc}", key=key) from exc
        if actual != size:
            raise IntegrityError(f"stored {key} has {actual} bytes, expected {size}", key=key)
        try:
            have_size, have_sha = _sha256_copy(path)
        except SpoolError as exc:
            raise StorageError(f"cannot read stored {key}: {exc.message}", key=key) from exc
        if have_sha != sha256 or have_size != size:
            raise IntegrityError(f"stored {key} hashes to {have_sha}, expected {sha256}", key=key)

    def exists(self, key: str) -> bool:
        path = self._path(key)
        self._inside(path)
        return path.is_file()

    @contextlib.contextmanager
    def _reading(self, key: str) -> Iterator[Path]:
        path = self._path(key)
        self._inside(path)
        try:
            yield path
        except FileNotFoundError as exc:
            raise NotFoundError(f"no stored object {key}", key=key) from exc
        except OSError as exc:
            raise StorageError(f"cannot read {path}: {exc}", key=key) from exc

    def open(self, key: str) -> BinaryIO:
        with self._reading(key) as path:
            return open(path, "rb")

    def size(self, key: str) -> int:
        with self._reading(key) as path:
            return path.stat().st_size

    def list(self, prefix: str) -> Iterator[str]:
        validate_prefix(prefix)
        base = self.root / prefix.rsplit("/", 1)[0] if "/" in prefix else self.root
        keys: builtins.list[str] = []
        if base.is_dir():
            self._inside(base)
            for dirpath, dirnames, filenames in os.walk(base, onerror=None):
                dirnames[:] = [d for d in dirnames if not d.startswith(".")]
                rel_dir = os.path.relpath(dirpath, self.root).replace(os.sep, "/")
                for name in filenames:
                    if name.startswith("."):
                        continue  # temp files of an interrupted put
                    key = name if rel_dir == "." else f"{rel_dir}/{name}"
                    if key.startswith(prefix):
                        keys.append(key)
        return iter(sorted(keys))

    def delete(self, key: str) -> None:
        path = self._path(key)
        self._inside(path)
        try:
            path.unlink(missing_ok=True)
            fsync_dir(path.parent)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StorageError(f"cannot delete {path}: {exc}", key=key) from exc


class _S3Reader(io.RawIOBase):
    """A GET response as a raw stream; network errors surface as :class:`StorageUnavailable`."""

    def __init__(self, response: Any, key: str) -> None:
        self._response = response
        self._key = key

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            data = self._response.read(len(buffer))
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise StorageUnavailable(f"reading {self._key} failed: {exc}", key=self._key) from exc
        n = len(data)
        buffer[:n] = data
        return n

    def close(self) -> None:
        if not self.closed:
            with contextlib.suppress(Exception):
                self._response.close()
                self._response.release_conn()
        super().close()


class S3Storage(Storage):
    """An S3 bucket through the ``minio`` SDK. Short timeouts and no HTTP retries, so an outage is
    reported quickly as :class:`StorageUnavailable` and the caller (the uploader) decides when to retry.

    Files up to :data:`S3_PART_SIZE` are sent in one PUT so the ETag is their MD5, computed while
    hashing; the SHA-256 is stored as user metadata ``x-amz-meta-sha256``. :meth:`verify` compares
    size, the metadata hash and the ETag with the MD5 remembered from the put; for an object this
    process did not put, it downloads and re-hashes the object.
    """

    def __init__(
        self,
        endpoint: str,
        bucket: str,
        access_key: str,
        secret_key: str,
        region: str = "us-east-1",
        *,
        connect_timeout: float = 3.0,
        read_timeout: float = 10.0,
        part_size: int = S3_PART_SIZE,
        cert_check: bool = True,
    ) -> None:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
            raise ConfigError(f"S3 endpoint {endpoint!r} must be http(s)://host[:port]", endpoint=endpoint)
        self.endpoint = f"{parts.scheme}://{parts.netloc}"
        self.bucket = bucket
        self._part_size = part_size
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
            retries=False,
            maxsize=16,
            cert_reqs="CERT_REQUIRED" if cert_check else "CERT_NONE",
            ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
        )
        try:
            secure = parts.scheme == "https"
            self._client = Minio(
                parts.netloc, access_key, secret_key, secure=secure, region=region, http_client=http
            )
            check_bucket_name(bucket)
        except ValueError as exc:
            raise ConfigError(f"S3 storage settings refused: {exc}", bucket=bucket) from exc
        self._lock = threading.Lock()
        self._bucket_ready = False
        self._etags: OrderedDict[str, tuple[str, str]] = OrderedDict()  # key -> (sha256, etag)

    def describe(self) -> str:
        return f"S3 bucket {self.bucket} at {self.endpoint}"

    @contextlib.contextmanager
    def _errors(self, op: str, key: str | None = None) -> Iterator[None]:
        what = f"S3 {op} {key or self.bucket} at {self.endpoint}"
        try:
            yield
        except S3Error as exc:
            if exc.code in _MISSING_CODES:
                raise NotFoundError(f"no stored object {key}", key=key) from exc
            if exc.code == "NoSuchBucket":
                self._bucket_ready = False
            if exc.code in _BUSY_CODES:
                raise StorageUnavailable(f"{what}: {exc.code} {exc.message}", key=key) from exc
            raise StorageError(f"{what} refused: {exc.code} {exc.message}", key=key) from exc
        except (ServerError, InvalidResponseError) as exc:
            raise StorageUnavailable(f"{what} failed: {exc}", key=key) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise StorageUnavailable(f"{what}: endpoint unreachable ({exc})", key=key) from exc
        except MinioException as exc:
            raise StorageError(f"{what} failed: {exc}", key=key) from exc

    def _ensure_bucket(self) -> None:
        if self._bucket_ready:
            return
        with self._lock, self._errors("create bucket"):
            if not self._bucket_ready and not self._client.bucket_exists(self.bucket):
                # a concurrent creator makes this fail once (BucketAlreadyOwnedByYou); the retry sees it
                self._client.make_bucket(self.bucket)
                log.info("created bucket %s at %s", self.bucket, self.endpoint)
            self._bucket_ready = True

    def _stat(self, key: str) -> Any | None:
        self._ensure_bucket()
        try:
            with self._errors("stat", key):
                return self._client.stat_object(self.bucket, key)
        except NotFoundError:
            return None

    def _note(self, key: str, sha256: str, etag: str) -> None:
        with self._lock:
            self._etags[key] = (sha256, etag)
            self._etags.move_to_end(key)
            while len(self._etags) > _REMEMBER_ETAGS:
                self._etags.popitem(last=False)

    @staticmethod
    def _meta_sha(obj: Any) -> str | None:
        value = obj.metadata.get("x-amz-meta-sha256") if obj.metadata is not None else None
        return str(value).lower() if value is not None else None

    def put_file(self, key: str, path: Path, sha256: str) -> StoredObject:
        validate_key(key)
        sha256 = _check_sha(sha256)
        want = digest_file(path, self._part_size)
        if want.sha256 != sha256:
            raise SourceMismatch(f"{path} hashes to {want.sha256}, not {sha256}; not stored", key=key)
        old = self._stat(key)
        if old is not None:
            if old.size == want.size and old.etag == want.etag and self._meta_sha(old) == sha256:
                self._note(key, sha256, want.etag)
                return StoredObject(key, want.size, sha256, want.etag)
            log.warning("replacing stored %s: it does not match %s (%d bytes)", key, sha256, want.size)
        content_type = _CONTENT_TYPES.get(key.rsplit(".", 1)[-1], "application/octet-stream")
        try:
            src = open(path, "rb")  # noqa: SIM115
        except OSError as exc:
            raise SpoolError(f"cannot read {path}: {exc}", path=str(path)) from exc
        with src:
            try:
                result = self._put(key, src, want.size, sha256, content_type)
            except StorageError:
                if self._bucket_ready:
                    raise
                self._ensure_bucket()  # the bucket vanished (a wiped endpoint): create it, try once more
                src.seek(0)
                result = self._put(key, src, want.size, sha256, content_type)
        etag = (result.etag or "").strip('"')
        if etag != want.etag:
            raise IntegrityError(f"S3 put {key}: ETag {etag!r}, expected {want.etag!r}", key=key)
        self._note(key, sha256, want.etag)
        return StoredObject(key, want.size, sha256, etag)

    def _put(self, key: str, src: BinaryIO, size: int, sha256: str, content_type: str) -> Any:
        with self._errors("put", key):
            return self._client.put_object(
                self.bucket,
                key,
                src,
                size,
                content_type=content_type,
                metadata={"sha256": sha256},
                part_size=self._part_size,
                num_parallel_uploads=1,
            )

    def verify(self, key: str, size: int, sha256: str) -> None:
        validate_key(key)
        sha256 = _check_sha(sha256)
        obj = self._stat(key)
        if obj is None:
            raise IntegrityError(f"stored {key} is missing", key=key)
        if obj.size != size:
            raise IntegrityError(f"stored {key} has {obj.size} bytes, expected {size}", key=key)
        if (label := self._meta_sha(obj)) != sha256:
            raise IntegrityError(f"stored {key} is labelled {label}, expected {sha256}", key=key)
        with self._lock:
            known = self._etags.get(key)
        if known is not None and known[0] == sha256:
            if obj.etag != known[1]:
                raise IntegrityError(f"stored {key} has ETag {obj.etag}, expected MD5 {known[1]}", key=key)
            return
        hasher = _Hasher(self._part_size)  # not put by this process: read it back
        with self.open(key) as fh:
            while chunk := fh.read(CHUNK):
                hasher.update(chunk)
        got = hasher.digest()
        if got.sha256 != sha256 or got.size != size:
            raise IntegrityError(f"stored {key} hashes to {got.sha256}, expected {sha256}", key=key)
        self._note(key, sha256, got.etag)

    def exists(self, key: str) -> bool:
        validate_key(key)
        return self._stat(key) is not None

    def open(self, key: str) -> BinaryIO:
        validate_key(key)
        self._ensure_bucket()
        with self._errors("get", key):
            response = self._client.get_object(self.bucket, key)
        return io.BufferedReader(_S3Reader(response, key), buffer_size=CHUNK)

    def size(self, key: str) -> int:
        validate_key(key)
        obj = self._stat(key)
        if obj is None:
            raise NotFoundError(f"no stored object {key}", key=key)
        return int(obj.size)

    def list(self, prefix: str) -> Iterator[str]:
        validate_prefix(prefix)
        self._ensure_bucket()
        with self._errors("list", prefix):
            keys = [o.object_name for o in self._client.list_objects(self.bucket, prefix, recursive=True)]
        return iter(sorted(k for k in keys if k is not None))

    def delete(self, key: str) -> None:
        validate_key(key)
        self._ensure_bucket()
        with self._errors("delete", key):
            self._client.remove_object(self.bucket, key)
        with self._lock:
            self._etags.pop(key, None)


def open_storage(cfg: StorageConfig) -> Storage:
    """The storage back end the settings describe."""
    if cfg.kind == "local":
        return LocalStorage(cfg.path)
    if not (cfg.endpoint and cfg.bucket and cfg.access_key and cfg.secret_key):
        raise ConfigError("storage kind 's3' needs endpoint, bucket, access_key and secret_key")
    access, secret = cfg.access_key.get_secret_value(), cfg.secret_key.get_secret_value()
    return S3Storage(
        cfg.endpoint, cfg.bucket, access, secret, cfg.region,
        connect_timeout=cfg.connect_timeout_seconds, read_timeout=cfg.read_timeout_seconds,
    )
