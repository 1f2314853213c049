"""Playback benchmark: first byte and seek latency of 1 h ranges, p50/p95, with concurrent
viewers while the same process records simulated cameras (as ``vaudit run`` does).

Footage: one 10 s H.264 + G.711 A-law MPEG-TS segment (1280x720, the cameras' bit rate) made by
ffmpeg and hard-linked 360 times as one hour of one camera, indexed in SQLite; plus 2 min of
H.265 to measure the cost of the on-the-fly H.264 rendition. The API (auth gate, audit row per
request, playback) runs in-process under uvicorn next to a CentreRuntime recording ``--record``
simulated cameras (GStreamer RTSP servers).

Each viewer repeats: GET the whole hour (time to first byte, then reads ``--read-kb`` and
closes, as a player does before it seeks), then GET from a random point of the hour (a seek:
time to first byte). Reported: p50/p95 of both, alone and with ``--viewers`` at once.

    .venv/bin/python bench/playback.py --viewers 20 --record 8 --rounds 5 --work /tmp/vaudit-play
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import uvicorn  # noqa: E402

from domain.types import ClockSource, SegmentRecord, StreamInfo, iso, segment_key  # noqa: E402
from indexer.database import create_engine_for, upgrade  # noqa: E402
from indexer.segment_store import SegmentStore  # noqa: E402
from indexer.users import UserStore  # noqa: E402
from pipeline.api.app import create_app  # noqa: E402
from pipeline.settings import Settings  # noqa: E402
from pipeline.simulator.camera import free_port  # noqa: E402

SEGMENT = 10
T0 = datetime(2024, 5, 1, 0, 0, tzinfo=UTC)
PASSWORD = "bench-password-1"


def encode(path: Path, codec: str, kbps: int) -> None:
    vcodec = (
        ["libx264", "-g", "25"]
        if codec == "h264"
        else ["libx265", "-x265-params", "keyint=25:log-level=error"]
    )
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            f"testsrc2=size=1280x720:rate=25:duration={SEGMENT}",
            "-f",
            "lavfi",
            "-i",
            f"sine=frequency=440:sample_rate=8000:duration={SEGMENT}",
            "-c:v",
            *vcodec,
            "-preset",
            "ultrafast",
            "-b:v",
            f"{kbps}k",
            "-maxrate",
            f"{kbps}k",
            "-bufsize",
            f"{kbps}k",
            "-c:a",
            "pcm_alaw",
            "-ac",
            "1",
            "-f",
            "mpegts",
            str(path),
        ],
        check=True,
    )


def build(work: Path, store: SegmentStore, camera: str, codec: str, seconds: int, kbps: int) -> None:
    template = work / f"template-{codec}.ts"
    if not template.exists():
        encode(template, codec, kbps)
    digest = hashlib.sha256(template.read_bytes()).hexdigest()
    recs = []
    for i in range(seconds // SEGMENT):
        start = T0 + timedelta(seconds=i * SEGMENT)
        key = segment_key(camera, start, i + 1)
        path = work / "store" / key
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            os.link(template, path)
        recs.append(
            SegmentRecord(
                camera,
                "run",
                i + 1,
                start,
                start + timedelta(seconds=SEGMENT),
                key,
                template.stat().st_size,
                digest,
                None,
                ClockSource.RTCP,
                StreamInfo("hevc" if codec == "h265" else "h264", 1280, 720, "pcm_alaw", 8000, 1),
            )
        )
    store.add_segments(recs)


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def first_byte(client: httpx.Client, camera: str, start: datetime, end: datetime, read_kb: int) -> float:
    t = time.perf_counter()
    with client.stream(
        "GET", f"/api/v1/playback/{camera}.mp4", params={"start": iso(start), "end": iso(end)}
    ) as r:
        r.raise_for_status()
        got = 0
        first = None
        for chunk in r.iter_raw():
            if first is None:
                first = time.perf_counter() - t
            got += len(chunk)
            if got >= read_kb * 1024:
                break
    assert first is not None
    return first


def viewers(base: str, token: str, n: int, rounds: int, read_kb: int) -> tuple[list[float], list[float]]:
    whole: list[float] = []
    seeks: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(n)

    def viewer(k: int) -> None:
        rnd = random.Random(k)
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60) as c:
            barrier.wait()
            for _ in range(rounds):
                a = first_byte(c, "bench-h264", T0, T0 + timedelta(hours=1), read_kb)
                at = T0 + timedelta(seconds=rnd.uniform(0, 3590))
                b = first_byte(c, "bench-h264", at, T0 + timedelta(hours=1), 64)
                with lock:
                    whole.append(a)
                    seeks.append(b)

    threads = [threading.Thread(target=viewer, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return whole, seeks


def transcode_cost(base: str, token: str, seconds: int) -> dict[str, float]:
    cpu0, t0 = time.process_time(), time.perf_counter()
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=600) as c:
        params = {"start": iso(T0), "end": iso(T0 + timedelta(seconds=seconds))}
        tf = time.perf_counter()
        first = None
        size = 0
        with c.stream("GET", "/api/v1/playback/bench-h265.mp4", params=params) as r:
            for chunk in r.iter_raw():
                first = first if first is not None else time.perf_counter() - tf
                size += len(chunk)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return {
        "media_s": seconds,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "realtime_factor": round(seconds / wall, 2),
        "cpu_cores_per_viewer": round(cpu / seconds, 3),
        "first_byte_ms": round((first or 0) * 1000, 1),
        "bytes": size,
    }


def summary(name: str, values: list[float]) -> dict[str, Any]:
    return {
        "what": name,
        "n": len(values),
        "p50_ms": round(pct(values, 50) * 1000, 1),
        "p95_ms": round(pct(values, 95) * 1000, 1),
        "max_ms": round(max(values) * 1000, 1),
        "mean_ms": round(statistics.fmean(values) * 1000, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, default=Path("/tmp/vaudit-bench-playback"))
    ap.add_argument("--viewers", type=int, default=20)
    ap.add_argument("--record", type=int, default=8, help="simulated cameras recording meanwhile (0: none)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--read-kb", type=int, default=512)
    ap.add_argument("--kbps", type=int, default=1500)
    ap.add_argument("--h265-seconds", type=int, default=60)
    args = ap.parse_args()
    work: Path = args.work
    if (work / "spool").exists():
        shutil.rmtree(work / "spool")
    (work / "index.db").unlink(missing_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    live_rooms = [
        {
            "id": f"room-{i}",
            "name": f"讯问室{i}",
            "kind": "interrogation",
            "cameras": [{"id": f"live-{i}", "url": f"rtsp://127.0.0.1:{free_port()}/live-{i}"}],
        }
        for i in range(args.record)
    ]
    bench_room = {
        "id": "bench",
        "name": "基准",
        "kind": "other",
        "cameras": [
            {"id": "bench-h264", "url": "rtsp://127.0.0.1:1/none"},
            {"id": "bench-h265", "url": "rtsp://127.0.0.1:1/none"},
        ],
    }
    common = {
        "database": {"url": f"sqlite:///{work / 'index.db'}"},
        "storage": {"path": str(work / "store")},
        "recorder": {"spool": str(work / "spool"), "segment_seconds": 10},
    }
    rec_settings = Settings(rooms=live_rooms, **common)
    all_settings = Settings(rooms=[*live_rooms, bench_room], **common)
    engine = create_engine_for(all_settings.database.url)
    upgrade(engine)
    store = SegmentStore(engine)
    store.sync_rooms(all_settings.room_rows())
    t = time.perf_counter()
    build(work, store, "bench-h264", "h264", 3600, args.kbps)
    build(work, store, "bench-h265", "h265", max(args.h265_seconds, 20), args.kbps)
    print(f"footage ready in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    UserStore(engine).create_user("bench", "supervisor", PASSWORD)

    cams: list[Any] = []
    runtime = None
    if args.record:
        from pipeline.runtime import CentreRuntime
        from pipeline.simulator.centre import start_centre

        cams = start_centre(rec_settings)
        runtime = CentreRuntime(rec_settings)
        runtime.start()
    app = create_app(
        all_settings, store, runtime=runtime, engine=engine, storage=runtime.storage if runtime else None
    )
    if runtime is None:
        from pipeline.storage import LocalStorage

        app = create_app(all_settings, store, engine=engine, storage=LocalStorage(work / "store"))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
    )
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            if httpx.get(f"{base}/healthz").status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    token = httpx.post(f"{base}/api/v1/auth/token", json={"name": "bench", "password": PASSWORD}).json()[
        "access_token"
    ]
    results: dict[str, Any] = {
        "viewers": args.viewers,
        "recording_cameras": args.record,
        "rounds": args.rounds,
    }
    try:
        if args.record:
            time.sleep(5)  # recorders connected and writing
        w1, s1 = viewers(base, token, 1, args.rounds * 2, args.read_kb)
        results["alone"] = [summary("first byte, 1 h range", w1), summary("seek (first byte)", s1)]
        wn, sn = viewers(base, token, args.viewers, args.rounds, args.read_kb)
        results["concurrent"] = [summary("first byte, 1 h range", wn), summary("seek (first byte)", sn)]
        results["h265_to_h264"] = transcode_cost(base, token, args.h265_seconds)
        if runtime is not None:
            results["recorder_health"] = {k: v["running"] for k, v in runtime.supervisor.health().items()}
        results["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    finally:
        server.should_exit = True
        th.join(10)
        if runtime is not None:
            runtime.stop()
        if cams:
            from pipeline.simulator.centre import stop_centre

            stop_centre(cams)
    print(json.dumps(results, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
