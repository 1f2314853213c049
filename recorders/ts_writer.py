"""MPEG-TS segment files through PyAV (remux only). The PyAV boundary for output: av/OS errors leave
this module as :class:`domain.errors.SpoolError` (the disk) or :class:`StreamError` (the packets).

Two ways to write, chosen by ``buffer_bytes``:

* ``0``: libavformat writes to the path itself with ``flush_packets=1``: one write per packet, so a crash
  loses at most the packet in flight. The file is hashed after it is closed.
* ``> 0`` (the recorder's default, sized to about a quarter second of the camera's bitrate): libavformat
  fills a buffer of that many bytes and drains it into :class:`_SegmentFile`, which writes it to the file and
  hashes it on the way (no re-read at close). A crash loses at most that buffer: bounded in bytes and so in
  media time, unlike libavformat's own file buffering, which kept seconds of a low-bitrate camera.
  Measured: a write per packet costs ~20 % more CPU (docs/design/recorder.md).

A TS file is readable up to its last complete 188-byte packet in either mode.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
from pathlib import Path
from typing import Any

import av
import av.error

from domain.errors import SpoolError, StreamError

# The spool holds interrogation footage (and its markers once held camera URLs): only the service
# account may read it. Files 0600, directories 0700 (docs/design/recorder.md "Logins and the spool's modes").
SPOOL_FILE_MODE = 0o600
SPOOL_DIR_MODE = 0o700

STORAGE_ERRNOS = frozenset(
    {
        errno.ENOSPC,
        errno.EIO,
        errno.EROFS,
        errno.EDQUOT,
        errno.EACCES,
        errno.EPERM,
        errno.ENOENT,
        errno.EFBIG,
        errno.ENOTDIR,
    }
)
TS_PACKET = 188
# Whole TS packets, so that what is on disk between two drains always ends on a packet boundary.
MIN_BUFFER_BYTES = 11 * TS_PACKET  # 2 KiB
MAX_BUFFER_BYTES = 348 * TS_PACKET  # 64 KiB


def map_write_error(exc: BaseException, path: Path, during: str) -> Exception:
    code = getattr(exc, "errno", None)
    if isinstance(exc, OSError) or code in STORAGE_ERRNOS:
        name = errno.errorcode.get(code, str(code)) if isinstance(code, int) else "?"
        return SpoolError(f"spool write failed while {during} {path} ({name}: {exc})", path=str(path))
    return StreamError(
        f"could not mux packet while {during} {path} ({type(exc).__name__}: {exc})", path=str(path)
    )


def buffer_bytes_for(bytes_per_second: float, seconds: float) -> int:
    """The write buffer for ``seconds`` of a stream of that rate: whole TS packets, 2-64 KiB."""
    wanted = int(bytes_per_second * seconds) // TS_PACKET * TS_PACKET
    return min(MAX_BUFFER_BYTES, max(MIN_BUFFER_BYTES, wanted))


class _SegmentFile:
    """The file object libavformat drains its buffer into: written through and hashed as it goes."""

    __slots__ = ("_fd", "_sha", "_sm3", "error", "written")

    def __init__(self, path: Path, sm3: bool) -> None:
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, SPOOL_FILE_MODE)
        self._sha = hashlib.sha256()
        self._sm3 = hashlib.new("sm3") if sm3 else None
        self.written = 0
        # PyAV wraps an exception raised in this callback into a PyAVCallbackError without its
        # errno (a full disk looked like a stream error): the writer maps the one kept here.
        self.error: OSError | None = None

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as exc:
            self.error = exc
            # Drop the part of this chunk that did get written: the file then holds whole chunks
            # (whole TS packets) and exactly the bytes hashed, whatever recovery later finds.
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self.written)
            raise
        self._sha.update(data)
        if self._sm3 is not None:
            self._sm3.update(data)
        self.written += len(data)
        return len(data)

    def finish(self) -> tuple[int, int, str, str | None]:
        """fsync; (size on disk, bytes written, sha256, sm3). The descriptor stays open for close()."""
        os.fsync(self._fd)
        size = os.fstat(self._fd).st_size
        return size, self.written, self._sha.hexdigest(), None if self._sm3 is None else self._sm3.hexdigest()

    def close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)


class TsWriter:
    """One open segment file. ``streams`` are the input streams to copy (index order = output order)."""

    __slots__ = ("_file", "_map", "_out", "_sm3", "path")

    def __init__(self, path: Path, streams: list[Any], buffer_bytes: int = 0, sm3: bool = False) -> None:
        self.path = path
        self._sm3 = sm3
        self._file: _SegmentFile | None = None
        try:
            if buffer_bytes > 0:
                self._file = _SegmentFile(path, sm3)
                self._out: Any = av.open(
                    self._file, "w", format="mpegts", buffer_size=buffer_bytes, options={"flush_packets": "0"}
                )
            else:
                # libavformat would create the file 0666 less the umask: made here first, so the
                # spool's mode holds (libav truncates it, keeping the mode)
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, SPOOL_FILE_MODE))
                self._out = av.open(str(path), "w", format="mpegts", options={"flush_packets": "1"})
        except Exception as exc:
            self._close_file()
            raise map_write_error(exc, path, "opening") from exc
        try:
            size = max(s.index for s in streams) + 1
            self._map: list[Any] = [None] * size
            for stream in streams:
                self._map[stream.index] = self._out.add_stream_from_template(stream)
        except Exception as exc:
            self.abort()
            raise map_write_error(exc, path, "adding streams to") from exc

    def mux(self, packet: Any) -> None:
        packet.stream = self._map[packet.stream_index]
        try:
            self._out.mux_one(packet)
        except Exception as exc:
            raise map_write_error(self._cause(exc), self.path, "writing") from exc

    def close(self) -> tuple[int, str | None, str | None]:
        """Write the trailer, close, fsync the file and its directory.

        Returns (size, sha256, sm3); the digests are None when the file was not hashed on the way
        (a write per packet, or fewer bytes hashed than the file holds), and the caller hashes the file.
        """
        out, self._out = self._out, None
        if out is not None:
            try:
                out.close()
            except Exception as exc:
                cause = self._cause(exc)
                self._close_file()
                raise map_write_error(cause, self.path, "closing") from exc
        try:
            sha: str | None = None
            sm3: str | None = None
            if self._file is not None:
                try:
                    size, written, sha, sm3 = self._file.finish()
                finally:
                    self._close_file()
                if written != size:  # not written front to back: the stream's hash is not the file's
                    sha = sm3 = None
            else:
                fd = os.open(self.path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                    size = os.fstat(fd).st_size
                finally:
                    os.close(fd)
            fsync_dir(self.path.parent)
        except OSError as exc:
            raise map_write_error(exc, self.path, "fsyncing") from exc
        return size, sha, sm3

    def _cause(self, exc: BaseException) -> BaseException:
        """The OSError our file object raised inside libavformat's callback, else ``exc``."""
        file = self._file
        return file.error if file is not None and file.error is not None else exc

    def abort(self) -> None:
        """Close without raising (after a failure); what was written stays for recovery."""
        out, self._out = self._out, None
        if out is not None:
            with contextlib.suppress(Exception):  # the caller already reports the original failure
                out.close()
        self._close_file()

    def _close_file(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            with contextlib.suppress(OSError):
                file.close()


def make_dirs(path: Path, mode: int = SPOOL_DIR_MODE) -> None:
    """``path`` and its missing parents, each created with ``mode`` (``Path.mkdir(parents=True)``
    gives the parents the default mode)."""
    missing: list[Path] = []
    probe = path
    while not probe.is_dir():
        missing.append(probe)
        probe = probe.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            directory.mkdir(mode=mode)


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
