"""Which work yields the CPU first when the machine is short of it.

Evidence work — recording, and the upload that makes footage safe and indexed — must not wait for
convenience work: playback and exports can be slower, footage cannot be late. At 64 cameras with
20 viewers on two cores the uploader stored about a fifth of what the cameras closed while viewers
were served as fast as they asked (docs/LOAD.md). So the threads that build playback streams and
exports lower their own scheduling priority (Linux: ``setpriority`` on the thread id; lowering needs
no privilege, and is never undone, so these threads serve only that work). They still share the
interpreter lock with the uploader; the priority decides who gets a core when both are runnable.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading

logger = logging.getLogger(__name__)

# How much lower than the process's own priority (nice steps; 19 is the floor).
CONVENIENCE_NICE = 5


def lower_this_thread(steps: int = CONVENIENCE_NICE) -> int | None:
    """Lower the calling thread's priority by ``steps``; returns its new nice value (None where the
    system has no per-thread priority)."""
    get = getattr(os, "getpriority", None)
    put = getattr(os, "setpriority", None)
    if get is None or put is None:
        return None
    tid = threading.get_native_id()
    with contextlib.suppress(OSError):
        nice = min(19, get(os.PRIO_PROCESS, tid) + steps)
        put(os.PRIO_PROCESS, tid, nice)
        return int(get(os.PRIO_PROCESS, tid))
    logger.debug("thread priority unchanged", extra={"thread": threading.current_thread().name})
    return None
