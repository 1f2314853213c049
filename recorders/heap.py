"""Process-wide glibc heap tuning for a process that records many cameras in threads.

glibc gives each thread that allocates its own malloc arena (up to 8 per core); with one thread
per camera every arena keeps its own free memory, and a recorder of 8 cameras held ~9 MB more
RSS than with two arenas (bench/record.py, N=8: 76 → 67 MB). The workers allocate little in
Python (libav's packet buffers dominate), so sharing two arenas costs no measurable CPU.
A no-op where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import logging

log = logging.getLogger(__name__)

_M_ARENA_MAX = -8  # glibc's mallopt parameter number


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas for the whole process; True if applied."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_ARENA_MAX, arenas))
    except (OSError, AttributeError):
        log.debug("not glibc: malloc arenas left as they are")
        return False
