"""Playback benchmark: first byte and seek latency of 1 h ranges, p50/p95, with concurrent
viewers while the same process records simulated cameras (as ``vaudit run`` does).

Footage: one 10 s H.264 + G.711 A-law MPEG-TS segment (1280x720, the cameras' bit rate) made by
ffmpeg and hard-linked 360 times as one hour of one camera, indexed in SQLite; each segment gets
its own SHA-256 in the index (the template's hash + its number), so the per-segment AAC cache
sees 360 distinct segments, as with real footage. Plus 2 min of H.265 to measure the cost of the
on-the-fly H.264 rendition. The API (auth gate, audit row per request, playback) runs in-process
under uvicorn next to a CentreRuntime recording ``--record`` simulated cameras. The cameras are
served from a pre-encoded clip (``--cameras file``, the default: cameras encode on their own
hardware, not on the recording server) and the viewers' HTTP clients run in a process of their own
(``--viewers-in process``, the default: browsers are on other machines). Before 2026-11-28 both ran
on the server (``--cameras live --viewers-in server``): 8 x264 encoders and 20 client threads that
shared the server's interpreter lock, figures in docs/bench/playback.md.

Viewers (``--mode``):

* ``browser`` — what the play page does, as an HTTP client. A *load* at time t: ``GET`` the
  stream from t to the end of the hour (the page reads ``X-Playback-Origin`` from that response:
  since issue 18 no ``Range: bytes=0-0`` probe goes first); read ``--buffer-mb`` (2 MB: Chromium's preload buffer, 10 s of media
  clamped to >= 2 MB) as fast as it comes, then read at play speed (the buffer's end moves on
  by ``--kbps`` + 64 kbit/s of audio per second of wall time), watch a random 5-15 s, then seek:
  close, and load again at a random point of the hour. The first load starts at the hour's
  start ("first byte"), the others at random points ("seek"); the viewers start together, or
  with ``--stagger-seconds S`` each at a random moment of the first S seconds.
* ``page`` — the play page itself in Chromium (bench/playback_page.py): click to first picture,
  opening the page and seeking, against a plain fetch of the same bytes (a ratio).
* ``greedy`` — as fast as the socket goes: GET the whole hour, read ``--read-kb`` and close;
  GET from a random point, read 64 KB and close; repeat. No player behaves so; it is the
  worst case for the CPU (every viewer re-producing media as fast as it can).

Reported: p50/p95 of both, alone and with ``--viewers``
at once; process CPU seconds of each phase; the H.265 rendition cost.

    .venv/bin/python bench/playback.py --viewers 20 --record 8 --rounds 4 --mode both
    .venv/bin/python bench/playback.py --record 0 --rounds 10 --mode page --h265-seconds 0
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import multiprocessing
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import uvicorn  # noqa: E402

from domain.types import ClockSource, SegmentRecord, StreamInfo, iso, segment_key, sidecar_key  # noqa: E402
from indexer.database import create_engine_for, upgrade  # noqa: E402
from indexer.segment_store import SegmentStore  # noqa: E402
from indexer.users import UserStore  # noqa: E402
from pipeline.api.app import create_app  # noqa: E402
from pipeline.settings import Settings  # noqa: E402
from pipeline.simulator.camera import free_port  # noqa: E402

SEGMENT = 10
T0 = datetime(2024, 5, 1, 0, 0, tzinfo=UTC)
PASSWORD = "viewer-pass-4821"  # not containing the user name (the user store refuses that)


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
    data = template.read_bytes()
    recs = []
    prev: str | None = None
    for i in range(seconds // SEGMENT):
        # Distinct segments (the AAC cache is keyed by hash): the template plus one MPEG-TS null
        # packet carrying the segment's number. Real hashes and sidecars: playback checks both.
        null = b"\x47\x1f\xff\x10" + str(i).encode().ljust(184, b"\xff")
        content = data + null
        digest = hashlib.sha256(content).hexdigest()
        start = T0 + timedelta(seconds=i * SEGMENT)
        key = segment_key(camera, start, i + 1)
        path = work / "store" / key
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.stat().st_size != len(content):
            path.unlink(missing_ok=True)
            path.write_bytes(content)
        rec = SegmentRecord(
            camera,
            "run",
            i + 1,
            start,
            start + timedelta(seconds=SEGMENT),
            key,
            len(content),
            digest,
            prev,
            ClockSource.RTCP,
            StreamInfo("hevc" if codec == "h265" else "h264", 1280, 720, "pcm_alaw", 8000, 1),
        )
        (work / "store" / sidecar_key(key)).write_text(json.dumps(rec.to_json()), encoding="utf-8")
        recs.append(rec)
        prev = digest
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


def browser_load(
    client: httpx.Client, start: datetime, end: datetime, watch_s: float, buffer_mb: float, kbps: int
) -> float:
    """One load of the play page's player (see the module docstring): seconds to the first byte."""
    params = {"start": iso(start), "end": iso(end)}
    url = "/api/v1/playback/bench-h264.mp4"
    rate = (kbps + 64) * 1000 / 8  # bytes per second of play
    t = time.perf_counter()
    first = None
    with client.stream("GET", url, params=params) as resp:
        resp.raise_for_status()
        got = 0
        for chunk in resp.iter_raw(16384):
            now = time.perf_counter()
            if first is None:
                first, t0 = now - t, now
            got += len(chunk)
            if now - t0 >= watch_s:
                break
            ahead = got - (buffer_mb * 1024 * 1024 + (now - t0) * rate)
            if ahead > 0:
                time.sleep(min(ahead / rate, watch_s - (now - t0)))
    assert first is not None
    return first


def viewers(
    base: str, token: str, n: int, rounds: int, args: argparse.Namespace, mode: str
) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"first": [], "seek": []}
    lock = threading.Lock()
    barrier = threading.Barrier(n)
    hour = T0 + timedelta(hours=1)

    def viewer(k: int) -> None:
        rnd = random.Random(k)
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=120) as c:
            barrier.wait()
            if args.stagger_seconds > 0:  # arrivals spread (viewers open the page one by one)
                time.sleep(rnd.uniform(0, args.stagger_seconds))
            for i in range(rounds):
                if mode == "greedy":
                    a = first_byte(c, "bench-h264", T0, hour, args.read_kb)
                    at = T0 + timedelta(seconds=rnd.uniform(0, 3590))
                    b = first_byte(c, "bench-h264", at, hour, 64)
                    with lock:
                        out["first"].append(a)
                        out["seek"].append(b)
                    continue
                at = T0 if i == 0 else T0 + timedelta(seconds=rnd.uniform(0, 3590))
                fb = browser_load(c, at, hour, rnd.uniform(5, 15), args.buffer_mb, args.kbps)
                with lock:
                    out["first" if i == 0 else "seek"].append(fb)

    threads = [threading.Thread(target=viewer, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


class StepLog(logging.Handler):
    """The route's own timing of each request's first byte (pipeline/api/playback.py)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.rows: list[dict[str, float]] = []

    def emit(self, record: logging.LogRecord) -> None:
        steps = getattr(record, "steps_ms", None)
        if steps:
            self.rows.append(steps)


STEPS = StepLog()


def phase(base: str, token: str, n: int, rounds: int, args: argparse.Namespace, mode: str) -> dict[str, Any]:
    try:  # each phase starts with a cold per-segment AAC cache (absent in older versions)
        from pipeline.viewing.audio import CACHE

        CACHE.clear()
    except ImportError:
        pass
    STEPS.rows.clear()
    cpu, wall = time.process_time(), time.perf_counter()
    if args.viewers_in == "process":
        # spawn: a fresh interpreter, none of the server's threads or state
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            got = pool.submit(viewers, base, token, n, rounds, args, mode).result()
    else:
        got = viewers(base, token, n, rounds, args, mode)
    res: dict[str, Any] = {
        "viewers": n,
        "first byte, 1 h range": summary(got["first"]),
        "seek (first byte)": summary(got["seek"]),
    }
    if STEPS.rows:  # inside the route (absent in older versions): p50 / p95 ms of each step
        res["route_steps_p50_p95_ms"] = {
            k: [round(pct([r[k] for r in STEPS.rows], 50), 1), round(pct([r[k] for r in STEPS.rows], 95), 1)]
            for k in STEPS.rows[0]
        }
    res["process_cpu_s"] = round(time.process_time() - cpu, 1)
    res["wall_s"] = round(time.perf_counter() - wall, 1)
    return res


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


def summary(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50_ms": round(pct(values, 50) * 1000, 1),
        "p95_ms": round(pct(values, 95) * 1000, 1),
        "max_ms": round(max(values) * 1000, 1),
        "mean_ms": round(statistics.fmean(values) * 1000, 1),
    }


def cpu_costs(store: SegmentStore, work: Path, n: int) -> dict[str, Any]:
    """In-process, no HTTP, this thread's CPU time (robust to the machine's load): the work
    before the first chunk (index query + first segment + ftyp/moov), for the hour's start and
    for random seeks, and the CPU per second of media produced (cold and warm AAC cache)."""
    from pipeline.storage import LocalStorage
    from pipeline.viewing import playback

    reader = LocalStorage(work / "store")
    paged = getattr(playback, "plan_segments", None)
    hour = T0 + timedelta(hours=1)
    rnd = random.Random(7)

    def chunks(at: datetime, end: datetime) -> Any:
        plan = playback.plan_playback(store, "bench-h264", at, end)
        if paged is None:  # before paging (d0e1551): the plan held every segment, no list taken
            return playback.mp4_chunks(plan, reader, [])  # type: ignore[call-arg]
        return playback.mp4_chunks(plan, reader, [], paged(store, plan))

    def first_ms(points: list[datetime]) -> dict[str, float]:
        costs = []
        for at in points:
            c = time.thread_time()
            g = chunks(at, hour)
            next(g)
            g.close()
            costs.append((time.thread_time() - c) * 1000)
        return {"p50_ms": round(pct(costs, 50), 2), "p95_ms": round(pct(costs, 95), 2)}

    try:
        from pipeline.viewing.audio import CACHE

        CACHE.clear()
    except ImportError:
        pass
    first_ms([T0] * 3)  # warm-up (imports, codecs)
    out: dict[str, Any] = {
        "first_chunk_cpu_hour_start": first_ms([T0] * n),
        "first_chunk_cpu_seek": first_ms([T0 + timedelta(seconds=rnd.uniform(0, 3590)) for _ in range(n)]),
    }
    at = T0 + timedelta(seconds=1200)
    for name in ("cold", "warm"):
        c = time.thread_time()
        size = sum(len(b) for b in chunks(at, at + timedelta(seconds=60)))
        out[f"cpu_ms_per_media_s_{name}_cache"] = round((time.thread_time() - c) * 1000 / 60, 2)
    out["bytes_per_media_s"] = size // 60
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, default=Path("/tmp/vaudit-bench-playback"))
    ap.add_argument("--viewers", type=int, default=20)
    ap.add_argument("--record", type=int, default=8, help="simulated cameras recording meanwhile (0: none)")
    ap.add_argument("--rounds", type=int, default=4, help="loads per viewer (alone: twice as many)")
    ap.add_argument("--mode", choices=["browser", "greedy", "both", "page"], default="both")
    ap.add_argument("--buffer-mb", type=float, default=2.0, help="browser: read-ahead before play speed")
    ap.add_argument("--read-kb", type=int, default=512, help="greedy: bytes read of the 1 h stream")
    ap.add_argument("--kbps", type=int, default=1500)
    ap.add_argument("--h265-seconds", type=int, default=60)
    ap.add_argument(
        "--stagger-seconds",
        type=float,
        default=0.0,
        help="each viewer's first load at a random moment within this many seconds of the "
        "start (0: all at the same instant, a thundering herd)",
    )
    ap.add_argument(
        "--cameras",
        choices=["file", "live"],
        default="file",
        help="recorded cameras: 'file' serves a pre-encoded 1280x720 clip (no encoding on "
        "this machine, as bench/record.py); 'live' encodes each camera here (GStreamer x264)",
    )
    ap.add_argument(
        "--viewers-in",
        choices=["process", "server"],
        default="process",
        help="'process': the viewers' HTTP clients run in a process of their own (as browsers "
        "on other machines); 'server': threads of the server's own process (older runs)",
    )
    args = ap.parse_args()
    route_log = logging.getLogger("pipeline.api.playback")
    route_log.setLevel(logging.DEBUG)
    route_log.addHandler(STEPS)
    work: Path = args.work
    if (work / "spool").exists():
        shutil.rmtree(work / "spool")
    (work / "index.db").unlink(missing_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    file_cameras: Any = None
    if args.record and args.cameras == "file":
        from pipeline.simulator.camera import FileCameraServer, make_clip

        clip = make_clip(
            work / f"camera-1280x720-{args.kbps}k-1800s.mov",
            seconds=1800,
            width=1280,
            height=720,
            fps=25,
            bitrate_kbps=args.kbps,
        )
        file_cameras = FileCameraServer(clip, args.record).start()
        urls = file_cameras.urls
    else:
        urls = [f"rtsp://127.0.0.1:{free_port()}/live-{i}" for i in range(args.record)]
    live_rooms = [
        {
            "id": f"room-{i}",
            "name": f"讯问室{i}",
            "kind": "interrogation",
            "cameras": [{"id": f"live-{i}", "url": urls[i]}],
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
    cpu = cpu_costs(store, work, 40)
    print(json.dumps({"cpu": cpu}), file=sys.stderr)
    UserStore(engine).create_user("bench", "supervisor", PASSWORD)

    cams: list[Any] = []
    runtime = None
    if args.record:
        from pipeline.node.centre import CentreRuntime
        from pipeline.simulator.centre import start_centre

        cams = start_centre(rec_settings) if file_cameras is None else []
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
    token = httpx.post(
        f"{base}/api/v1/auth/token", json={"name": "bench", "password": PASSWORD}, timeout=120
    ).json()["access_token"]
    results: dict[str, Any] = {
        "loadavg_start": os.getloadavg(),
        "viewers": args.viewers,
        "recording_cameras": args.record,
        "cpu_in_process": cpu,
        "rounds": args.rounds,
    }
    try:
        if args.record:
            time.sleep(5)  # recorders connected and writing
        if args.mode == "page":
            import playback_page

            results["page"] = playback_page.run(
                base, token, "bench", PASSWORD, T0.timestamp() * 1000, args.rounds
            )
            print(json.dumps({"page": results["page"]}), file=sys.stderr)
        for mode in (
            [] if args.mode == "page" else ["browser", "greedy"] if args.mode == "both" else [args.mode]
        ):
            results[mode] = {
                "alone": phase(base, token, 1, args.rounds * 2, args, mode),
                "concurrent": phase(base, token, args.viewers, args.rounds, args, mode),
            }
            print(json.dumps({mode: results[mode]}), file=sys.stderr)
        if args.h265_seconds > 0:  # 0: skip the rendition's cost
            results["h265_to_h264"] = transcode_cost(base, token, args.h265_seconds)
        if runtime is not None:
            results["recorder_health"] = {k: v["running"] for k, v in runtime.supervisor.health().items()}
        results["loadavg_end"] = os.getloadavg()
        results["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    finally:
        server.should_exit = True
        th.join(10)
        if runtime is not None:
            runtime.stop()
        if cams:
            from pipeline.simulator.centre import stop_centre

            stop_centre(cams)
        if file_cameras is not None:
            file_cameras.stop()
    print(json.dumps(results, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
