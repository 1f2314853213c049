"""Lease churn of a recorder fleet against one PostgreSQL: N nodes × M cameras.

    .venv/bin/python bench/fleet.py --nodes 10 --cameras 500 --seconds 20 [--interval 1.5] [--ttl 6]

Each node is a thread with its own connection running ``LeaseManager.tick`` (heartbeat, renew,
acquire with SKIP LOCKED) every ``--interval`` seconds (0 = back to back, to find the ceiling).
Reports tick latency (p50/p95/p99/max), ticks and lease renewals per second, the time to reach
the fair share, and the takeover time after a quarter of the nodes stop (kill -9: no release).
A fresh database is created on the server and dropped afterwards.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from indexer.database import create_engine_for, upgrade
from indexer.leases import LeaseManager, fair_share
from indexer.segment_store import SegmentStore


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


class Node(threading.Thread):
    def __init__(self, url: str, node_id: str, cameras: list[str], ttl: float, interval: float) -> None:
        super().__init__(daemon=True)
        self.engine = create_engine_for(url)
        self.leases = LeaseManager(self.engine, node_id, ttl)
        self.cameras = cameras
        self.interval = interval
        self.stop = threading.Event()
        self.latencies: list[float] = []
        self.renewed = 0
        self.held: tuple[str, ...] = ()

    def run(self) -> None:
        while not self.stop.is_set():
            began = time.perf_counter()
            result = self.leases.tick(self.cameras)
            self.latencies.append(time.perf_counter() - began)
            self.renewed += len(result.held) - len(result.acquired)
            self.held = result.held
            if result.excess:
                self.leases.release(result.excess)
            if self.interval:
                self.stop.wait(self.interval)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--nodes", type=int, default=10)
    ap.add_argument("--cameras", type=int, default=500)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--interval", type=float, default=1.5)
    ap.add_argument("--ttl", type=float, default=6.0)
    args = ap.parse_args()

    name = f"bench_fleet_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.pg, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = args.pg.rsplit("/", 1)[0] + f"/{name}"
    nodes: list[Node] = []
    try:
        engine = create_engine_for(url)
        upgrade(engine)
        cams = [f"cam-{i:05d}" for i in range(args.cameras)]
        rooms = [
            (f"room-{r}", f"room {r}", "waiting", [(c, c, f"rtsp://h/{c}") for c in cams[r::50]])
            for r in range(min(50, len(cams)))
        ]
        SegmentStore(engine).sync_rooms(rooms)
        LeaseManager(engine, "setup").ensure(cams)
        nodes = [Node(url, f"node-{i:03d}", cams, args.ttl, args.interval) for i in range(args.nodes)]
        for node in nodes:
            node.leases.tick(cams, acquire=False)
        share = fair_share(len(cams), len(nodes))
        began = time.monotonic()
        for node in nodes:
            node.start()
        while not (sum(len(n.held) for n in nodes) == len(cams) and max(len(n.held) for n in nodes) <= share):
            time.sleep(0.05)
        balanced_after = time.monotonic() - began
        time.sleep(args.seconds)
        steady = [lat for n in nodes for lat in n.latencies]
        ticks = len(steady)
        renewed = sum(n.renewed for n in nodes)
        elapsed = time.monotonic() - began

        victims = nodes[: max(1, len(nodes) // 4)]
        orphans = {c for v in victims for c in v.held}
        killed = time.monotonic()
        for v in victims:
            v.stop.set()
        for v in victims:
            v.join()
        survivors = nodes[len(victims) :]
        takeover = None
        while time.monotonic() - killed < args.ttl * 4:
            owners = {c for n in survivors for c in n.held}
            if orphans <= owners:
                takeover = time.monotonic() - killed
                break
            time.sleep(0.05)
        report = {
            "nodes": args.nodes,
            "cameras": args.cameras,
            "interval_s": args.interval,
            "ttl_s": args.ttl,
            "ticks": ticks,
            "ticks_per_s": round(ticks / elapsed, 1),
            "lease_renewals_per_s": round(renewed / elapsed, 1),
            "tick_ms": {
                q: round(_pct(steady, p) * 1000, 2)
                for q, p in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("max", 1.0))
            },
            "tick_ms_mean": round(statistics.fmean(steady) * 1000, 2) if steady else None,
            "balanced_after_s": round(balanced_after, 2),
            "killed_nodes": len(victims),
            "orphaned_cameras": len(orphans),
            "takeover_s": None if takeover is None else round(takeover, 2),
        }
        print(json.dumps(report, indent=2))
    finally:
        for node in nodes:
            node.stop.set()
        for node in nodes:
            node.join(5)
            node.engine.dispose()
        with psycopg.connect(args.pg, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


if __name__ == "__main__":
    main()
