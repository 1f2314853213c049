"""A small tmpfs for disk-full tests (root only), and a filler that keeps it full.

with small_tmpfs(path, "16m"):            # skips the test when mount is not permitted
    with DiskFiller(path) as filler:      # every byte taken, taken again as soon as freed
        ...
    # filler gone: space is back
"""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import pytest


@contextlib.contextmanager
def small_tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (the disk-full fault runs as root here and in CI)")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"mount -t tmpfs not permitted: {done.stderr.strip()}")
    try:
        yield path
    finally:
        for _ in range(20):
            if subprocess.run(["umount", str(path)], capture_output=True).returncode == 0:
                break
            threading.Event().wait(0.25)  # a process still closing files in it
        else:
            subprocess.run(["umount", "-l", str(path)], check=False)


class DiskFiller:
    """Fills the file system of ``directory`` and keeps it full (space freed by anyone, e.g. the
    uploader deleting stored segments, is taken back within ``period``) until closed."""

    def __init__(self, directory: Path, period: float = 0.02) -> None:
        self._dir = directory
        self._period = period
        self._stop = threading.Event()
        self._files: list[Path] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.full = threading.Event()

    def _fill_once(self) -> None:
        path = self._dir / f".filler-{len(self._files)}"
        self._files.append(path)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        chunk = b"\0" * 65536
        try:
            while True:
                try:
                    os.write(fd, chunk)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    if len(chunk) == 1:
                        break
                    chunk = chunk[: len(chunk) // 2]
        finally:
            os.close(fd)
        self.full.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError):
                if os.statvfs(self._dir).f_bavail > 0 or not self.full.is_set():
                    self._fill_once()
            self._stop.wait(self._period)

    def __enter__(self) -> DiskFiller:
        self._thread.start()
        assert self.full.wait(10), "could not fill the file system"
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(5)
        for path in self._files:
            path.unlink(missing_ok=True)
