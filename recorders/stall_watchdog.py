"""Ends an RTSP read that makes no progress while bytes keep arriving.

libavformat's RTSP demuxer can loop inside one ``av_read_frame`` for as long as the camera sends
data that yields no packet (measured: a camera whose payload switched to an undeclared payload
type mid-session kept a worker inside one read for good, deaf to the stop request). PyAV's
interrupt callback does not end it and PyAV offers no abort, so the watchdog ends it the way a
network fault would: it shuts the session's TCP socket down (``shutdown``, not ``close``: the
descriptor stays libavformat's to close), the read fails, and the worker records a stall.

The socket is found as the TCP descriptor that appeared while this source opened and whose peer
is the camera's address; when that is ambiguous (another camera on the same host and port opened
at the same moment) no socket is chosen and the watchdog only logs. Linux only (``/proc``); on
other systems it does nothing.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import socket
import threading
import time
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

_FD_DIR = "/proc/self/fd"


def socket_fds() -> set[tuple[int, str]]:
    """(descriptor, ``socket:[inode]``) of this process's sockets (empty where /proc is missing).

    The inode is part of the identity because a descriptor number is reused at once: another
    camera's thread closing a socket while this one opens its session hands the same number to
    the new socket, which a set of numbers taken before would then hide (seen under load: the
    session's socket was not found and its watchdog never started)."""
    out: set[tuple[int, str]] = set()
    try:
        names = os.listdir(_FD_DIR)
    except OSError:
        return out
    for name in names:
        with contextlib.suppress(OSError, ValueError):
            target = os.readlink(f"{_FD_DIR}/{name}")
            if target.startswith("socket:"):
                out.add((int(name), target))
    return out


def _peer(fd: int) -> tuple[str, int] | None:
    try:
        sock = socket.socket(fileno=os.dup(fd))
    except OSError:
        return None
    try:
        # Other threads open sockets at the same time (64 cameras starting together): a Unix
        # socket's peer is a path string, not an address, and is never the camera's.
        if sock.family not in (socket.AF_INET, socket.AF_INET6) or sock.type != socket.SOCK_STREAM:
            return None
        peer = sock.getpeername()
        return (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) else None
    except OSError:
        return None
    finally:
        sock.close()  # closes the duplicate only


def session_socket(url: str, before: set[tuple[int, str]]) -> int | None:
    """The TCP descriptor opened since ``before`` whose peer is the URL's host and port."""
    parts = urlsplit(url)
    if parts.hostname is None:
        return None
    try:  # an address literal is compared too; a host name is not resolved again (no DNS wait)
        address: str | None = str(ipaddress.ip_address(parts.hostname))
    except ValueError:
        address = None
    port = parts.port or 554
    found = [
        fd
        for fd, _inode in socket_fds() - before
        if (p := _peer(fd)) is not None and p[1] == port and (address is None or p[0] == address)
    ]
    return found[0] if len(found) == 1 else None


class StallWatchdog:
    """Shuts the session socket down when no packet came for ``limit`` seconds.

    One thread per session, waking once a second (``poll``): a few dozen cameras cost a few dozen
    wake-ups a second, not a GIL hand-off per packet. The reader stores each packet's monotonic
    time in ``last``.
    """

    def __init__(self, url: str, fd: int | None, limit: float, poll: float = 1.0) -> None:
        self.url = url
        self.fd = fd
        self.limit = limit
        self.last = time.monotonic()
        self.fired = False
        self._poll = poll
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if fd is not None:
            self._thread = threading.Thread(target=self._watch, name="rtsp-stall-watchdog", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2)

    def _watch(self) -> None:
        while not self._stop.wait(self._poll):
            silent = time.monotonic() - self.last
            if silent < self.limit:
                continue
            assert self.fd is not None
            log.warning(
                "no packet from the camera for %.1f s although the session is open: shutting its socket down",
                silent,
                extra={"url": self.url},
            )
            try:
                sock = socket.socket(fileno=os.dup(self.fd))
            except OSError:
                return  # already closed by libavformat
            try:
                sock.shutdown(socket.SHUT_RDWR)
                self.fired = True
            except OSError:
                pass
            finally:
                sock.close()
            return
