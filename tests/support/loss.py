"""The fault suite's one verdict: nothing recorded is lost beyond the 1 s recovery point.

A camera's footage is a list of segment intervals and gap intervals (unix seconds), from worker
records, sidecars or the API alike (:func:`span` normalises them). :func:`assert_loss_bounded`
checks that

* every segment has a positive duration and no two overlap;
* wherever two consecutive segments do not touch, exactly one recorded gap bridges them (starts at
  the first's end, ends at the second's start): no silent hole;
* every gap has the expected cause and lies within the outage widened by ``RECOVERY_SECONDS`` on
  both sides: footage stopped no earlier than 1 s before the fault began and resumed no later than
  1 s after it ended;
* footage exists before and after the outage (recording resumed).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from domain.types import GapRecord, SegmentRecord, parse_iso

RECOVERY_SECONDS = 1.0
_EPS = 1e-6


@dataclass(frozen=True)
class Span:
    start: float
    end: float
    cause: str | None = None
    name: str = ""


def span(item: SegmentRecord | GapRecord | dict[str, Any]) -> Span:
    """A segment or gap (domain record or its JSON/API form) as unix seconds."""
    if isinstance(item, SegmentRecord):
        return Span(item.start.timestamp(), item.end.timestamp(), None, item.storage_key)
    if isinstance(item, GapRecord):
        return Span(item.start.timestamp(), item.end.timestamp(), item.cause.value, f"gap {item.detail}")
    start, end = parse_iso(item["start"]).timestamp(), parse_iso(item["end"]).timestamp()
    return Span(start, end, item.get("cause"), str(item.get("storage_key") or item.get("detail", "")))


def assert_loss_bounded(
    segments: list[Any],
    gaps: list[Any],
    outage: tuple[float, float],
    causes: set[str] | str,
    *,
    recovery: float = RECOVERY_SECONDS,
    min_gaps: int = 1,
) -> list[Span]:
    """Assert the verdict above for one camera; returns the gaps (as spans) for further checks."""
    wanted = {causes} if isinstance(causes, str) else set(causes)
    segs = sorted((span(s) for s in segments), key=lambda s: s.start)
    holes = sorted((span(g) for g in gaps), key=lambda g: g.start)
    lo, hi = outage
    assert segs, "no footage at all"
    for s in segs:
        assert s.end > s.start, f"{s.name}: non-positive duration {s.end - s.start}"
    for a, b in itertools.pairwise(segs):
        assert b.start >= a.end - _EPS, f"{a.name} overlaps {b.name} by {a.end - b.start:.3f} s"
        if b.start - a.end > _EPS:
            bridge = [g for g in holes if abs(g.start - a.end) < 1e-3 and abs(g.end - b.start) < 1e-3]
            assert len(bridge) == 1, f"unrecorded hole of {b.start - a.end:.3f} s after {a.name}: {holes}"
    assert len(holes) >= min_gaps, f"expected at least {min_gaps} gap(s) with cause {wanted}, got {holes}"
    for g in holes:
        assert g.cause in wanted, f"gap cause {g.cause!r}, expected {wanted}: {g}"
        assert g.end >= g.start, g
        assert g.start >= lo - recovery, f"footage lost {lo - g.start:.3f} s before the fault began: {g}"
        assert g.end <= hi + recovery, f"footage resumed {g.end - hi:.3f} s after the fault ended: {g}"
    for g in holes:  # the figures behind the verdict (pytest -s shows them)
        print(
            f"gap {g.cause}: stopped {g.start - lo:+.3f} s from the fault, resumed {g.end - hi:+.3f} s"
            f" after it ended ({g.end - g.start:.3f} s long)"
        )
    assert segs[0].start < lo, "no footage before the fault"
    assert segs[-1].end > hi, "no footage after the fault"
    return holes
