"""Live video benchmark: lag from the camera's wall time to a fragment's arrival at a WebSocket
viewer, and the CPU the live producers cost, with 1 and many viewers, H.264 copy and the H.265
→ H.264 rendition.

Real parts: simulated RTSP cameras (GStreamer, separate processes), the real recorder writing
the spool in this process (as ``vaudit run``), the API under uvicorn with the live WebSocket.
A viewer connects with a bearer token and, for each fragment, takes ``arrival − (origin +
tfdt)``: the frame's wall time on the recorder's clock to its arrival. The browser adds its
decode and the page's live-edge margin (0.15 s) on top (the browser test prints that figure).

*edge* is how old the newest recorded frame was when the producer caught up with the spool:
the camera's and recorder's share of the lag (a simulated camera starved of CPU falls behind
its own clock); ``lag − edge`` is the live pipeline's.

Phases (``--seconds`` each): *baseline* — recording only, no viewer; *copy ×1* — one viewer
of the H.264 camera; *copy ×N* — ``--viewers`` viewers of it; *rendition ×1* — one viewer of the
H.265 camera. CPU is this process's user+system seconds per wall second; ratios are against the
baseline measured in the same run.

    nice -n 10 .venv/bin/python bench/live.py --viewers 20 --seconds 10
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import shutil
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import uvicorn  # noqa: E402
from websockets.sync.client import connect  # noqa: E402

from indexer.database import create_engine_for, upgrade  # noqa: E402
from indexer.segment_store import SegmentStore  # noqa: E402
from indexer.users import UserStore  # noqa: E402
from pipeline.api.app import create_app  # noqa: E402
from pipeline.settings import Settings  # noqa: E402
from pipeline.simulator.camera import SimulatedCamera, free_port  # noqa: E402
from pipeline.viewing.live_video import LiveVideo  # noqa: E402
from recorders.options import RecorderOptions  # noqa: E402
from recorders.worker import CameraWorker  # noqa: E402

PASSWORD = "bench password 1"


def _box_u(data: bytes, name: bytes, offset: int, size: int) -> int:
    at = data.find(name)
    return int.from_bytes(data[at + offset : at + offset + size], "big")


def _tfdt(frag: bytes) -> int:
    at = frag.find(b"tfdt")
    version = frag[at + 4]
    return int.from_bytes(frag[at + 8 : at + (16 if version == 1 else 12)], "big")


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def viewer(base: str, token: str, camera: str, seconds: float, lags: list[float]) -> None:
    url = base.replace("http", "ws", 1) + f"/api/v1/live/{camera}/video"
    origin, scale = 0.0, 90000
    with connect(url, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
        end = time.monotonic() + seconds
        first = True
        while time.monotonic() < end:
            try:
                msg = ws.recv(timeout=1.0)
            except TimeoutError:
                continue
            if isinstance(msg, str):
                doc = json.loads(msg)
                if doc["type"] == "hello":
                    origin = datetime.fromisoformat(doc["origin"]).timestamp()
                    first = True
                continue
            if first:  # the init segment: the track's time scale
                scale = _box_u(msg, b"mdhd", 16, 4) if msg[4:8] == b"ftyp" else scale
                first = False
                continue
            lags.append(time.time() - (origin + _tfdt(msg) / scale))


def phase(hub: LiveVideo, base: str, token: str, camera: str, viewers: int, seconds: float) -> dict[str, Any]:
    lags: list[list[float]] = [[] for _ in range(viewers)]
    threads = [
        threading.Thread(target=viewer, args=(base, token, camera, seconds, lags[i])) for i in range(viewers)
    ]
    cpu0, t0 = _cpu(), time.monotonic()
    for t in threads:
        t.start()
    if not threads:
        time.sleep(seconds)
    for t in threads:
        t.join()
    cpu = (_cpu() - cpu0) / (time.monotonic() - t0)
    # the first second holds the join backlog (the GOP so far): steady state after it
    flat = sorted(x for per in lags for x in per[25:])
    edge = hub.channel(camera).edge_lag if viewers else None
    out: dict[str, Any] = {"cpu_per_s": cpu, "fragments": sum(len(p) for p in lags), "edge": edge}
    if flat:
        out.update(
            lag_p50=statistics.median(flat), lag_p95=flat[int(0.95 * (len(flat) - 1))], lag_max=flat[-1]
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--viewers", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument(
        "--read-pause-seconds",
        type=float,
        default=RecorderOptions().read_pause_seconds,
        help="the recorder's read pacing ([recorder] read_pause_seconds; 0: none)",
    )
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-live-"))
    cams = [
        SimulatedCamera(
            "cam-264",
            free_port(),
            video_codec="h264",
            audio_codec="alaw",
            width=args.width,
            height=args.height,
        ),
        SimulatedCamera(
            "cam-265",
            free_port(),
            video_codec="h265",
            audio_codec="aac",
            width=args.width,
            height=args.height,
        ),
    ]
    stop = threading.Event()
    try:
        for cam in cams:
            cam.start()
        opts = RecorderOptions(segment_seconds=10.0, read_pause_seconds=args.read_pause_seconds)
        workers = [CameraWorker(c.camera_id, c.url, root / "spool", opts, _Sink()) for c in cams]
        threads = [threading.Thread(target=w.run, args=(stop,), daemon=True) for w in workers]
        for t in threads:
            t.start()
        engine = create_engine_for(f"sqlite:///{root / 'index.db'}")
        upgrade(engine)
        rooms = [
            {
                "id": "R1",
                "name": "R1",
                "kind": "interrogation",
                "cameras": [{"id": c.camera_id, "url": c.url} for c in cams],
            }
        ]
        app = create_app(
            Settings(rooms=rooms, api={"upload_tmp": root / "up"}), SegmentStore(engine), engine=engine
        )
        hub = LiveVideo(root / "spool")
        app.state.live_video = hub
        port = free_port()
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        srv = threading.Thread(target=server.run, daemon=True)
        srv.start()
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/healthz").status_code == 200:
                    break
            time.sleep(0.1)
        UserStore(engine).create_user("bench", "supervisor", PASSWORD)
        token = httpx.post(f"{base}/api/v1/auth/token", json={"name": "bench", "password": PASSWORD}).json()[
            "access_token"
        ]
        time.sleep(3)  # cameras connected, segments open
        results = {
            "baseline (recording 2 cameras, no viewer)": phase(hub, base, token, "cam-264", 0, args.seconds),
            "copy x1 (H.264)": phase(hub, base, token, "cam-264", 1, args.seconds),
            f"copy x{args.viewers} (H.264)": phase(hub, base, token, "cam-264", args.viewers, args.seconds),
            "rendition x1 (H.265 -> H.264)": phase(hub, base, token, "cam-265", 1, args.seconds),
        }
        base_cpu = results["baseline (recording 2 cameras, no viewer)"]["cpu_per_s"]
        print(f"{args.width}x{args.height} 25 fps, {args.seconds:.0f} s per phase")
        print(
            f"{'phase':44} {'CPU s/s':>8} {'x base':>7} {'frags':>6} {'edge':>6} {'lag p50':>8} {'p95':>6} {'max':>6}"
        )
        for name, r in results.items():
            lag = (
                f"{r['lag_p50']:8.3f} {r['lag_p95']:6.3f} {r['lag_max']:6.3f}"
                if "lag_p50" in r
                else f"{'-':>8} {'-':>6} {'-':>6}"
            )
            edge = f"{r['edge']:6.3f}" if r.get("edge") is not None else f"{'-':>6}"
            cpu = f"{r['cpu_per_s']:8.3f} {r['cpu_per_s'] / base_cpu:7.2f}"
            print(f"{name:44} {cpu} {r['fragments']:6d} {edge} {lag}")
        server.should_exit = True
        hub.stop()
        srv.join(10)
    finally:
        stop.set()
        for cam in cams:
            cam.stop()
        shutil.rmtree(root, ignore_errors=True)


class _Sink:
    def segment_closed(self, *a: Any) -> None: ...
    def gap_recorded(self, *a: Any) -> None: ...
    def status(self, *a: Any) -> None: ...


if __name__ == "__main__":
    main()
