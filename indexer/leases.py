"""Camera leases: which recording node records which camera (the recorder fleet).

Every node calls :meth:`LeaseManager.tick` every few seconds. One tick is one transaction:

1. the node's heartbeat row is written (``expires_us = now + ttl``);
2. live nodes = heartbeat rows not yet expired; a node may hold at most
   ``ceil(cameras / live nodes)`` leases;
3. the node's own leases are renewed (``UPDATE … WHERE node_id = me RETURNING``): a lease that
   another node took after it expired is not returned, and is *lost*;
4. leases beyond the cap are reported as *excess* (the caller stops those cameras and then
   :meth:`release` s them, so the next holder finds their last segment in the index);
5. below the cap, free leases (``node_id IS NULL`` or expired) are taken, locked with
   ``SELECT … FOR UPDATE SKIP LOCKED`` on PostgreSQL so concurrent nodes never wait on or take
   the same row. SQLite has one writer at a time; a single node simply takes them all.

A node that dies stops renewing: its heartbeat and leases expire after ``ttl`` and the other
nodes take its cameras at their next tick (takeover ≤ ``ttl + interval``). Each acquisition bumps
``generation`` and remembers the previous holder, so the new holder can tell a hand-over from
another node (a ``node_failover`` gap) from a first start.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy import Engine, Table, and_, case, delete, func, null, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from domain.errors import IndexStoreError
from indexer.database import session_factory
from indexer.models import Base

log = logging.getLogger(__name__)

NODES: Table = Base.metadata.tables["recorder_nodes"]
LEASES: Table = Base.metadata.tables["camera_leases"]


@dataclass(frozen=True, slots=True)
class ChainHint:
    """A camera's chain state (last seq, SHA-256, end) as a releasing node's spool knew it."""

    seq: int
    sha256: str | None
    end_us: int


@dataclass(frozen=True, slots=True)
class Acquired:
    """A lease this node just took. ``previous_node`` is who held it before (None: nobody)."""

    camera_id: str
    generation: int
    previous_node: str | None
    previous_expires_us: int | None
    released: ChainHint | None = None  # the chain as the releasing node left it

    @property
    def failover(self) -> bool:
        """Taken over from another node (dead, or released for balance)."""
        return self.previous_node is not None


@dataclass(frozen=True, slots=True)
class TickResult:
    held: tuple[str, ...]  # every lease held after this tick (acquired included)
    acquired: tuple[Acquired, ...]
    lost: tuple[str, ...]  # held at the last tick, now another node's: stop recording them
    excess: tuple[str, ...]  # held, but over the cap: stop, then release()
    live_nodes: int
    cap: int
    seconds: float = 0.0  # how long the tick's transaction took


@dataclass
class _Memory:
    held: set[str] = field(default_factory=set)


def fair_share(cameras: int, live_nodes: int) -> int:
    """At most this many cameras per node: ``ceil(cameras / live_nodes)``."""
    return math.ceil(cameras / max(1, live_nodes)) if cameras else 0


class LeaseManager:
    """One node's view of the leases. Not thread-safe: one caller (the node's lease loop)."""

    def __init__(
        self,
        engine: Engine,
        node_id: str,
        ttl_seconds: float = 6.0,
        host: str = "",
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not node_id:
            raise ValueError("a node needs an id")
        self._engine = engine
        self._sessions = session_factory(engine)
        self.node_id = node_id
        self.ttl_us = int(ttl_seconds * 1_000_000)
        self._host = host
        self._clock = clock
        self._started_us = self._now()
        self._memory = _Memory()
        self._pg = engine.dialect.name == "postgresql"

    def _now(self) -> int:
        return int(self._clock() * 1_000_000)

    @contextmanager
    def _session(self, what: str) -> Iterator[Session]:
        try:
            with self._sessions.begin() as session:
                yield session
        except SQLAlchemyError as exc:
            raise IndexStoreError(f"{what}: index database failed: {exc}") from exc

    def _insert(self, table: Table) -> postgresql.Insert | sqlite.Insert:
        return postgresql.insert(table) if self._pg else sqlite.insert(table)

    def ensure(self, camera_ids: Iterable[str]) -> None:
        """A (free) lease row for every camera that has none. Cameras must exist in the index."""
        rows = [
            {"camera_id": c, "node_id": None, "expires_us": 0, "acquired_us": 0, "generation": 0}
            for c in camera_ids
        ]
        if not rows:
            return
        with self._session("ensure leases") as s:
            s.execute(self._insert(LEASES).on_conflict_do_nothing(index_elements=["camera_id"]), rows)

    def tick(self, camera_ids: Sequence[str], acquire: bool = True) -> TickResult:
        """Heartbeat, renew, and (if ``acquire``) take free leases up to the fair share."""
        began = time.monotonic()
        now = self._now()
        expires = now + self.ttl_us
        wanted = sorted(set(camera_ids))
        with self._session(f"lease tick of {self.node_id}") as s:
            if self._pg:
                # A heartbeat need not survive a database crash (the next one comes in seconds):
                # no WAL flush wait per tick.
                s.execute(text("SET LOCAL synchronous_commit TO OFF"))
            beat = self._insert(NODES).values(
                id=self.node_id,
                host=self._host,
                started_us=self._started_us,
                heartbeat_us=now,
                expires_us=expires,
            )
            s.execute(
                beat.on_conflict_do_update(
                    index_elements=["id"],
                    set_={"heartbeat_us": now, "expires_us": expires, "host": self._host},
                )
            )
            live = len(s.execute(select(NODES.c.id).where(NODES.c.expires_us > now)).all())
            cap = fair_share(len(wanted), live)
            renewed = set(
                s.execute(
                    update(LEASES)
                    .where(LEASES.c.node_id == self.node_id, LEASES.c.camera_id.in_(wanted))
                    .values(expires_us=expires)
                    .returning(LEASES.c.camera_id)
                ).scalars()
            )
            acquired: list[Acquired] = []
            if acquire and len(renewed) < cap:
                acquired = self._acquire(s, wanted, cap - len(renewed), now, expires)
        held = renewed | {a.camera_id for a in acquired}
        lost = tuple(sorted(self._memory.held - held))
        self._memory.held = set(held)
        excess = tuple(sorted(held)[cap:]) if len(held) > cap else ()
        for cam in lost:
            log.warning("lease lost", extra={"node": self.node_id, "camera_id": cam})
        return TickResult(
            held=tuple(sorted(held)),
            acquired=tuple(acquired),
            lost=lost,
            excess=excess,
            live_nodes=live,
            cap=cap,
            seconds=time.monotonic() - began,
        )

    def _acquire(self, s: Session, wanted: list[str], room: int, now: int, expires: int) -> list[Acquired]:
        """Take up to ``room`` free leases in one statement (the SKIP LOCKED queue pattern)."""
        free_term = or_(LEASES.c.node_id.is_(None), LEASES.c.expires_us <= now)
        free = (
            select(LEASES.c.camera_id)
            .where(LEASES.c.camera_id.in_(wanted), free_term)
            .order_by(LEASES.c.camera_id)
            .limit(room)
        )
        if self._pg:
            free = free.with_for_update(skip_locked=True)
        # SET reads the row's old values: an expired lease's holder (it died or stalled) becomes
        # previous_node_id; a released lease (holder NULL) keeps the node that released it there.
        stmt = (
            update(LEASES)
            .where(LEASES.c.camera_id.in_(free.scalar_subquery()), free_term)
            .values(
                node_id=self.node_id,
                expires_us=expires,
                acquired_us=now,
                generation=LEASES.c.generation + 1,
                previous_node_id=func.coalesce(LEASES.c.node_id, LEASES.c.previous_node_id),
                previous_expires_us=case((LEASES.c.node_id.is_(None), null()), else_=LEASES.c.expires_us),
            )
            .returning(
                LEASES.c.camera_id,
                LEASES.c.generation,
                LEASES.c.previous_node_id,
                LEASES.c.previous_expires_us,
                LEASES.c.released_seq,
                LEASES.c.released_sha256,
                LEASES.c.released_end_us,
            )
        )
        taken: list[Acquired] = []
        for camera_id, generation, previous, previous_expires, seq, sha, end in sorted(s.execute(stmt).all()):
            if previous == self.node_id:  # our own earlier lease: no hand-over
                previous = None
            hint = None if end is None or seq is None else ChainHint(int(seq), sha, int(end))
            expired_at = None if previous_expires is None else int(previous_expires)
            taken.append(Acquired(camera_id, int(generation), previous, expired_at, hint))
            log.info(
                "lease acquired", extra={"node": self.node_id, "camera_id": camera_id, "from_node": previous}
            )
        return taken

    def release(self, camera_ids: Iterable[str], chains: Mapping[str, ChainHint] | None = None) -> int:
        """Give leases back (after their recording stopped and drained), leaving each camera's
        chain state for the next holder. Returns how many."""
        cams = sorted(set(camera_ids))
        done = 0
        with self._session(f"release leases of {self.node_id}") as s:
            for cam in cams:
                values: dict[str, object] = {
                    "node_id": None,
                    "expires_us": 0,
                    "previous_node_id": self.node_id,
                }
                hint = (chains or {}).get(cam)
                if hint is not None:
                    values.update(
                        released_seq=hint.seq, released_sha256=hint.sha256, released_end_us=hint.end_us
                    )
                stmt = (
                    update(LEASES)
                    .where(LEASES.c.node_id == self.node_id, LEASES.c.camera_id == cam)
                    .values(values)
                    .returning(LEASES.c.camera_id)
                )
                done += len(s.execute(stmt).all())
        self._memory.held -= set(cams)
        return done

    def leave(self, chains: Mapping[str, ChainHint] | None = None) -> None:
        """Release every lease (with the chains given) and drop the heartbeat (clean shutdown)."""
        with self._session(f"read leases of {self.node_id}") as s:
            mine = list(
                s.execute(select(LEASES.c.camera_id).where(LEASES.c.node_id == self.node_id)).scalars()
            )
        self.release(mine, chains)
        with self._session(f"leave {self.node_id}") as s:
            s.execute(delete(NODES).where(NODES.c.id == self.node_id))
        self._memory.held.clear()

    def assignments(self) -> dict[str, str | None]:
        """camera id → node currently holding an unexpired lease (None: nobody)."""
        now = self._now()
        with self._session("read leases") as s:
            rows = s.execute(select(LEASES.c.camera_id, LEASES.c.node_id, LEASES.c.expires_us)).all()
        return {c: (n if n is not None and e > now else None) for c, n, e in rows}

    def live_nodes(self) -> list[str]:
        now = self._now()
        with self._session("read nodes") as s:
            return list(
                s.execute(
                    select(NODES.c.id).where(and_(NODES.c.expires_us > now)).order_by(NODES.c.id)
                ).scalars()
            )
