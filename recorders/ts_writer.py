"""MPEG-TS segment files through PyAV (remux only). The PyAV boundary for output: av/OS errors leave
this module as :class:`domain.errors.SpoolError` (the disk) or :class:`StreamError` (the packets).

libavformat writes to the path itself: no Python-level I/O per packet. ``flush_packets`` (on by default) makes it
write each packet's 188-byte TS packets as soon as it is muxed, so a crash loses at most the packet
being written (a TS file is readable up to its last complete 188-byte packet).
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path
from typing import Any

import av
import av.error

from domain.errors import SpoolError, StreamError

STORAGE_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EIO, errno.EROFS, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.ENOENT,
     errno.EFBIG, errno.ENOTDIR}
)


def map_write_error(exc: BaseException, path: Path, during: str) -> Exception:
    code = getattr(exc, "errno", None)
    if isinstance(exc, OSError) or code in STORAGE_ERRNOS:
        name = errno.errorcode.get(code, str(code)) if isinstance(code, int) else "?"
        return SpoolError(f"spool write failed while {during} {path} ({name}: {exc})", path=str(path))
    return StreamError(f"could not mux packet while {during} {path} ({type(exc).__name__}: {exc})",
                       path=str(path))


class TsWriter:
    """One open segment file. ``streams`` are the input streams to copy (index order = output order)."""

    __slots__ = ("_map", "_out", "path")

    def __init__(self, path: Path, streams: list[Any], flush_packets: bool = True) -> None:
        self.path = path
        try:
            self._out: Any = av.open(
                str(path),
                "w",
                format="mpegts",
                options={"flush_packets": "1" if flush_packets else "0"},
            )
        except Exception as exc:
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
            raise map_write_error(exc, self.path, "writing") from exc

    def close(self) -> int:
        """Write the trailer, close, fsync the file and its directory. Returns the file size."""
        out, self._out = self._out, None
        if out is not None:
            try:
                out.close()
            except Exception as exc:
                raise map_write_error(exc, self.path, "closing") from exc
        try:
            fd = os.open(self.path, os.O_RDONLY)
            try:
                os.fsync(fd)
                size = os.fstat(fd).st_size
            finally:
                os.close(fd)
            fsync_dir(self.path.parent)
        except OSError as exc:
            raise map_write_error(exc, self.path, "fsyncing") from exc
        return size

    def abort(self) -> None:
        """Close without raising (after a failure); what was written stays for recovery."""
        out, self._out = self._out, None
        if out is None:
            return
        with contextlib.suppress(Exception):  # the caller already reports the original failure
            out.close()


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
