"""Index benchmark: bulk-load segments and events, then time the subject-footage query and search.

Not a test. Loads a synthetic centre (rooms with two cameras each, back-to-back 10 s segments
with an occasional gap, subjects walking entry → search → property → info → waiting →
interrogation → exit with ten procedure events each) into SQLite and/or PostgreSQL through the
real migrations, then measures p50/p95 of:

* ``footage``: FootageIndex.subject_coverage over a random subject's whole visit (trajectory from
  events and observations, then per camera of every stay its coverage runs from ``segment_runs``,
  segment count and covered seconds summed by the database, gaps, unexplained), end to end — the
  footage answer without the segment list (API ``?segments=false``, case timeline);
* ``footage+segments``: FootageIndex.subject_footage, the same answer with every segment record
  (API default, export); ``footage-sql`` is its SQL with the rows fetched but no objects (the
  shape of the query — stays, hours, runs, segment records — is printed with the figures);
* ``search``: CaseSearch.search with a mix of filters (case number, ID number, name, officer,
  room + 1 h window, event type + 1 day window), with the total count.

    .venv/bin/python bench/index.py --segments 1000000 --events 100000 --backend both
    .venv/bin/python bench/index.py                      # the issue's 10M segments / 1M events

The schema is migrated to head before measuring, also with ``--reuse`` (a database loaded at an
older revision gets the newer ones then — revision 0006 backfills ``segment_runs`` from the
segments, timed and printed; same-named indexes created by hand by the older ``--extra-indexes``
option are dropped first so revision 0002 can create them). A fresh load writes segments with
``COPY``/``executemany``, past the segment store, so the runs are rebuilt after it
(``indexer.segment_runs.rebuild``, timed).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import logging
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from domain.types import EventType, segment_key
from indexer import segment_runs
from indexer.case_store import CaseStore
from indexer.database import alembic_config, create_engine_for, current_revision, freeze_heap, upgrade
from indexer.footage import FootageIndex, _trajectory
from indexer.footage_rows import BY_START_ID as _BY_START_ID
from indexer.footage_rows import GAP_COLS as _GAP_COLS
from indexer.footage_rows import GAPS, SEGMENTS
from indexer.footage_rows import overlapping as _overlapping
from indexer.footage_rows import rooms_of as _rooms
from indexer.footage_rows import seg_layout as _seg_layout
from indexer.models import from_us, to_us
from indexer.search import CaseQuery, CaseSearch

log = logging.getLogger("bench.index")

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SEG_US = 10_000_000
EVENTS_PER_SUBJECT = 10
CAMS_PER_ROOM = 2
ROOM_PLAN = [
    ("entry", 2),
    ("search", 2),
    ("property", 2),
    ("info", 2),
    ("waiting", 10),
    ("interrogation", 20),
]
# Indexes of revision 0002 that the older --extra-indexes option created by hand.
HAND_MADE_0002 = [
    "ix_procedure_events_type_time",
    "ix_procedure_events_time_us",
    "ix_procedure_event_officers_officer_id",
    "ix_case_officers_officer_id",
    "ix_imported_file_subjects_subject_id",
    "ix_cases_case_number_pattern",
]


def rooms() -> list[tuple[str, str]]:
    return [(f"{kind}-{i}", kind) for kind, n in ROOM_PLAN for i in range(n)]


def cameras() -> list[tuple[str, str]]:
    return [(f"{rid}-c{j}", rid) for rid, _ in rooms() for j in range(CAMS_PER_ROOM)]


# --- synthetic rows --------------------------------------------------------------------------------


def segment_rows(total: int, gap_every: int) -> tuple[Iterator[tuple[Any, ...]], list[tuple[Any, ...]], int]:
    """(segment rows, gap rows, span in µs). Segments are split evenly over all cameras."""
    cams = cameras()
    per_cam = max(1, total // len(cams))
    gaps: list[tuple[Any, ...]] = []
    for cam, _ in cams:
        for k in range(gap_every, per_cam, gap_every):
            s = to_us(T0) + k * SEG_US
            gaps.append((f"{cam}-{k}-disconnect", cam, s, s + 3 * SEG_US, "disconnect", "bench", 0))

    def gen() -> Iterator[tuple[Any, ...]]:
        for cam, _ in cams:
            prev = None
            for seq in range(per_cam):
                if gap_every and seq % gap_every in (1, 2, 3) and seq > gap_every:
                    continue  # the three segments a gap replaces
                start_us = to_us(T0) + seq * SEG_US
                key = segment_key(cam, T0 + timedelta(microseconds=seq * SEG_US), seq)
                sha = hashlib.sha256(key.encode()).hexdigest()
                yield (
                    cam, "run-1", seq, start_us, start_us + SEG_US, key, 1_000_000, sha, None, prev,
                    "rtcp", "mpegts", "h264", 1920, 1080, "pcm_alaw", 8000, 1, 250, False, "camera", 0,
                )  # fmt: skip
                prev = sha

    return gen(), gaps, per_cam * SEG_US


SEGMENT_COLS = (
    "camera_id, run_id, seq, start_us, end_us, storage_key, size, sha256, sm3, prev_sha256, clock_source, "
    "container, video_codec, width, height, audio_codec, audio_sample_rate, audio_channels, packets, "
    "recovered, source, indexed_us"
)
GAP_COLS = "gap_id, camera_id, start_us, end_us, cause, detail, indexed_us"


def people_rows(n_events: int, span_us: int, rng: random.Random) -> dict[str, list[tuple[Any, ...]]]:
    """Cases (one suspect each), officers, events (10 per subject), event officers, observations."""
    by_kind: dict[str, list[str]] = {}
    for rid, kind in rooms():
        by_kind.setdefault(kind, []).append(rid)
    n_subjects = max(1, n_events // EVENTS_PER_SUBJECT)
    out: dict[str, list[tuple[Any, ...]]] = {
        k: [] for k in ("cases", "subjects", "officers", "case_officers")
    }
    out.update({"events": [], "event_officers": [], "observations": []})
    out["officers"] = [(i + 1, f"警官{i}", f"P-{i:05d}", "bench", True) for i in range(500)]
    surnames = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
    eid = 0
    for sid in range(1, n_subjects + 1):
        visit = to_us(T0) + rng.randrange(0, max(1, span_us - 6 * 3600 * 1_000_000))
        out["cases"].append((sid, f"A{2026}{sid:08d}", f"案件{sid}", "盗窃", True, False, visit))
        name = rng.choice(surnames) + rng.choice("伟芳娜敏静丽强磊军洋") + str(sid % 97)
        out["subjects"].append((sid, sid, name, f"1101{sid:014d}", "suspect", False, None, f"WB{sid}"))
        officer = rng.randrange(1, 501)
        out["case_officers"].append((sid, officer, "lead"))
        t = visit
        plan: list[tuple[EventType, str | None, int]] = [
            (EventType.ENTRY, "entry", 600), (EventType.SEARCH, "search", 600),
            (EventType.PROPERTY, "property", 600), (EventType.INFO_COLLECTION, "info", 900),
            (EventType.WAITING, "waiting", 3600), (EventType.TAKEN_OUT, "waiting", 60),
            (EventType.INTERROGATION_START, "interrogation", 5400),
            (EventType.INTERROGATION_END, "interrogation", 300),
            (EventType.TRANSCRIPT_SIGNED, "interrogation", 120), (EventType.EXIT, None, 0),
        ]  # fmt: skip
        room: str | None = None
        for etype, place, dwell in plan:
            if place is not None and (room is None or not room.startswith(place)):
                room = rng.choice(by_kind[place])
            eid += 1
            out["events"].append(
                (eid, f"ev-{eid}", etype.value, t, room if place else None, sid, sid, "{}", t)
            )
            out["event_officers"].append((eid, officer))
            if place is not None and etype in (EventType.ENTRY, EventType.WAITING):
                out["observations"].append((f"ob-{eid}", sid, None, room, t + 5_000_000, "wristband", t))
            t += dwell * 1_000_000 + rng.randrange(0, 60_000_000)
    return out


# --- loading -----------------------------------------------------------------------------------------


def _chunks(rows: Iterator[tuple[Any, ...]], size: int) -> Iterator[list[tuple[Any, ...]]]:
    batch: list[tuple[Any, ...]] = []
    for r in rows:
        batch.append(r)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


TABLES = {
    "cases": "id, case_number, title, charge, recording_mandatory, serious, created_us",
    "subjects": "id, case_id, name, id_number, role, minor, guardian_name, wristband_id",
    "officers": "id, name, badge_number, unit, active",
    "case_officers": "case_id, officer_id, role",
    "events": "id, client_id, type, time_us, room_id, case_id, subject_id, payload, received_us",
    "event_officers": "event_id, officer_id",
    "observations": "client_id, subject_id, officer_id, room_id, time_us, source, received_us",
}
REAL = {
    "events": "procedure_events",
    "event_officers": "procedure_event_officers",
    "observations": "location_observations",
}


def load(engine: Engine, n_segments: int, n_events: int, seed: int) -> list[int]:
    """Bulk-load everything; returns the subject ids."""
    rng = random.Random(seed)
    segs, gaps, span = segment_rows(n_segments, gap_every=1000)
    people = people_rows(n_events, span, rng)
    room_rows = [(rid, f"room {rid}", kind, True, 0) for rid, kind in rooms()]
    cam_rows = [(cid, rid, cid, "rtsp://bench", True, SEG_US, 3 * SEG_US, 0) for cid, rid in cameras()]
    tables: list[tuple[str, str, Iterator[tuple[Any, ...]] | list[tuple[Any, ...]]]] = [
        ("rooms", "id, name, kind, active, updated_us", room_rows),
        ("cameras", "id, room_id, name, url, active, max_segment_us, max_gap_us, updated_us", cam_rows),
        ("segments", SEGMENT_COLS, segs),
        ("gaps", GAP_COLS, gaps),
    ]
    tables += [(REAL.get(k, k), cols, people[k]) for k, cols in TABLES.items()]
    raw = engine.raw_connection()
    try:
        for table, cols, rows in tables:
            t = time.perf_counter()
            n = _copy(raw, engine.dialect.name, table, cols, rows)
            log.info("loaded %-26s %10d rows in %6.1f s", table, n, time.perf_counter() - t)
        raw.commit()
    finally:
        raw.close()
    t = time.perf_counter()
    with engine.begin() as conn:
        segment_runs.rebuild(conn)  # COPY went past the segment store, which keeps the runs
    log.info("rebuilt segment_runs in %.1f s", time.perf_counter() - t)
    t = time.perf_counter()
    n = CaseStore(engine).rebuild_officer_cases()  # likewise for the officer search's index
    log.info("rebuilt officer_cases (%d rows) in %.1f s", n, time.perf_counter() - t)
    t = time.perf_counter()
    n = CaseStore(engine).rebuild_name_grams()  # and the name search's
    log.info("rebuilt subject_name_grams (%d rows) in %.1f s", n, time.perf_counter() - t)
    analyze(engine)
    return [r[0] for r in people["subjects"]]


def analyze(engine: Engine) -> None:
    """Statistics for the planner; on PostgreSQL also VACUUM, which sets the visibility map of the
    freshly loaded heap (as autovacuum does on a live database): without it the covering index of
    "type + window" cannot answer from the index alone."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM (ANALYZE)"))
        return
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))


def _copy(raw: Any, dialect: str, table: str, cols: str, rows: Any) -> int:
    n = 0
    if dialect == "postgresql":
        dbapi: psycopg.Connection[Any] = raw.driver_connection
        with dbapi.cursor() as cur, cur.copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
            for r in rows:
                copy.write_row(r)
                n += 1
        return n
    cur = raw.cursor()
    marks = ", ".join("?" for _ in cols.split(","))
    for batch in _chunks(iter(rows), 50_000):
        cur.executemany(f"INSERT INTO {table} ({cols}) VALUES ({marks})", batch)
        n += len(batch)
    return n


# --- measuring ------------------------------------------------------------------------------------


Figures = tuple[float, float, float, float]  # wall p50, p95; CPU of the calling thread p50, p95 (ms)


def _pct(samples: list[float]) -> tuple[float, float]:
    samples = sorted(samples)
    return statistics.median(samples), samples[max(0, int(len(samples) * 0.95) - 1)]


def figures(wall: list[float], cpu: list[float]) -> Figures:
    return (*_pct(wall), *_pct(cpu))


def timed_many(fns: Sequence[Callable[[], object]], n: int) -> list[Figures]:
    """Each of ``fns`` called ``n`` times, interleaved call by call (so a change of the shared
    machine's load hits all alike): wall time and the calling thread's CPU time. On a machine with
    many more runnable processes than cores, wall time is mostly waiting for a core; the thread's
    CPU time is not (it still excludes the PostgreSQL server's own work)."""
    wall: list[list[float]] = [[] for _ in fns]
    cpu: list[list[float]] = [[] for _ in fns]
    for _ in range(n):
        for k, fn in enumerate(fns):
            t, c = time.perf_counter(), time.thread_time()
            fn()
            cpu[k].append((time.thread_time() - c) * 1000)
            wall[k].append((time.perf_counter() - t) * 1000)
    return [figures(w, c) for w, c in zip(wall, cpu, strict=True)]


def footage_sql(engine: Engine, subject_id: int) -> None:
    """The same SQL as FootageIndex.subject_footage (rooms, trajectory inputs, one segment and one
    gap statement for every camera of every stay), rows fetched as tuples, no records built."""
    far = to_us(datetime(2100, 1, 1, tzinfo=UTC))
    with Session(engine) as s, s.begin():
        rooms = _rooms(s)
        reads, gap_reads = [], []
        for stay in _trajectory(s, subject_id, rooms):
            lo, hi = to_us(stay.start), to_us(stay.end) if stay.end else far
            for cam, seg_max, gap_max in rooms[stay.room_id].cameras:
                reads.append((cam, lo - seg_max, lo, hi))
                gap_reads.append((cam, lo - gap_max, lo, hi))
        seg_cols, by_start_seq, _ = _seg_layout(engine.dialect.name)
        _overlapping(s, SEGMENTS, seg_cols, by_start_seq, reads)
        _overlapping(s, GAPS, _GAP_COLS, _BY_START_ID, gap_reads)


def footage_shape(footage: FootageIndex, subjects: Sequence[int], n: int, seed: int) -> str:
    """What one footage query returns, on average over ``n`` random subjects."""
    rng = random.Random(seed + 2)
    far = datetime(2100, 1, 1, tzinfo=UTC)
    stays = hours = segs = gaps = cams = runs = 0.0
    for _ in range(n):
        subject = rng.choice(subjects)
        result, _ = footage.subject_footage(subject, T0, far, now=far)
        stays += len(result)
        hours += sum(f.interval.seconds for f in result) / 3600
        cams += sum(len(f.cameras) for f in result)
        segs += sum(len(c.segments) for f in result for c in f.cameras)
        gaps += sum(len(c.gaps) for f in result for c in f.cameras)
        covered, _ = footage.subject_coverage(subject, T0, far, now=far)
        runs += sum(len(c.runs) for f in covered for c in f.cameras)
    return (
        f"footage query (mean of {n}): {stays / n:.1f} stays, {hours / n:.2f} h, {cams / n:.1f} camera"
        f" streams, {runs / n:.1f} coverage runs, {segs / n:.0f} segment records, {gaps / n:.1f} gaps"
    )


def measure(engine: Engine, subjects: Sequence[int], n: int, seed: int) -> dict[str, Figures]:
    rng = random.Random(seed + 1)
    store = CaseStore(engine)
    footage, search = FootageIndex(store), CaseSearch(store)
    far = datetime(2100, 1, 1, tzinfo=UTC)
    results: dict[str, Figures] = {}
    pick = [0]

    def coverage() -> None:
        pick[0] = rng.choice(subjects)
        footage.subject_coverage(pick[0], T0, far, now=far)

    results["footage"], results["footage+segments"], results["footage-sql"] = timed_many(
        [
            coverage,  # the same subject for all three, one after the other
            lambda: footage.subject_footage(pick[0], T0, far, now=far),
            lambda: footage_sql(engine, pick[0]),
        ],
        n,
    )
    n_sub = len(subjects)

    with engine.connect() as conn:
        first, last = conn.execute(text("SELECT min(time_us), max(time_us) FROM procedure_events")).one()

    def window(hours: float) -> tuple[datetime, datetime]:
        """A window inside the span the events cover, so the query finds something."""
        s = from_us(rng.randrange(int(first), max(int(first) + 1, int(last) - int(hours * 3600e6))))
        return s, s + timedelta(hours=hours)

    queries: dict[str, Callable[[], CaseQuery]] = {
        "search:case_number": lambda: CaseQuery(case_number=f"A2026{rng.randrange(1, n_sub + 1):08d}"),
        "search:id_number": lambda: CaseQuery(id_number=f"1101{rng.randrange(1, n_sub + 1):014d}"),
        "search:name": lambda: CaseQuery(subject_name=rng.choice("王李张") + rng.choice("伟芳娜") + "1"),
        "search:officer": lambda: CaseQuery(officer_id=rng.randrange(1, 501), limit=20),
        "search:room+1h": lambda: CaseQuery(
            room_id=f"interrogation-{rng.randrange(20)}", start=(w := window(1))[0], end=w[1]
        ),
        "search:type+1d": lambda: CaseQuery(
            event_type=EventType.INTERROGATION_START, start=(w := window(24))[0], end=w[1], limit=20
        ),
    }  # fmt: skip
    all_wall: list[float] = []
    all_cpu: list[float] = []
    for name, make in queries.items():
        wall, cpu = [], []
        for _ in range(n):
            q = make()
            t, c = time.perf_counter(), time.thread_time()
            search.search(q)
            cpu.append((time.thread_time() - c) * 1000)
            wall.append((time.perf_counter() - t) * 1000)
        all_wall += wall
        all_cpu += cpu
        results[name] = figures(wall, cpu)
    results["search (all)"] = figures(all_wall, all_cpu)
    return results


def prepare(backend: str, args: argparse.Namespace) -> Engine:
    if backend == "sqlite":
        path = Path(args.sqlite_path)
        if path.exists() and not args.reuse:
            path.unlink()
        return create_engine_for(f"sqlite:///{path}")
    admin = psycopg.connect(args.pg_admin, autocommit=True)
    if not args.reuse:
        admin.execute(f"DROP DATABASE IF EXISTS {args.pg_db}")
        admin.execute(f"CREATE DATABASE {args.pg_db}")
    admin.close()
    base = args.pg_admin.rsplit("/", 1)[0]
    return create_engine_for(f"{base}/{args.pg_db}")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--segments", type=int, default=10_000_000)
    p.add_argument("--events", type=int, default=1_000_000)
    p.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    p.add_argument("--queries", type=int, default=200, help="samples per measured query kind")
    p.add_argument("--sqlite-path", default="/tmp/vaudit-bench.db")
    p.add_argument("--pg-admin", default="postgresql://postgres@127.0.0.1:5432/postgres")
    p.add_argument("--pg-db", default="vaudit_bench")
    p.add_argument("--reuse", action="store_true", help="measure an already loaded database")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument(
        "--gc-freeze",
        action="store_true",
        help="call indexer.database.freeze_heap() before measuring (what a server would do after start-up)",
    )
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    report = io.StringIO()
    for backend in backends:
        engine = prepare(backend, args)
        if not args.reuse:
            upgrade(engine)
            t = time.perf_counter()
            load(engine, args.segments, args.events, args.seed)
            log.info("%s: loaded in %.0f s", backend, time.perf_counter() - t)
        elif (
            current_revision(engine) != ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
        ):
            t = time.perf_counter()
            if current_revision(engine) == "0001":
                with engine.begin() as conn:
                    for name in HAND_MADE_0002:
                        conn.execute(text(f"DROP INDEX IF EXISTS {name}"))
            upgrade(engine)
            analyze(engine)
            log.info("%s: migrated to head in %.0f s", backend, time.perf_counter() - t)
        with engine.connect() as conn:
            subjects = [int(r[0]) for r in conn.execute(text("SELECT id FROM subjects"))]
            n_seg = conn.execute(text("SELECT count(*) FROM segments")).scalar_one()
            n_ev = conn.execute(text("SELECT count(*) FROM procedure_events")).scalar_one()
        if args.gc_freeze:
            freeze_heap()
        load_before = os.getloadavg()[0]
        results = measure(engine, subjects, args.queries, args.seed)
        load_after = os.getloadavg()[0]
        print(f"\n{backend}: {n_seg:,} segments, {n_ev:,} events, {len(subjects):,} subjects", file=report)
        print(
            f"  {os.cpu_count()} CPUs, 1-min load average {load_before:.1f} before / {load_after:.1f} after"
            " measuring (other processes share the machine: compare runs at similar load)"
            + ("; heap frozen for the GC" if args.gc_freeze else ""),
            file=report,
        )
        print("  " + footage_shape(FootageIndex(CaseStore(engine)), subjects, 20, args.seed), file=report)
        print(f"  {'query':<22} {'p50 ms':>8} {'p95 ms':>8} {'CPU p50':>8} {'CPU p95':>8}", file=report)
        for name, (p50, p95, c50, c95) in results.items():
            print(f"  {name:<22} {p50:8.2f} {p95:8.2f} {c50:8.2f} {c95:8.2f}", file=report)
        engine.dispose()
    print(report.getvalue())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
