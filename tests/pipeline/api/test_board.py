"""The 在区人员 board's reading of custody (pipeline/api/board.py): when the time in the centre
began, and how it stands against the 12/24 h limit, with the risk rule's boundaries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from domain.types import RoomKind, RoomStay
from pipeline.api.board import APPROACHING, EXCEEDED, NO_LIMIT, OK, custody_start, held
from pipeline.settings import TimeLimitRule

T0 = datetime(2026, 5, 1, 0, 0, tzinfo=UTC)


def hours(n: float) -> datetime:
    return T0 + timedelta(hours=n)


def stay(room: str, start: float, end: float | None) -> RoomStay:
    return RoomStay(1, room, RoomKind.WAITING, hours(start), None if end is None else hours(end), "e", "e")


def test_custody_starts_at_the_first_stay_after_the_last_exit() -> None:
    # in on day one, out at 5 h; back at 20 h, moved from room to room since
    stays = [stay("a", 0, 2), stay("b", 2, 5), stay("a", 20, 22), stay("b", 22, 23), stay("c", 23, None)]
    assert custody_start(stays) == hours(20)
    assert custody_start(stays[:2]) is None  # gone: no custody now
    assert custody_start([]) is None
    assert custody_start([stay("a", 1, None)]) == hours(1)


def test_held_against_the_limit_with_the_rule_boundaries() -> None:
    rule = TimeLimitRule()  # 12 h, 24 h serious, warned 60 min before, suspects
    assert held(rule, "suspect", False, hours(0), hours(10.9)).status == OK
    assert held(rule, "suspect", False, hours(0), hours(11)).status == APPROACHING  # from limit − warn
    at_limit = held(rule, "suspect", False, hours(0), hours(12))
    assert at_limit.status == APPROACHING and at_limit.deadline == hours(12)  # "more than" the limit
    assert held(rule, "suspect", False, hours(0), hours(12) + timedelta(seconds=1)).status == EXCEEDED
    serious = held(rule, "suspect", True, hours(0), hours(13))
    assert serious.status == OK and serious.limit_hours == 24 and serious.deadline == hours(24)
    witness = held(rule, "witness", False, hours(0), hours(30))
    assert witness.status == NO_LIMIT and witness.deadline is None and witness.held_seconds == 30 * 3600
    off = held(TimeLimitRule(enabled=False), "suspect", False, hours(0), hours(30))
    assert off.status == NO_LIMIT
