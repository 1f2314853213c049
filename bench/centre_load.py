"""The centre under load, shared by ``bench/load.py`` and ``bench/soak.py``.

One real ``vaudit run`` process (recorders, uploader to local storage, index, API) records N
cameras served by the simulator's file mode (one pre-encoded 1080p25 H.264 + G.711 A-law clip,
as ``bench/record.py`` does). A case is driven through the API while it records (the suspect's
way through entry, search, waiting and interrogation rooms, ``pipeline.node.demo.SCRIPT`` stretched),
so an export has footage. Then, for the measured phase:

* **viewers** (threads, one HTTP client each, paced like a browser): pick a random camera, GET
  ``/api/v1/playback/{camera}.mp4`` for the last ≤ 10 min (time to first byte = "open"), read it
  at ``speed`` × the camera's bit rate for 5–20 s, then 1–3 times seek (a new GET from a random
  point of the range: time to first byte = "seek") and read again 5–20 s; then another camera;
* **exports**: POST ``/api/v1/exports`` for the case's suspect, poll every 0.5 s until done,
  delete its output (disk stays bounded), wait ``export_every`` seconds, repeat;
* **sampling** of the ``vaudit run`` process every ``sample_seconds`` from /proc: CPU seconds
  (user + system, its threads and reaped children, i.e. Chromium printing the statement), RSS,
  open file descriptors, threads, and the machine's 1-minute load average.

After the phase: viewers and export loop stop; the same export runs 3 times with no
viewers (the baseline, their median: same export, same process, recorders still running), and ``cp`` of the
same segment files + ``sync`` (a second baseline); the process is stopped with SIGTERM (its
rusage taken by wait4) and loss is measured from what was written: holes in each camera's video
and audio timestamps (``bench.record.measure_loss``), recorded seconds against the span, and gap
records. Everything started is stopped in ``finally``, also on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.record import _wait_usage, measure_loss  # noqa: E402
from domain.types import RoomKind, iso, parse_iso  # noqa: E402
from pipeline.node.demo import SCRIPT  # noqa: E402
from pipeline.simulator.camera import FileCameraServer, make_clip  # noqa: E402
from tests.support.centre_files import CamSpec, write_centre  # noqa: E402
from tests.support.vaudit_proc import VauditRun  # noqa: E402

CASE_ROOMS = (RoomKind.ENTRY, RoomKind.SEARCH, RoomKind.WAITING, RoomKind.INTERROGATION)


@dataclass
class CentreOptions:
    cameras: int = 64
    viewers: int = 20
    minutes: float = 10.0
    export_every: float = 0.0  # seconds between the end of one export and the next POST
    speed: float = 2.0  # viewers read at this multiple of real time
    kbps: int = 4000
    case_scale: float = 1.5  # pipeline.node.demo.SCRIPT's timings (54 s) stretched by this
    sample_seconds: float = 5.0
    segment_seconds: float = 10.0
    db_url: str | None = None  # postgresql://... maintenance URL: a fresh database is made there
    work: Path = Path("/tmp/vaudit-load")
    keep: bool = False
    seed: int = 1
    baseline_exports: int = 3  # the no-viewer export is repeated; its median is the baseline
    demux_loss: bool = True  # False: loss from sidecars and gap records only (no timestamp holes)
    recorder_processes: int = 0  # [recorder] processes: 0 = threads of vaudit run
    read_pause_seconds: float | None = None  # [recorder] read_pause_seconds; None: the default


@dataclass
class Samples:
    t: list[float] = field(default_factory=list)  # seconds since the phase started
    cpu_s: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)
    fds: list[int] = field(default_factory=list)
    threads: list[int] = field(default_factory=list)
    load1: list[float] = field(default_factory=list)
    upload_pending: list[int] = field(default_factory=list)  # closed sidecars not yet uploaded
    spool_mb: list[float] = field(default_factory=list)
    audio_cache_mb: list[float] = field(default_factory=list)  # the playback AAC cache (bounded)
    rss_less_cache_mb: list[float] = field(default_factory=list)  # what a leak would show in


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def ms(values: list[float]) -> dict[str, Any]:
    def r(v: float | None) -> float | None:
        return None if v is None else round(v * 1000, 1)

    return {
        "n": len(values),
        "p50_ms": r(pct(values, 50)),
        "p95_ms": r(pct(values, 95)),
        "max_ms": r(max(values, default=None)),
    }


def _one_sample(pid: int) -> tuple[float, float, int, int]:
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    cpu = sum(int(x) for x in stat[11:15]) / tick  # utime stime cutime cstime
    rss = threads = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
        elif line.startswith("Threads:"):
            threads = int(line.split()[1])
    return cpu, rss / 1024, len(os.listdir(f"/proc/{pid}/fd")), threads


def child_pids(pid: int) -> list[int]:
    """Live processes whose parent is ``pid`` (the recorder processes of ``[recorder] processes``)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


def proc_sample(pid: int) -> tuple[float, float, int, int]:
    """CPU seconds (own + reaped children), RSS MB, open fds, threads of a live process, plus those
    of its live children (recorder processes; a child that exits meanwhile is skipped)."""
    total = list(_one_sample(pid))
    for child in child_pids(pid):
        with contextlib.suppress(OSError):
            for i, v in enumerate(_one_sample(child)):
                total[i] += v
    cpu, rss, fds, threads = total
    return cpu, rss, int(fds), int(threads)


def uploader_backlog(base: str) -> tuple[int, float, float]:
    """From /metrics (what a Prometheus scrape sees): pending sidecars, spool MB, and the MB held by
    the playback AAC cache (a bounded cache filling up is not a leak)."""
    got = {
        "vaudit_upload_pending_files": -1.0,
        "vaudit_upload_spool_bytes": -1.0,
        "vaudit_playback_audio_cache_bytes": 0.0,
    }
    with contextlib.suppress(httpx.HTTPError):
        for line in httpx.get(f"{base}/metrics", timeout=30).text.splitlines():
            name, _, value = line.partition(" ")
            if name in got:
                got[name] = float(value)
    return (
        int(got["vaudit_upload_pending_files"]),
        round(got["vaudit_upload_spool_bytes"] / 1e6, 1),
        round(got["vaudit_playback_audio_cache_bytes"] / 2**20, 1),
    )


def layout(n: int) -> list[CamSpec]:
    """Two cameras a room (one each below 8 cameras); the first four rooms are the case's."""
    if n < 4:
        raise SystemExit("at least 4 cameras: the case needs entry, search, waiting and interrogation rooms")
    per_room = 2 if n >= 8 else 1
    specs = []
    for i in range(n):
        room = i // per_room
        kind = CASE_ROOMS[room] if room < len(CASE_ROOMS) else RoomKind.INTERROGATION
        specs.append(CamSpec(f"cam{i:03d}", f"room{room:02d}", kind.value, ""))
    return specs


class Centre:
    """File-mode cameras + ``vaudit run`` in a clean work directory; ``close()`` stops all."""

    def __init__(self, opts: CentreOptions, phase_seconds: float) -> None:
        self.opts = opts
        self.work = opts.work
        self.server: FileCameraServer | None = None
        self.run: VauditRun | None = None
        self.pg: tuple[str, str] | None = None  # (maintenance url, database name)
        self.usage: dict[str, float | int | None] | None = None
        self.specs = layout(opts.cameras)
        # the clip must outlast the run (file mode does not loop): warm-up and baselines take
        # < 10 min; one 45 min clip serves both default runs (encoded once, cached by name)
        self.clip_seconds = max(2700, math.ceil((phase_seconds + 600) / 900) * 900)

    def start(self) -> None:
        o = self.opts
        if self.work.exists():
            shutil.rmtree(self.work)  # clean start: no spool, store or index from an earlier run
        self.work.mkdir(parents=True)
        clip = make_clip(
            ROOT / "bench" / "out" / f"clip1080p-{o.kbps}k-{self.clip_seconds}s.mov",
            seconds=self.clip_seconds, width=1920, height=1080, fps=25, bitrate_kbps=o.kbps,
        )  # fmt: skip
        db_url = f"sqlite:///{self.work / 'index.db'}"
        if o.db_url:
            db_url = self._make_pg(o.db_url)
        self.server = FileCameraServer(clip, o.cameras).start(timeout=60)
        specs = [
            CamSpec(s.camera_id, s.room_id, s.room_kind, u)
            for s, u in zip(self.specs, self.server.urls, strict=True)
        ]
        extra = f"processes = {o.recorder_processes}\n"  # in [recorder], where write_centre puts extra
        if o.read_pause_seconds is not None:
            extra += f"read_pause_seconds = {o.read_pause_seconds}\n"
        extra += f'[export]\nout_dir = "{self.work / "exports"}"\nsigning_key = "{self.work / "key.pem"}"\n'
        extra += f'[api]\nupload_tmp = "{self.work / "uploads"}"\n'
        config = write_centre(
            self.work / "centre.toml", specs, db_url, segment_seconds=o.segment_seconds, extra=extra
        )
        self.run = VauditRun(config, self.work / "run.log")
        self.run.start(timeout=180)

    def _make_pg(self, admin_url: str) -> str:
        import psycopg
        from psycopg import sql
        from sqlalchemy.engine import make_url

        name = f"vaudit_load_{uuid.uuid4().hex[:8]}"
        plain = admin_url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        self.pg = (plain, name)
        return make_url(admin_url).set(database=name).render_as_string(hide_password=False)

    @property
    def pid(self) -> int:
        assert self.run is not None and self.run.proc is not None
        return self.run.proc.pid

    def stop_pipeline(self) -> None:
        """SIGTERM (recorders close their segments), wait4 for the kernel's rusage."""
        if self.run is None or self.run.proc is None or self.run.proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.run.proc.pid, signal.SIGTERM)
        u = _wait_usage(self.run.proc, 90)
        self.usage = {
            "cpu_seconds": round(u.cpu_seconds, 1),
            "peak_rss_mb": round(u.peak_rss_bytes / 2**20, 1),
            "exit_code": self.run.proc.returncode,  # 0: stopped cleanly; -9: killed after 90 s
        }

    def close(self) -> None:
        try:
            self.stop_pipeline()
        finally:
            if self.run is not None:
                self.run.stop()  # no-op once stopped; SIGKILL if it hangs
            if self.server is not None:
                self.server.stop()
            if self.pg is not None:
                self._drop_pg()
            log = self.work / "run.log"
            if log.exists():  # kept for diagnosis, next to the work directory
                shutil.copy(log, self.work.with_name(self.work.name + "-run.log"))
            if not self.opts.keep:
                shutil.rmtree(self.work, ignore_errors=True)

    def _drop_pg(self) -> None:
        import psycopg
        from psycopg import sql

        assert self.pg is not None
        url, name = self.pg
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))


def _ok(resp: httpx.Response) -> dict[str, Any]:
    if resp.status_code >= 400:
        raise RuntimeError(
            f"{resp.request.method} {resp.request.url} -> {resp.status_code}: {resp.text[:500]}"
        )
    data: dict[str, Any] = resp.json()
    return data


def drive_case(api: httpx.Client, specs: list[CamSpec], scale: float, say: Any) -> dict[str, Any]:
    """The suspect's way through the first four rooms, posted as it happens; returns when the
    footage up to the exit is indexed."""
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    room_of = {kind: next(s.room_id for s in specs if s.room_kind == kind.value) for kind in CASE_ROOMS}
    lead = _ok(api.post("/officers", json={"name": "李明", "badge_number": f"L{stamp}1"}))
    second = _ok(api.post("/officers", json={"name": "王芳", "badge_number": f"L{stamp}2"}))
    number = f"LOAD{stamp}"
    case = _ok(
        api.post(
            "/cases", json={"case_number": number, "title": "负载测试案", "charge": "盗窃", "serious": False}
        )
    )
    for o, role in ((lead, "interrogator"), (second, "recorder")):
        _ok(api.post(f"/cases/{case['id']}/officers", json={"officer_id": o["id"], "role": role}))
    subject = _ok(api.post(f"/cases/{case['id']}/subjects", json={"name": "张三", "role": "suspect"}))
    t0 = datetime.now(UTC)
    for n, step in enumerate(SCRIPT):
        at = t0 + timedelta(seconds=step.at * scale)
        while datetime.now(UTC) < at:
            time.sleep(0.1)
        room = room_of[step.room_kind]
        if step.kind == "observation":
            body = {
                "id": f"{number}-o{n}",
                "room_id": room,
                "time": iso(at),
                "source": "wristband",
                "subject_id": subject["id"],
            }
            _ok(api.post("/observations", json=body))
        else:
            body = {
                "id": f"{number}-e{n}", "type": step.event_type, "time": iso(at), "room_id": room,
                "subject_id": subject["id"], "officer_ids": [lead["id"], second["id"]],
            }  # fmt: skip
            _ok(api.post("/events", json=body))
    end = iso(t0 + timedelta(seconds=SCRIPT[-1].at * scale + 1))
    case_cams = {s.camera_id for s in specs if s.room_id in room_of.values()}
    deadline = time.monotonic() + 300  # generous: on a loaded machine the uploader lags
    while True:
        cams = _ok(api.get("/cameras"))["cameras"]
        behind = {c["id"]: c["last_segment_end"] for c in cams if c["id"] in case_cams}
        if all(v and v >= end for v in behind.values()):
            break
        if time.monotonic() > deadline:
            # go on: exports fail (footage unexplained) until the uploader catches up, and count so
            say(f"warning: the case's footage up to {end} is not indexed after 300 s: {behind}")
            break
        time.sleep(1)
    indexed_after = round(time.monotonic() - deadline + 300, 1)
    say(f"case {number}: subject {subject['id']} through {len(room_of)} rooms ({len(case_cams)} cameras)")
    return {
        "case": number,
        "subject": str(subject["id"]),
        "cameras": sorted(case_cams),
        "indexed_after_exit_s": indexed_after,  # the uploader's lag, seen from the API
    }


@dataclass
class ViewerStats:
    opens: list[float] = field(default_factory=list)
    seeks: list[float] = field(default_factory=list)
    bytes: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def error(self, what: str) -> None:
        with self.lock:
            self.errors[what] = self.errors.get(what, 0) + 1


def viewer(
    k: int,
    base: str,
    headers: dict[str, str],
    cams: list[str],
    t_min: float,
    opts: CentreOptions,
    stats: ViewerStats,
    stop: threading.Event,
) -> None:
    rnd = random.Random(opts.seed * 1000 + k)
    rate = opts.speed * opts.kbps * 125  # bytes a second the player takes

    def play(client: httpx.Client, cam: str, start: float, end: float, into: list[float]) -> None:
        watch = rnd.uniform(5, 20)
        params = {
            "start": iso(datetime.fromtimestamp(start, UTC)),
            "end": iso(datetime.fromtimestamp(end, UTC)),
        }
        t = time.perf_counter()
        got = 0
        try:
            with client.stream("GET", f"/api/v1/playback/{cam}.mp4", params=params) as r:
                if r.status_code != 200:
                    stats.error(f"http {r.status_code}")
                    return
                first = None
                for chunk in r.iter_raw(65536):
                    now = time.perf_counter()
                    if first is None:
                        first = now - t
                        with stats.lock:
                            into.append(first)
                        t = now
                    got += len(chunk)
                    ahead = got / rate - (now - t)
                    if ahead > 0:
                        stop.wait(ahead)
                    if stop.is_set() or time.perf_counter() - t >= watch:
                        break
        except httpx.HTTPError as exc:
            stats.error(type(exc).__name__)
        with stats.lock:
            stats.bytes += got

    with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
        stop.wait(rnd.uniform(0, 3))  # viewers do not all start in the same instant
        while not stop.is_set():
            cam = rnd.choice(cams)
            now = time.time()
            lo = max(t_min, now - 600)
            play(client, cam, lo, now, stats.opens)
            for _ in range(rnd.randint(1, 3)):
                if stop.is_set():
                    break
                play(client, cam, rnd.uniform(lo, max(lo, now - 5)), now, stats.seeks)


def export_once(
    api: httpx.Client, case: dict[str, Any], work: Path, stop: threading.Event | None = None
) -> dict[str, Any]:
    t = time.monotonic()
    job = _ok(api.post("/exports", json={"case": case["case"], "subject": case["subject"]}))
    while job["state"] in ("queued", "running"):
        if stop is not None and stop.is_set():
            _ok(api.post(f"/exports/{job['id']}/cancel"))
            return {"state": "cancelled"}
        time.sleep(0.5)
        job = _ok(api.get(f"/exports/{job['id']}"))
    seconds = time.monotonic() - t
    if job["state"] != "done":
        return {"state": job["state"], "error": job["error"], "seconds": round(seconds, 1)}
    out = work / "exports" / job["export_id"]
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    originals = [f for f in manifest["files"] if f["role"] == "original"]
    footage = sum(int(f["size"]) for f in originals)
    written = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    shutil.rmtree(out, ignore_errors=True)  # disk stays bounded over many exports
    return {
        "state": "done",
        "seconds": round(seconds, 2),
        "footage_bytes": footage,
        "footage_MBps": round(footage / seconds / 1e6, 2),
        "images_bytes": written,
        "originals": [f["path"].removeprefix("originals/") for f in originals],
    }


def exporter(
    api: httpx.Client,
    case: dict[str, Any],
    work: Path,
    every: float,
    out: list[dict[str, Any]],
    stop: threading.Event,
) -> None:
    while not stop.is_set():
        try:
            res = export_once(api, case, work, stop)
        except (httpx.HTTPError, RuntimeError, OSError) as exc:
            res = {"state": "error", "error": f"{type(exc).__name__}: {exc}"}
        if res["state"] != "cancelled":
            res.pop("originals", None)
            out.append(res)
        if res["state"] != "done":
            stop.wait(5)
        stop.wait(every)


def cp_baseline(store: Path, keys: list[str], scratch: Path) -> dict[str, Any]:
    """``cp`` of the export's source segments to the same disk, then ``sync``."""
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    files = [str(store / k) for k in keys]
    size = sum(Path(f).stat().st_size for f in files)
    subprocess.run(["sync"], check=True)
    t = time.monotonic()
    subprocess.run(["cp", *files, str(scratch)], check=True)
    subprocess.run(["sync"], check=True)
    seconds = time.monotonic() - t
    shutil.rmtree(scratch, ignore_errors=True)
    return {"bytes": size, "seconds": round(seconds, 3), "MBps": round(size / seconds / 1e6, 1)}


def camera_loss(camera: str, dirs: list[Path], stopped_at: float, demux: bool = True) -> dict[str, Any]:
    """Holes in the written timestamps, recorded seconds against the span, gap records."""
    files: list[Path] = []
    gaps: list[dict[str, Any]] = []
    for d in dirs:
        base = d / camera
        if not base.exists():
            continue
        files += [p for p in base.rglob("*.ts") if "quarantine" not in p.parts]
        gaps += [json.loads(p.read_text()) for p in (base / "gaps").rglob("*.json")]
    files.sort(key=lambda p: p.name)  # <start>_<seq>.ts: time order
    loss = measure_loss(files) if demux else None
    spans = []
    for p in files:
        side = p.with_suffix(".json")
        if side.exists():
            rec = json.loads(side.read_text())
            spans.append((parse_iso(rec["start"]).timestamp(), parse_iso(rec["end"]).timestamp()))
    recorded = sum(e - s for s, e in spans)
    first = min((s for s, _ in spans), default=stopped_at)
    last = max((e for _, e in spans), default=stopped_at)
    return {
        "camera": camera,
        "segments": len(files),
        "video_frames_missing": loss.video_frames_missing if loss else None,
        "audio_seconds_missing": loss.audio_seconds_missing if loss else None,
        "span_s": round(last - first, 1),
        "unrecorded_in_span_s": round((last - first) - recorded, 2),
        "tail_s": round(stopped_at - last, 1),  # stop time minus the last segment's end
        "gap_records": [
            {
                "cause": g["cause"],
                "seconds": round((parse_iso(g["end"]) - parse_iso(g["start"])).total_seconds(), 2),
            }
            for g in gaps
        ],
    }


def measure_losses(work: Path, cameras: list[str], stopped_at: float, demux: bool) -> list[dict[str, Any]]:
    dirs = [work / "store", work / "spool"]
    n = len(cameras)
    with ProcessPoolExecutor(max_workers=2) as pool:
        return list(pool.map(camera_loss, cameras, [dirs] * n, [stopped_at] * n, [demux] * n))


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the bench like Ctrl-C: every finally runs


def run_centre(opts: CentreOptions, say: Any = print) -> dict[str, Any]:
    """Start, warm up (case), run the phase, baselines, stop, measure. See the module doc."""
    phase = opts.minutes * 60
    centre = Centre(opts, phase)
    stop = threading.Event()
    threads: list[threading.Thread] = []
    result: dict[str, Any] = {
        "options": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(opts).items()}
    }
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        t_start = time.time()
        say(f"starting {opts.cameras} file-mode cameras and vaudit run in {opts.work}")
        centre.start()
        run = centre.run
        assert run is not None
        say(f"vaudit run pid {centre.pid} ready in {time.time() - t_start:.0f} s")
        api = httpx.Client(base_url=f"{run.base}/api/v1", headers=run.headers, timeout=60)
        case = drive_case(api, centre.specs, opts.case_scale, say)
        result["case"] = case
        result["warmup_seconds"] = round(time.time() - t_start, 1)

        stats = ViewerStats()
        exports: list[dict[str, Any]] = []
        samples = Samples()
        cams = [s.camera_id for s in centre.specs]
        for k in range(opts.viewers):
            threads.append(
                threading.Thread(
                    target=viewer,
                    args=(k, run.base, run.headers, cams, t_start + 15, opts, stats, stop),
                    daemon=True,
                )
            )
        threads.append(
            threading.Thread(
                target=exporter, args=(api, case, opts.work, opts.export_every, exports, stop), daemon=True
            )
        )
        cpu0, *_ = proc_sample(centre.pid)
        t0 = time.monotonic()
        for t in threads:
            t.start()
        say(
            f"phase: {opts.viewers} viewers, export loop (every {opts.export_every:.0f} s), {opts.minutes} min"
        )
        next_sample = t0
        while (now := time.monotonic()) < t0 + phase:
            if now >= next_sample:
                cpu, rss, fds, nthreads = proc_sample(centre.pid)
                samples.t.append(round(now - t0, 1))
                samples.cpu_s.append(round(cpu - cpu0, 2))
                samples.rss_mb.append(round(rss, 1))
                samples.fds.append(fds)
                samples.threads.append(nthreads)
                samples.load1.append(float(Path("/proc/loadavg").read_text().split()[0]))
                pending, spool_mb, cache_mb = uploader_backlog(run.base)
                samples.upload_pending.append(pending)
                samples.spool_mb.append(spool_mb)
                samples.audio_cache_mb.append(cache_mb)
                samples.rss_less_cache_mb.append(round(rss - cache_mb, 1))
                say(
                    f"  {now - t0:6.0f} s  cpu {cpu - cpu0:7.1f} s  rss {rss:6.0f} MB  fds {fds}  threads {nthreads}  load {samples.load1[-1]}  pending {pending}  opens {len(stats.opens)} seeks {len(stats.seeks)} exports {len(exports)}"
                )
                next_sample += opts.sample_seconds
            time.sleep(min(1.0, max(0.0, next_sample - time.monotonic())))
        stop.set()
        for t in threads:
            t.join(60)
        wall = time.monotonic() - t0
        cpu_end = proc_sample(centre.pid)[0] - cpu0
        result["phase"] = {"seconds": round(wall, 1), "pipeline_cpu_cores": round(cpu_end / wall, 2)}
        result["samples"] = asdict(samples)
        result["playback"] = {
            "open": ms(stats.opens),
            "seek": ms(stats.seeks),
            "bytes": stats.bytes,
            "errors": stats.errors,
        }
        result["exports"] = exports

        if opts.baseline_exports:
            say("baselines: the same export with no viewers, then cp of its source segments")
        alones = [export_once(api, case, opts.work) for _ in range(opts.baseline_exports)]
        keys = alones[-1].pop("originals", []) if alones else []
        for a in alones:
            a.pop("originals", None)
        done = [a for a in alones if a["state"] == "done"]
        result["export_alone"] = {
            "runs": alones,
            "footage_MBps": statistics.median(a["footage_MBps"] for a in done) if done else None,
        }
        result["cp"] = cp_baseline(opts.work / "store", keys, opts.work / "cp-scratch") if keys else None
        api.close()

        stopped_at = time.time()
        centre.stop_pipeline()
        result["pipeline_usage"] = centre.usage
        say("measuring loss" + (" (demuxing every written segment)" if opts.demux_loss else " (sidecars)"))
        result["cameras"] = measure_losses(opts.work, cams, stopped_at, opts.demux_loss)
    finally:
        stop.set()
        signal.signal(signal.SIGTERM, previous)
        centre.close()
    return result


def summarise_exports(result: dict[str, Any]) -> dict[str, Any]:
    done = [e for e in result["exports"] if e["state"] == "done"]
    rates = [e["footage_MBps"] for e in done]
    alone = result.get("export_alone") or {}
    cp = result.get("cp") or {}
    med = statistics.median(rates) if rates else None
    return {
        "done": len(done),
        "failed": len(result["exports"]) - len(done),
        "footage_MB": round(done[0]["footage_bytes"] / 1e6, 1) if done else None,
        "median_seconds": statistics.median(e["seconds"] for e in done) if done else None,
        "median_footage_MBps": med,
        "alone_footage_MBps": alone.get("footage_MBps"),
        "cp_MBps": cp.get("MBps"),
        "ratio_vs_alone": round(med / alone["footage_MBps"], 2)
        if med and alone.get("footage_MBps")
        else None,
        "ratio_vs_cp": round(med / cp["MBps"], 3) if med and cp.get("MBps") else None,
    }


def summarise_loss(cameras: list[dict[str, Any]]) -> dict[str, Any]:
    demuxed = all(c["video_frames_missing"] is not None for c in cameras)
    return {
        "cameras": len(cameras),
        "cameras_with_holes": sum(
            1 for c in cameras if c["video_frames_missing"] or c["audio_seconds_missing"]
        ),
        "video_frames_missing": sum(c["video_frames_missing"] or 0 for c in cameras) if demuxed else None,
        "audio_seconds_missing": round(sum(c["audio_seconds_missing"] or 0 for c in cameras), 3)
        if demuxed
        else None,
        "unrecorded_in_span_s": round(sum(c["unrecorded_in_span_s"] for c in cameras), 2),
        "gap_records": sum(len(c["gap_records"]) for c in cameras),
        "min_span_s": min((c["span_s"] for c in cameras), default=None),
        "max_tail_s": max((c["tail_s"] for c in cameras), default=None),
    }
