"""An S3 bucket (MinIO or any S3-compatible store) as evidence storage, through the ``minio`` SDK; its errors
mapped to the domain's storage errors."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
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
)
from pipeline.storage.base import (
    CHUNK,
    S3_PART_SIZE,
    Hasher,
    SourceMismatch,
    Storage,
    StoredObject,
    check_sha,
    digest_file,
    validate_key,
    validate_prefix,
)

log = logging.getLogger(__name__)

_CONTENT_TYPES = {"ts": "video/mp2t", "json": "application/json"}
_REMEMBER_ETAGS = 4096  # MD5s of recent puts, for verify() without reading the object back
_MISSING_CODES = frozenset({"NoSuchKey", "NoSuchObject", "NotFound", "ResourceNotFound"})
_BUSY_CODES = frozenset({"SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout"})


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
        sha256 = check_sha(sha256)
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
        sha256 = check_sha(sha256)
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
        hasher = Hasher(self._part_size)  # not put by this process: read it back
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
