"""Throttling of failed logins, per account name and per client address, kept in the index.

Kept in the database (``login_throttle``) rather than in memory so a restart does not hand an
attacker a fresh allowance, and so every process serving the API shares one count.

An attempt is counted *before* its password is checked (:meth:`LoginThrottle.begin`): parallel
guesses cannot slip in while the first is still being verified. A success takes its count back
(:meth:`LoginThrottle.succeeded`). After ``free`` failures each further one sets a delay,
doubling from ``base_seconds`` up to ``max_seconds``, before which the next attempt on that key
is refused without looking at the password. A key that stayed quiet for ``reset_seconds``
starts from zero.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, Table, delete, select, update

from indexer.database import dialect_insert, mapped_transaction, session_factory
from indexer.models import Base

log = logging.getLogger(__name__)

THROTTLE: Table = Base.metadata.tables["login_throttle"]


def _now_us() -> int:
    return time.time_ns() // 1000


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    free: int = 5
    base_seconds: float = 1.0
    max_seconds: float = 900.0
    reset_seconds: float = 3600.0
    alert_after: int = 10

    def delay_us(self, failures: int) -> int:
        """The wait after the ``failures``-th failure in a row (0 while within the free ones)."""
        if failures <= self.free:
            return 0
        seconds = min(self.base_seconds * 2 ** min(failures - self.free - 1, 40), self.max_seconds)
        return int(seconds * 1_000_000)


@dataclass(frozen=True, slots=True)
class Streak:
    """A run of failures on one key that just reached the alert threshold."""

    key: str
    failures: int
    first_us: int
    last_us: int


def keys(name: str, addr: str | None) -> list[str]:
    out = [f"user:{name.strip()[:128]}"]
    if addr:
        out.append(f"addr:{addr[:64]}")
    return out


class LoginThrottle:
    def __init__(
        self, engine: Engine, policy: ThrottlePolicy | None = None, now_us: Callable[[], int] = _now_us
    ) -> None:
        self._engine = engine
        self._sessions = session_factory(engine)
        self.policy = policy or ThrottlePolicy()
        self.now_us = now_us

    def begin(self, name: str, addr: str | None) -> float | None:
        """Count an attempt on the account and the address; None if it may go ahead, else the
        seconds to wait (nothing is counted then)."""
        now = self.now_us()
        wanted = keys(name, addr)
        reset_us = int(self.policy.reset_seconds * 1_000_000)
        with mapped_transaction(self._sessions, "login throttle") as s:
            rows = {r.key: r for r in s.execute(select(THROTTLE).where(THROTTLE.c.key.in_(wanted)))}
            wait = max((r.locked_until_us - now for r in rows.values()), default=0)
            if wait > 0:
                return wait / 1_000_000
            for key in wanted:
                have = rows.get(key)
                fresh = have is None or now - have.last_failure_us >= reset_us
                failures = 1 if fresh else int(have.failures) + 1  # type: ignore[union-attr]
                values: dict[str, Any] = {
                    "failures": failures,
                    "last_failure_us": now,
                    "locked_until_us": now + self.policy.delay_us(failures),
                }
                if fresh:
                    values.update(first_failure_us=now, alerted=False)
                if have is None:
                    # Two first attempts at once: the loser's insert does nothing and it counts
                    # on the other's row instead (the same number either way).
                    s.execute(
                        dialect_insert(self._engine, THROTTLE)
                        .values(key=key, **{"first_failure_us": now, "alerted": False, **values})
                        .on_conflict_do_update(
                            index_elements=["key"],
                            set_={"failures": THROTTLE.c.failures + 1, "last_failure_us": now},
                        )
                    )
                else:
                    s.execute(update(THROTTLE).where(THROTTLE.c.key == key).values(**values))
        return None

    def succeeded(self, name: str, addr: str | None) -> None:
        """The password was right: the account starts again from zero, and the address loses the
        count :meth:`begin` added for this attempt."""
        user_key, *addr_keys = keys(name, addr)
        with mapped_transaction(self._sessions, "login throttle") as s:
            s.execute(delete(THROTTLE).where(THROTTLE.c.key == user_key))
            for key in addr_keys:
                row = s.execute(select(THROTTLE).where(THROTTLE.c.key == key)).first()
                if row is None:
                    continue
                failures = max(int(row.failures) - 1, 0)
                locked = row.locked_until_us if failures > self.policy.free else 0
                s.execute(
                    update(THROTTLE)
                    .where(THROTTLE.c.key == key)
                    .values(failures=failures, locked_until_us=locked)
                )

    def failed(self, name: str, addr: str | None) -> list[Streak]:
        """The password was wrong (already counted by :meth:`begin`): the keys whose run of
        failures just reached ``alert_after`` (each reported once per run)."""
        out: list[Streak] = []
        with mapped_transaction(self._sessions, "login throttle") as s:
            for key in keys(name, addr):
                row = s.execute(select(THROTTLE).where(THROTTLE.c.key == key)).first()
                if row is None or row.alerted or row.failures < self.policy.alert_after:
                    continue
                s.execute(update(THROTTLE).where(THROTTLE.c.key == key).values(alerted=True))
                out.append(
                    Streak(key, int(row.failures), int(row.first_failure_us), int(row.last_failure_us))
                )
        if out:
            log.warning("repeated failed logins", extra={"keys": [k.key for k in out]})
        return out
