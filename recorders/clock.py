"""Wall-clock time for media packets: the system clock, receipt anchoring, and drift slewing.

Pure code (no I/O, no PyAV) so the timing rules are tested on plain numbers.

A camera gives two clocks we could use and neither is trusted alone:

* the media clock (RTP timestamps, exposed by FFmpeg as packet pts x time_base): smooth and precise
  between packets, but with an arbitrary origin and a rate that drifts from true time;
* a wall reference: either the camera's NTP time from RTCP sender reports (FFmpeg exposes the NTP
  time of pts 0 as ``start_time_realtime``), or our own receipt time of each packet (always later
  than capture, by a varying network/encoder delay).

:class:`MediaClockMapper` maps media time to wall time as a continuous piecewise-linear function.
When the reference disagrees with the mapping, only the *rate* changes, and by at most
``max_slew_ppm``; the mapping never steps, so segment N's end equals segment N+1's start and
durations stay honest (moonfire-nvr's lesson). A gross disagreement is not slewed away: the worker
treats a backward or large forward media jump as the end of a run (see :mod:`recorders.segmenter`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from domain.types import Clock

log = logging.getLogger(__name__)

# Seconds over which a reference error is meant to be closed; the slew limit usually binds first.
SLEW_HORIZON_SECONDS = 10.0


class SystemClock:
    """The real clocks (the default :class:`domain.types.Clock`)."""

    def wall(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()


class OffsetFileClock:
    """The system clock plus an offset in seconds read from a file (a test and operations hook).

    Set by ``recorder.clock_offset_file``. It lets a test (or an operator rehearsing a time
    incident) step the recorder's wall clock without touching the host's clock, which other
    processes share: writing ``3600`` into the file is, for the recorder, a +1 h NTP step. The file
    holds one number (seconds, may be negative); a missing, empty or unreadable file means 0. It is
    re-read at most every ``reread_seconds`` (monotonic), so a step is seen within that time;
    ``monotonic()`` is never offset, as a real step leaves the monotonic clock alone.
    """

    def __init__(self, path: Path, reread_seconds: float = 0.2) -> None:
        self._path = path
        self._reread = reread_seconds
        self._offset = 0.0
        self._next = 0.0

    def _read(self) -> float:
        try:
            text = self._path.read_text(encoding="ascii").strip()
            return float(text) if text else 0.0
        except FileNotFoundError:
            return 0.0
        except (OSError, ValueError) as exc:
            log.warning(
                "clock offset file unreadable; offset kept",
                extra={"path": str(self._path), "error": str(exc)},
            )
            return self._offset

    def wall(self) -> float:
        now = time.monotonic()
        if now >= self._next:
            self._offset = self._read()
            self._next = now + self._reread
        return time.time() + self._offset

    def monotonic(self) -> float:
        return time.monotonic()


def clock_for(offset_file: Path | None) -> Clock:
    """The recorder's clock: the system clock, or :class:`OffsetFileClock` when a file is set."""
    return SystemClock() if offset_file is None else OffsetFileClock(offset_file)


@dataclass(frozen=True, slots=True)
class Mapping:
    """One linear piece: wall = wall0 + (media - media0) * rate. Stored in partial markers."""

    media0: float
    wall0: float
    rate: float

    def wall(self, media: float) -> float:
        return self.wall0 + (media - self.media0) * self.rate


class MediaClockMapper:
    """Media seconds -> unix seconds, continuous, slewed toward a reference at a bounded rate.

    ``observe(media, reference_wall)`` tells the mapper what the reference says ``media`` is in wall
    time. The mapper re-bases at ``media`` (keeping the value it already gave, so no step) and sets
    a new rate ``1 + e / horizon`` clamped to ``1 ± max_slew_ppm * 1e-6``, where ``e`` is the
    reference minus the mapping. Observations must come in non-decreasing media order (the worker
    observes at segment boundaries); an older observation is ignored rather than bending the past.
    """

    __slots__ = ("_horizon", "_max_slew", "_media0", "_rate", "_wall0")

    def __init__(
        self,
        media0: float,
        wall0: float,
        max_slew_ppm: float = 500.0,
        horizon_seconds: float = SLEW_HORIZON_SECONDS,
    ) -> None:
        if max_slew_ppm < 0:
            raise ValueError("max_slew_ppm must be >= 0")
        if horizon_seconds <= 0:
            raise ValueError("horizon_seconds must be > 0")
        self._media0 = media0
        self._wall0 = wall0
        self._rate = 1.0
        self._max_slew = max_slew_ppm * 1e-6
        self._horizon = horizon_seconds

    @property
    def rate(self) -> float:
        return self._rate

    @property
    def mapping(self) -> Mapping:
        return Mapping(self._media0, self._wall0, self._rate)

    def wall(self, media: float) -> float:
        return self._wall0 + (media - self._media0) * self._rate

    def shift(self, seconds: float) -> None:
        """Move the whole mapping later. Only for a run that has no segment yet (no step is seen):
        the worker uses it so a new run never starts before the previous run's end."""
        self._wall0 += seconds

    def observe(self, media: float, reference_wall: float) -> None:
        if media < self._media0:
            return
        here = self.wall(media)
        self._media0 = media
        self._wall0 = here
        correction = (reference_wall - here) / self._horizon
        limit = self._max_slew
        if correction > limit:
            correction = limit
        elif correction < -limit:
            correction = -limit
        self._rate = 1.0 + correction


class ReceiptAnchor:
    """Wall time of media time from local receipt times (used when the camera sends no RTCP).

    Receipt is always after capture, by a delay that varies (network, camera encoder, our own
    scheduling). The smallest ``receipt - media`` seen is the best estimate of the true offset
    (the packet that waited least). ``window_min`` is the minimum since the last :meth:`restart_window`
    so a slow drift in either direction is followed at segment granularity; ``overall_min`` never
    rises.
    """

    __slots__ = ("overall_min", "window_min")

    def __init__(self) -> None:
        self.overall_min = float("inf")
        self.window_min = float("inf")

    def add(self, receipt_wall: float, media: float) -> None:
        offset = receipt_wall - media
        if offset < self.window_min:
            self.window_min = offset
            if offset < self.overall_min:
                self.overall_min = offset

    @property
    def known(self) -> bool:
        return self.overall_min != float("inf")

    def restart_window(self) -> float:
        """Return the current window's minimum and begin a new window."""
        value = self.window_min
        self.window_min = float("inf")
        return value


def rtcp_agrees(rtcp_offset: float, receipt_offset: float, tolerance: float) -> bool:
    """Whether the camera's NTP mapping and our receipt times tell the same story.

    Receipt is later than capture, so the receipt offset may exceed the RTCP offset by the
    delivery delay, but never by more than ``tolerance``, and it may not be *earlier* than
    capture by more than a small clock-sync slack (a packet cannot arrive before it was filmed).
    """
    delay = receipt_offset - rtcp_offset
    return -0.25 <= delay <= tolerance
