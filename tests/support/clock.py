"""A clock for tests that step time themselves (a ``domain.types.Clock``: wall and monotonic)."""

from __future__ import annotations

from datetime import datetime


class StepClock:
    """Stands still until the test moves it: ``to(when)`` or ``t += seconds``; wall and monotonic
    both read ``t`` (seconds since the epoch)."""

    def __init__(self, start: datetime) -> None:
        self.t = start.timestamp()

    def wall(self) -> float:
        return self.t

    def monotonic(self) -> float:
        return self.t

    def to(self, when: datetime) -> None:
        self.t = when.timestamp()
