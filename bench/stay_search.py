"""Search by room + time with stays: revision 0011's ``location_observations (room_id, time_us)``
index against the same database without it (revision 0010, the named baseline), in one run.

Not a test. Loads one synthetic centre through the real migrations (default 200,000 location
readings over 30 rooms: each subject's wristband read every few minutes through a visit of
four to six rooms, a quarter of the readings officers seen by face recognition, plus the room events), into two
databases with the same rows — one at revision 0010, one migrated on to head — then calls, on
both, interleaved call by call so a change of the shared machine's load hits both alike:

* ``stay cases``: :func:`indexer.search_stays.stay_case_ids` for a random room and a random 1 h
  window (its candidates: the subjects with a reading in the room since the window's start
  minus the 48 h look-back; then their trajectories);
* ``search room + 1 h``: ``CaseSearch.search`` with that room and window (what the web form
  sends), stays and events, the page and its total;
* ``search room, end only``: ``CaseSearch.search`` with a room and only an end (the stays
  are then a semi-join in the page's statement: a reading in the room before the end).

Each pair of calls must give the same answer (checked). Reported: p50/p95 wall and CPU ms per
database and the ratio baseline / indexed of the p50s, with the query plans of the candidate
statement.

    .venv/bin/python bench/stay_search.py                      # SQLite and PostgreSQL, 200k readings
    .venv/bin/python bench/stay_search.py --backend sqlite --observations 50000 --queries 50
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg
from sqlalchemy import Engine, text

from domain.types import EventType
from indexer.case_store import CaseStore
from indexer.database import create_engine_for, current_revision, upgrade
from indexer.models import to_us
from indexer.search import CaseQuery, CaseSearch
from indexer.search_stays import STAY_LOOKBACK, _in_room, stay_case_ids

log = logging.getLogger("bench.stay_search")

BASELINE_REVISION = "0010_audit_key"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
KINDS = [("entry", 2), ("search", 2), ("property", 2), ("info", 4), ("waiting", 8), ("interrogation", 12)]
READINGS_PER_SUBJECT = 30  # a wristband read every ~5 min through a ~2.5 h visit
OFFICER_SHARE = 0.25  # of all readings: officers (subject_id NULL), seen by face recognition


def rooms() -> list[tuple[str, str]]:
    return [(f"{kind}-{i}", kind) for kind, n in KINDS for i in range(n)]


def centre_rows(n_obs: int, days: int, rng: random.Random) -> dict[str, list[tuple[Any, ...]]]:
    """Cases with one suspect each, officers, room events and location readings."""
    by_kind: dict[str, list[str]] = {}
    for rid, kind in rooms():
        by_kind.setdefault(kind, []).append(rid)
    n_subjects = max(1, int(n_obs * (1 - OFFICER_SHARE)) // READINGS_PER_SUBJECT)
    span_us = days * 86_400_000_000
    out: dict[str, list[tuple[Any, ...]]] = {"cases": [], "subjects": [], "events": [], "observations": []}
    out["officers"] = [(i, f"警官{i}", f"P-{i:05d}", "bench", True) for i in range(1, 201)]
    eid = 0
    for sid in range(1, n_subjects + 1):
        t = to_us(T0) + rng.randrange(span_us)
        out["cases"].append((sid, f"A2026{sid:08d}", f"案件{sid}", "盗窃", True, False, t))
        out["subjects"].append(
            (sid, sid, f"嫌疑人{sid}", f"1101{sid:014d}", "suspect", False, None, f"WB{sid}")
        )
        path = ["entry", "search", "property", "info", "waiting", "interrogation"]
        if rng.random() < 0.3:
            path += ["waiting", "interrogation"]
        per_room = max(1, READINGS_PER_SUBJECT // len(path))
        for kind in path:
            room = rng.choice(by_kind[kind])
            eid += 1
            etype = EventType.INTERROGATION_START if kind == "interrogation" else EventType.ENTRY
            if kind == "waiting":
                etype = EventType.WAITING
            out["events"].append((eid, f"ev-{eid}", etype.value, t, room, sid, sid, "{}", t))
            for _ in range(per_room):
                t += rng.randrange(120, 480) * 1_000_000
                out["observations"].append(
                    (f"ob-s{len(out['observations'])}", sid, None, room, t, "wristband", t)
                )
    for k in range(int(n_obs * OFFICER_SHARE)):
        t = to_us(T0) + rng.randrange(span_us)
        room = rng.choice(rooms())[0]
        out["observations"].append((f"ob-o{k}", None, rng.randrange(1, 201), room, t, "face", t))
    return out


COLS = {
    "rooms": "id, name, kind, active, updated_us",
    "cases": "id, case_number, title, charge, recording_mandatory, serious, created_us",
    "subjects": "id, case_id, name, id_number, role, minor, guardian_name, wristband_id",
    "officers": "id, name, badge_number, unit, active",
    "procedure_events": "id, client_id, type, time_us, room_id, case_id, subject_id, payload, received_us",
    "location_observations": "client_id, subject_id, officer_id, room_id, time_us, source, received_us",
}


def load(engine: Engine, rows: dict[str, list[tuple[Any, ...]]]) -> None:
    tables = {
        "rooms": [(rid, f"房间{rid}", kind, True, 0) for rid, kind in rooms()],
        "cases": rows["cases"],
        "subjects": rows["subjects"],
        "officers": rows["officers"],
        "procedure_events": rows["events"],
        "location_observations": rows["observations"],
    }
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        for table, data in tables.items():
            cols = COLS[table]
            marks = ", ".join(["%s" if engine.dialect.name == "postgresql" else "?"] * len(cols.split(",")))
            cur.executemany(f"INSERT INTO {table} ({cols}) VALUES ({marks})", data)
        raw.commit()
    finally:
        raw.close()
    CaseStore(engine).rebuild_name_grams()  # the rows went past the case store


def analyze(engine: Engine) -> None:
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM (ANALYZE)"))
    else:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))


def twin_databases(backend: str, args: argparse.Namespace) -> tuple[Engine, Engine]:
    """(baseline at 0010, indexed at head), same rows; the migration to head is timed."""
    rows = centre_rows(args.observations, args.days, random.Random(args.seed))
    if backend == "sqlite":
        work = Path(args.sqlite_dir)
        work.mkdir(parents=True, exist_ok=True)
        base_path, head_path = work / "stay-0010.db", work / "stay-head.db"
        for p in work.glob("stay-*.db*"):
            p.unlink()
        base = create_engine_for(f"sqlite:///{base_path}")
        upgrade(base, BASELINE_REVISION)
        load(base, rows)
        base.dispose()  # closes the WAL into the file before it is copied
        shutil.copyfile(base_path, head_path)
        base_url, head_url = f"sqlite:///{base_path}", f"sqlite:///{head_path}"
    else:
        prefix = args.pg_admin.rsplit("/", 1)[0]
        with psycopg.connect(args.pg_admin, autocommit=True) as admin:
            for db in (f"{args.pg_db}_0010", f"{args.pg_db}_head"):
                admin.execute(f"DROP DATABASE IF EXISTS {db}")
            admin.execute(f"CREATE DATABASE {args.pg_db}_0010")
        base = create_engine_for(f"{prefix}/{args.pg_db}_0010")
        upgrade(base, BASELINE_REVISION)
        load(base, rows)
        base.dispose()
        with psycopg.connect(args.pg_admin, autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {args.pg_db}_head TEMPLATE {args.pg_db}_0010")
        base_url, head_url = f"{prefix}/{args.pg_db}_0010", f"{prefix}/{args.pg_db}_head"
    base, head = create_engine_for(base_url), create_engine_for(head_url)
    t = time.perf_counter()
    upgrade(head)
    log.info(
        "%s: %s → %s in %.2f s", backend, BASELINE_REVISION, current_revision(head), time.perf_counter() - t
    )
    for engine in (base, head):
        analyze(engine)
    return base, head


def plan(engine: Engine, room: str, lo: int, hi: int) -> str:
    """The query plan of the candidate statement (the subjects with a reading in the room)."""
    stmt = _in_room([room], lo, hi)
    compiled = stmt.compile(engine, compile_kwargs={"literal_binds": True})
    prefix = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN (ANALYZE, COSTS OFF) "
    with engine.connect() as conn:
        rows = conn.execute(text(prefix + str(compiled))).all()
    lines = [str(r[-1]) for r in rows]
    return "\n".join(
        "      " + line for line in lines if "observations" in line or "Index" in line or "Scan" in line
    )


Figures = tuple[float, float, float, float]


def _pct(samples: list[float]) -> tuple[float, float]:
    samples = sorted(samples)
    return statistics.median(samples), samples[max(0, int(len(samples) * 0.95) - 1)]


def measure(base: Engine, head: Engine, n: int, days: int, seed: int) -> dict[str, tuple[Figures, Figures]]:
    rng = random.Random(seed + 1)
    stores = (CaseStore(base), CaseStore(head))
    room_ids = [rid for rid, _ in rooms()]
    kinds: dict[str, Callable[[CaseStore, str, datetime], object]] = {
        "stay cases": lambda st, room, at: _stays(st, room, at),
        "search room + 1 h": lambda st, room, at: _ids(
            CaseSearch(st).search(CaseQuery(room_id=room, start=at, end=at + timedelta(hours=1), limit=500))
        ),
        "search room, end only": lambda st, room, at: _ids(
            CaseSearch(st).search(CaseQuery(room_id=room, end=at, limit=20))
        ),
    }
    wall: dict[str, list[list[float]]] = {k: [[], []] for k in kinds}
    cpu: dict[str, list[list[float]]] = {k: [[], []] for k in kinds}
    for i in range(n):
        for name, fn in kinds.items():
            room = rng.choice(room_ids)
            at = T0 + timedelta(seconds=rng.randrange(days * 86_400))
            answers = []
            for which in (0, 1) if i % 2 == 0 else (1, 0):  # neither always goes first
                w, c = time.perf_counter(), time.thread_time()
                answers.append(fn(stores[which], room, at))
                cpu[name][which].append((time.thread_time() - c) * 1000)
                wall[name][which].append((time.perf_counter() - w) * 1000)
            if answers[0] != answers[1]:
                raise SystemExit(f"{name} {room} {at}: the two databases answer differently")
    return {k: ((*_pct(wall[k][0]), *_pct(cpu[k][0])), (*_pct(wall[k][1]), *_pct(cpu[k][1]))) for k in kinds}


def _stays(store: CaseStore, room: str, at: datetime) -> list[int]:
    with store.read_session("bench stays") as s:
        return stay_case_ids(s, [room], at, at + timedelta(hours=1))


def _ids(page: Any) -> tuple[int, list[int]]:
    return page.total, [h.case.id for h in page.items]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--observations", type=int, default=200_000)
    p.add_argument("--days", type=int, default=90, help="the time the readings are spread over")
    p.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    p.add_argument("--queries", type=int, default=100, help="samples per query kind and database")
    p.add_argument("--sqlite-dir", default="/tmp/vaudit-stay-bench")
    p.add_argument("--pg-admin", default="postgresql://postgres@127.0.0.1:5432/postgres")
    p.add_argument("--pg-db", default="vaudit_stay_bench")
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    out: list[str] = []
    for backend in ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]:
        base, head = twin_databases(backend, args)
        with head.connect() as conn:
            n_obs = conn.execute(text("SELECT count(*) FROM location_observations")).scalar_one()
            n_sub = conn.execute(text("SELECT count(*) FROM subjects")).scalar_one()
            n_ev = conn.execute(text("SELECT count(*) FROM procedure_events")).scalar_one()
        load_before = os.getloadavg()[0]
        results = measure(base, head, args.queries, args.days, args.seed)
        load_after = os.getloadavg()[0]
        mid = to_us(T0 + timedelta(days=args.days // 2))
        lo = mid - int(STAY_LOOKBACK / timedelta(microseconds=1))
        out.append(
            f"\n{backend}: {n_obs:,} readings in {len(rooms())} rooms over {args.days} days, {n_sub:,} subjects,"
            f" {n_ev:,} room events; {args.queries} samples per query and database, interleaved"
        )
        out.append(
            f"  {os.cpu_count()} CPUs, 1-min load average {load_before:.1f} before / {load_after:.1f} after"
        )
        out.append(
            f"  {'query':<22} {'baseline 0010 p50/p95':>22} {'0011 p50/p95':>16} {'CPU p50 0010/0011':>18}"
            f" {'ratio p50':>10}"
        )
        for name, ((b50, b95, bc, _), (h50, h95, hc, _)) in results.items():
            out.append(
                f"  {name:<22} {b50:10.2f} / {b95:8.2f} {h50:7.2f} / {h95:6.2f} {bc:8.2f} / {hc:7.2f}"
                f" {b50 / h50:9.1f}x"
            )
        for label, engine in (("baseline 0010", base), ("0011", head)):
            out.append(f"  candidate statement plan, {label} (one room, 49 h):")
            out.append(plan(engine, "waiting-0", lo, mid + 3_600_000_000))
        base.dispose()
        head.dispose()
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
