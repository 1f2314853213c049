"""What every storage back end promises (:class:`Storage`), the key rules, and the hashing
shared by the back ends. Errors are mapped in the back ends: see :mod:`pipeline.storage`."""

from __future__ import annotations

import builtins
import hashlib
import logging
import os
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from domain.errors import (
    IntegrityError,
    SpoolError,
    ValidationFailed,
)

log = logging.getLogger(__name__)

CHUNK = 1024 * 1024
#: Files up to this size go to S3 in one PUT, so their ETag is the plain MD5 (segments are <= ~64 MiB).
S3_PART_SIZE = 128 * 1024 * 1024
MAX_KEY_LENGTH = 1024
_PART = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,254}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
# Stored evidence: read-only for the service account and its group (a backup or verification
# account put in that group), nothing for others; directories 0750 (docs/guide/deploy.md, "File
# modes and keys").
STORED_FILE_MODE = 0o440
STORED_DIR_MODE = 0o750


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


def check_sha(sha256: str) -> str:
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256.lower()):
        raise ValidationFailed(f"not a SHA-256 hex digest: {sha256!r}")
    return sha256.lower()


@dataclass(frozen=True, slots=True)
class Digest:
    size: int
    sha256: str
    etag: str  # S3 ETag for this part size: MD5 hex, or md5-of-part-md5s + "-N"


class Hasher:
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
    hasher = Hasher(part_size)
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(CHUNK):
                hasher.update(chunk)
    except OSError as exc:
        raise SpoolError(f"cannot read {path}: {exc}", path=str(path)) from exc
    return hasher.digest()


def sha256_copy(path: Path, out: BinaryIO | None = None) -> tuple[int, str]:
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
