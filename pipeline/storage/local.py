"""A local directory as evidence storage: atomic writes, read-only stored files, keys kept inside the root."""

from __future__ import annotations

import builtins
import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from domain.errors import (
    IntegrityError,
    NotFoundError,
    SpoolError,
    StorageError,
)
from pipeline.storage.base import (
    STORED_DIR_MODE,
    STORED_FILE_MODE,
    SourceMismatch,
    Storage,
    StoredObject,
    check_sha,
    digest_file,
    fsync_dir,
    sha256_copy,
    validate_key,
    validate_prefix,
)

log = logging.getLogger(__name__)


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
        sha256 = check_sha(sha256)
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
                size, got = sha256_copy(path, out)
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
        sha256 = check_sha(sha256)
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
            have_size, have_sha = sha256_copy(path)
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
