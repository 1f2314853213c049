"""One audit row per camera per playback, however many requests the browser makes for it.

A playback page asks for the same stream several times: a one-byte ``Range: bytes=0-0`` probe
for the stream's time origin, then the ``<video>`` load, and Chromium may come back with further
``Range`` requests while it buffers. Each request went into the audit trail as a ``playback``, so
the supervisor's audit showed two or more views per camera where there was one.

A *view* here is a user's requests for the same stream — camera, [start, end) and case — with no
pause longer than :data:`VIEW_IDLE_SECONDS` between them: the first request writes the row, the
rest continue the view. A new range (a seek outside what is buffered asks for a new start) is a new
view and gets its row; so does the same range asked again after a pause. Nothing is skipped that
was not already recorded as that user's view of that footage moments before. The memory is per
process: a node behind a load balancer may write one row more, never one less.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

VIEW_IDLE_SECONDS = 60.0  # a pause longer than this between requests ends a view
_MAX_VIEWS = 10_000  # views remembered at once (oldest forgotten first: a forgotten view re-audits)

ViewKey = tuple[str, str, str, str, str]  # user, camera, start, end, case


class PlaybackViews:
    """Which playback requests start a view (and so need their audit row); thread-safe."""

    def __init__(self, idle: float = VIEW_IDLE_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self._idle = idle
        self._clock = clock
        self._last: dict[ViewKey, float] = {}
        self._lock = threading.Lock()

    def starts_view(self, user: str, camera_id: str, start: str, end: str, case_id: int | None) -> bool:
        """True for the first request of a view: write its audit row (then :meth:`forget` it if
        that fails, so the next request tries again); False for a request continuing one."""
        key = (user, camera_id, start, end, "" if case_id is None else str(case_id))
        now = self._clock()
        with self._lock:
            last = self._last.pop(key, None)
            self._last[key] = now  # re-inserted: the dict stays in order of last use
            if len(self._last) > _MAX_VIEWS:
                del self._last[next(iter(self._last))]
            return last is None or now - last > self._idle

    def forget(self, user: str, camera_id: str, start: str, end: str, case_id: int | None) -> None:
        with self._lock:
            self._last.pop((user, camera_id, start, end, "" if case_id is None else str(case_id)), None)
