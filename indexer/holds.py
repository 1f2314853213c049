"""Legal holds and retention in the index: which footage a case's hold covers, the hold rows, and
the segments whose retention has ended (the storage side is ``pipeline.retention``'s).

A hold covers every segment (media and sidecar) of the cameras of each room the case's subjects
stayed in, over those stays, and every body-camera clip linked to its subjects.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, delete, insert, select, update
from sqlalchemy.orm import Session

from domain.errors import NotFoundError
from domain.types import UTC, RoomKind, sidecar_key
from indexer import segment_runs
from indexer.case_store import CaseStore
from indexer.footage import FootageIndex
from indexer.models import Base, active_hold_keys, to_us

SEGMENTS = Base.metadata.tables["segments"]
CAMERAS = Base.metadata.tables["cameras"]
ROOMS = Base.metadata.tables["rooms"]
CASES = Base.metadata.tables["cases"]
IMPORTS = Base.metadata.tables["imported_files"]
IMPORT_SUBJECTS = Base.metadata.tables["imported_file_subjects"]
SUBJECTS = Base.metadata.tables["subjects"]
HOLDS = Base.metadata.tables["legal_holds"]
HOLD_OBJECTS = Base.metadata.tables["legal_hold_objects"]


@dataclass(frozen=True, slots=True)
class ReleasedHold:
    case_id: int
    keys: tuple[str, ...]  # the objects the hold covered
    still_held: frozenset[str]  # those another active hold still covers


class HoldIndex:
    """The index's side of legal holds and of the retention job."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._footage = FootageIndex(CaseStore(engine))

    def case_footage_keys(self, case_id: int, now: datetime | None = None) -> list[str]:
        """Storage keys of the case's footage: room segments over its subjects' stays, and clips."""
        end_of_open = to_us(now or datetime.now(UTC))
        keys: set[str] = set()
        with self._engine.connect() as conn:
            if conn.execute(select(CASES.c.id).where(CASES.c.id == case_id)).first() is None:
                raise NotFoundError(f"case {case_id} does not exist", case_id=case_id)
            subjects = list(
                conn.execute(select(SUBJECTS.c.id).where(SUBJECTS.c.case_id == case_id)).scalars()
            )
            for subject in subjects:
                for stay in self._footage.trajectory(subject):
                    lo = to_us(stay.start)
                    hi = to_us(stay.end) if stay.end is not None else end_of_open
                    rows = conn.execute(
                        select(SEGMENTS.c.storage_key)
                        .join(CAMERAS, CAMERAS.c.id == SEGMENTS.c.camera_id)
                        .where(
                            CAMERAS.c.room_id == stay.room_id,
                            SEGMENTS.c.start_us < hi,
                            SEGMENTS.c.end_us > lo,
                        )
                    ).scalars()
                    for key in rows:
                        keys.update((key, sidecar_key(key)))
                clips = conn.execute(
                    select(IMPORTS.c.storage_key)
                    .join(IMPORT_SUBJECTS, IMPORT_SUBJECTS.c.file_id == IMPORTS.c.id)
                    .where(IMPORT_SUBJECTS.c.subject_id == subject)
                ).scalars()
                keys.update(clips)
        return sorted(keys)

    def add_hold(self, case_id: int, keys: Sequence[str], placed_by: str, reason: str) -> int:
        """The hold's row and one row per object it covers; its id."""
        with self._engine.begin() as conn:
            hold_id = int(
                conn.execute(
                    insert(HOLDS)
                    .values(
                        case_id=case_id,
                        reason=reason,
                        placed_by=placed_by,
                        placed_us=to_us(datetime.now(UTC)),
                    )
                    .returning(HOLDS.c.id)
                ).scalar_one()
            )
            if keys:
                conn.execute(insert(HOLD_OBJECTS), [{"hold_id": hold_id, "storage_key": k} for k in keys])
        return hold_id

    def release_hold(self, hold_id: int, released_by: str) -> ReleasedHold:
        """Mark the hold released (once); what it covered, and what other holds still cover."""
        with self._engine.begin() as conn:
            row = conn.execute(select(HOLDS).where(HOLDS.c.id == hold_id)).mappings().first()
            if row is None:
                raise NotFoundError(f"legal hold {hold_id} does not exist", hold_id=hold_id)
            conn.execute(
                update(HOLDS)
                .where(HOLDS.c.id == hold_id, HOLDS.c.released_us.is_(None))
                .values(released_us=to_us(datetime.now(UTC)), released_by=released_by)
            )
            keys = list(
                conn.execute(
                    select(HOLD_OBJECTS.c.storage_key).where(HOLD_OBJECTS.c.hold_id == hold_id)
                ).scalars()
            )
            still = frozenset(
                conn.execute(active_hold_keys().where(HOLD_OBJECTS.c.storage_key.in_(keys))).scalars()
            )
        return ReleasedHold(int(row["case_id"]), tuple(sorted(keys)), still)

    def expired(
        self, now: datetime, days_for: Callable[[str | None], float]
    ) -> tuple[list[dict[str, Any]], int]:
        """Segments whose retention (``days_for`` the kind of the camera's room, None: no room)
        ended before ``now`` and no active hold covers, oldest first; and how many held ones."""
        kinds: list[str | None] = [k.value for k in RoomKind] + [None]
        found: list[dict[str, Any]] = []
        held = 0
        with self._engine.connect() as conn:
            for kind in kinds:
                cutoff = to_us(now - timedelta(days=days_for(kind)))
                room_term = ROOMS.c.kind == kind if kind is not None else CAMERAS.c.room_id.is_(None)
                base = (
                    select(
                        SEGMENTS.c.id,
                        SEGMENTS.c.storage_key,
                        SEGMENTS.c.camera_id,
                        SEGMENTS.c.start_us,
                        SEGMENTS.c.end_us,
                        SEGMENTS.c.size,
                        SEGMENTS.c.sha256,
                    )
                    .join(CAMERAS, CAMERAS.c.id == SEGMENTS.c.camera_id)
                    .outerjoin(ROOMS, ROOMS.c.id == CAMERAS.c.room_id)
                    .where(and_(room_term, SEGMENTS.c.end_us < cutoff))
                )
                rows = conn.execute(base).mappings().all()
                holds = set(conn.execute(active_hold_keys()).scalars()) if rows else set()
                for r in rows:
                    if r["storage_key"] in holds:
                        held += 1
                    else:
                        found.append({**r, "room_kind": kind})
        found.sort(key=lambda r: (r["end_us"], r["storage_key"]))
        return found, held

    def delete_segment(self, segment_id: int) -> None:
        """The index row of a segment whose stored objects are gone."""
        with self._engine.begin() as conn:
            conn.execute(delete(SEGMENTS).where(SEGMENTS.c.id == segment_id))

    def repair_runs(self) -> None:
        """Recompute the coverage runs the deletes left dirty, so footage answers stay on the fast
        path (they are exact either way)."""
        with Session(self._engine) as s, s.begin():
            segment_runs.repair(s)
