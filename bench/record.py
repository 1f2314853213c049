"""Recorder benchmark: our recorder against one ``ffmpeg -c copy -f segment`` per stream.

N pre-encoded 1080p25 ~4 Mbps H.264 + G.711 A-law streams are served by the simulator in file
mode (no live encoding). In the same run, for each N:

1. our recorder (``python -m recorders``, one process, one thread per camera, hashing included)
   records all N streams for ``--seconds``;
2. N ffmpeg processes (``-rtsp_transport tcp -i URL -c copy -f segment -segment_time 10``, writing
   the same container as ours) record the same N streams for the same time.

Reported per stream: CPU seconds (user + system, from the kernel's rusage of the child), peak RSS
(our one process divided by N; each ffmpeg process on its own), and packets lost, measured the
same way for both from what was written: holes in the video and audio timestamps.

    .venv/bin/python bench/record.py --streams 8 32 64 --seconds 60 --repeats 3

Each N is measured in ``--repeats`` back-to-back pairs whose order alternates; the CPU ratio is the
median of the pairs' ratios (one pair per N proved too noisy on a shared machine: two single runs
of the same code differed by 25 %), the RSS ratio the worst pair's.

Targets (issue 2): CPU per stream ≤ 1.0× ffmpeg's with hashing, RSS per stream ≤ 0.15× ffmpeg's,
64 streams on this 2-core machine with zero loss.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import av

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline.simulator.camera import FileCameraServer, make_clip  # noqa: E402

FFMPEG = shutil.which("ffmpeg") or "/usr/bin/ffmpeg"


@dataclass
class Usage:
    cpu_seconds: float
    peak_rss_bytes: int


@dataclass
class Loss:
    video_frames_missing: int
    audio_seconds_missing: float
    files: int


def _wait_usage(proc: subprocess.Popen[bytes], timeout: float) -> Usage:
    deadline = time.monotonic() + timeout
    while True:
        pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid == proc.pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return Usage(ru.ru_utime + ru.ru_stime, ru.ru_maxrss * 1024)
        if time.monotonic() > deadline:
            proc.kill()
            timeout += 10
            deadline = time.monotonic() + 10
        time.sleep(0.05)


def measure_loss(files: list[Path]) -> Loss:
    """Holes in each stream's timestamps across the ordered files of one recording."""
    video_missing = 0
    audio_missing = 0.0
    last_video: float | None = None
    frame = 1 / 25
    audio_end: float | None = None
    for path in files:
        try:
            container = av.open(str(path))
        except av.error.FFmpegError:
            continue
        with container:
            for packet in container.demux():
                if packet.pts is None or packet.stream.time_base is None:
                    continue
                t = float(packet.pts * packet.stream.time_base)
                if packet.stream.type == "video":
                    # decoding times: one frame apart even with B-frames (presentation times reorder)
                    t = float(
                        (packet.dts if packet.dts is not None else packet.pts) * packet.stream.time_base
                    )
                    if last_video is not None and t - last_video > 1.5 * frame:
                        video_missing += round((t - last_video) / frame) - 1
                    if last_video is None or t > last_video:
                        last_video = t
                elif packet.stream.type in ("audio", "data"):
                    if packet.duration:
                        dur = float(packet.duration * packet.stream.time_base)
                    else:  # A-law in MPEG-TS reads back as data with no duration: 8000 bytes a second
                        dur = packet.size / 8000

                    if audio_end is not None and t - audio_end > 0.025:
                        audio_missing += t - audio_end
                    audio_end = max(audio_end or 0.0, t + dur)
    return Loss(video_missing, round(audio_missing, 3), len(files))


def run_ours(
    urls: list[str], seconds: float, work: Path, buffer_seconds: float = 0.25, processes: int = 1
) -> tuple[Usage, Loss, dict[str, int]]:
    """Our recorder over ``urls``: one ``python -m recorders`` process, or ``processes`` of them
    with the cameras dealt round-robin (as ``[recorder] processes`` deals them). CPU is the sum
    of the processes'; peak RSS the sum of their peaks (shared library pages counted once per
    process: an upper bound)."""
    spool = work / "ours"
    shutil.rmtree(spool, ignore_errors=True)  # a previous pair's recordings
    procs: list[tuple[subprocess.Popen[bytes], Path]] = []
    files = []
    for p in range(processes):
        cmd = [sys.executable, "-m", "recorders", "--spool", str(spool), "--segment-seconds", "10"]
        cmd += ["--write-buffer-seconds", str(buffer_seconds)]
        for i in range(p, len(urls), processes):
            cmd += ["--camera", f"cam{i:03d}={urls[i]}"]
        events_path = work / f"ours-{p}.jsonl"
        out = events_path.open("wb")
        err = (work / f"ours-{p}.log").open("wb")
        files += [out, err]
        procs.append((subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=err), events_path))
    time.sleep(seconds)
    for proc, _ in procs:
        os.kill(proc.pid, signal.SIGTERM)  # not Popen.send_signal: it would reap an exited child first
    usages = [_wait_usage(proc, 60) for proc, _ in procs]
    usage = Usage(sum(u.cpu_seconds for u in usages), sum(u.peak_rss_bytes for u in usages))
    for f in files:
        f.close()
    counts = {"segments": 0, "gaps": 0}
    for _, events_path in procs:
        for line in events_path.read_text().splitlines():
            if not line.strip():
                continue
            ev = json.loads(line)
            if ev["event"] == "segment_closed":
                counts["segments"] += 1
            elif ev["event"] == "gap_recorded":
                counts["gaps"] += 1
    losses = [
        measure_loss(sorted(p for p in (spool / f"cam{i:03d}").rglob("*") if p.suffix in (".mov", ".ts")))
        for i in range(len(urls))
    ]
    return usage, _sum_loss(losses), counts


def run_ffmpeg(urls: list[str], seconds: float, work: Path, fmt: str) -> tuple[Usage, list[Usage], Loss]:
    procs = []
    shutil.rmtree(work / "ffmpeg", ignore_errors=True)  # a previous pair's recordings
    fmt_args = ["-segment_format", fmt]
    ext = {"mpegts": "ts"}.get(fmt, fmt)
    if fmt == "mov":
        fmt_args += ["-segment_format_options", "movflags=frag_keyframe+empty_moov+default_base_moof"]
    for i, url in enumerate(urls):
        d = work / "ffmpeg" / f"cam{i:03d}"
        d.mkdir(parents=True)
        cmd = [FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin", "-rtsp_transport", "tcp", "-i", url]
        cmd += ["-map", "0", "-c", "copy", "-f", "segment", "-segment_time", "10", *fmt_args]
        cmd += ["-reset_timestamps", "1", str(d / f"seg%05d.{ext}")]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=(d / "log").open("wb")))
    time.sleep(seconds)
    each: list[Usage] = []
    running = []
    for p in procs:  # wait4 (not Popen.poll) so an early exit's rusage is kept
        pid, _status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid == p.pid:
            each.append(Usage(ru.ru_utime + ru.ru_stime, ru.ru_maxrss * 1024))
        else:
            running.append(p)
    if len(running) < len(procs):
        print(f"warning: {len(procs) - len(running)} ffmpeg processes exited early", file=sys.stderr)
    for p in running:
        os.kill(p.pid, signal.SIGINT)
    each += [_wait_usage(p, 60) for p in running]
    total = Usage(sum(u.cpu_seconds for u in each), max(u.peak_rss_bytes for u in each))
    losses = [
        measure_loss(sorted((work / "ffmpeg" / f"cam{i:03d}").glob(f"seg*.{ext}"))) for i in range(len(urls))
    ]
    return total, each, _sum_loss(losses)


def _sum_loss(losses: list[Loss]) -> Loss:
    return Loss(
        sum(x.video_frames_missing for x in losses),
        round(sum(x.audio_seconds_missing for x in losses), 3),
        sum(x.files for x in losses),
    )


def _one_pair(
    n: int,
    seconds: float,
    clip: Path,
    work: Path,
    fmt: str,
    buffer_seconds: float,
    ours_first: bool,
    processes: int = 1,
) -> tuple[Usage, Loss, dict[str, int], Usage, list[Usage], Loss]:
    """One run of ours and one of ffmpeg on fresh servers, in the given order."""
    ours_run: tuple[Usage, Loss, dict[str, int]] | None = None
    ff_run: tuple[Usage, list[Usage], Loss] | None = None
    for who in ("ours", "ffmpeg") if ours_first else ("ffmpeg", "ours"):
        with FileCameraServer(clip, n) as server:
            time.sleep(1)
            if who == "ours":
                ours_run = run_ours(server.urls, seconds, work, buffer_seconds, processes)
            else:
                ff_run = run_ffmpeg(server.urls, seconds, work, fmt)
    assert ours_run is not None and ff_run is not None
    return (*ours_run, *ff_run)


def bench(
    n: int,
    seconds: float,
    clip: Path,
    work: Path,
    fmt: str,
    buffer_seconds: float = 0.25,
    repeats: int = 1,
    processes: int = 1,
) -> dict[str, object]:
    """``repeats`` pairs, the order alternating (ours first, then ffmpeg first, ...) so that a
    machine getting busier or quieter during the run favours neither; the CPU ratio reported is
    the median of the pairs' ratios, each pair measured back to back."""
    result: dict[str, object] = {
        "streams": n,
        "seconds": seconds,
        "write_buffer_seconds": buffer_seconds,
        "repeats": repeats,
        "recorder_processes": processes,
    }
    ours_cpu: list[float] = []
    ff_cpu: list[float] = []
    ours_rss: list[float] = []
    ff_rss: list[float] = []
    ours_losses: list[Loss] = []
    ff_losses: list[Loss] = []
    counts: dict[str, int] = {}
    for i in range(repeats):
        ours, ours_loss, counts, ff_total, ff_each, ff_loss = _one_pair(
            n, seconds, clip, work, fmt, buffer_seconds, ours_first=i % 2 == 0, processes=processes
        )
        ours_cpu.append(ours.cpu_seconds / n)
        ff_cpu.append(ff_total.cpu_seconds / n)
        ours_rss.append(ours.peak_rss_bytes / n)
        ff_rss.append(sum(u.peak_rss_bytes for u in ff_each) / n)
        ours_losses.append(ours_loss)
        ff_losses.append(ff_loss)
        print(
            f"  N={n} pair {i + 1}/{repeats}: ours {ours_cpu[-1]:.3f} / ffmpeg {ff_cpu[-1]:.3f} CPU s per "
            f"stream = {ours_cpu[-1] / ff_cpu[-1]:.3f}, load {os.getloadavg()[0]:.1f}",
            flush=True,
        )
    ratios = [o / f for o, f in zip(ours_cpu, ff_cpu, strict=True) if f]
    rss_ratios = [o / f for o, f in zip(ours_rss, ff_rss, strict=True) if f]
    result.update(
        ours_cpu_s_per_stream=round(statistics.median(ours_cpu), 3),
        ffmpeg_cpu_s_per_stream=round(statistics.median(ff_cpu), 3),
        cpu_ratio=round(statistics.median(ratios), 3) if ratios else None,
        cpu_ratio_each=[round(r, 3) for r in ratios],
        ours_process_peak_rss_mb=round(max(ours_rss) * n / 2**20, 1),
        ours_rss_mb_per_stream=round(max(ours_rss) / 2**20, 2),
        ffmpeg_rss_mb_per_stream=round(statistics.median(ff_rss) / 2**20, 2),
        rss_ratio=round(max(rss_ratios), 3) if rss_ratios else None,
        ours_loss=_sum_loss(ours_losses).__dict__,
        ffmpeg_loss=_sum_loss(ff_losses).__dict__,
        ours_events=counts,
    )
    return result


def bframe_cost(
    n: int, seconds: float, plain: Path, reordered: Path, work: Path, repeats: int, processes: int
) -> dict[str, object]:
    """Our recorder on N streams of the plain clip and of the same picture with B-frames (made by
    the ffmpeg CLI's libx264), in alternating pairs: what rebuilding decoding times costs."""
    cpu: dict[str, list[float]] = {"plain": [], "bframes": []}
    losses: dict[str, list[Loss]] = {"plain": [], "bframes": []}
    for i in range(repeats):
        for kind in ("plain", "bframes") if i % 2 == 0 else ("bframes", "plain"):
            with FileCameraServer(plain if kind == "plain" else reordered, n) as server:
                time.sleep(1)
                usage, loss, _counts = run_ours(server.urls, seconds, work, 0.25, processes)
            cpu[kind].append(usage.cpu_seconds / n)
            losses[kind].append(loss)
        print(
            f"  N={n} pair {i + 1}/{repeats}: plain {cpu['plain'][-1]:.3f} / B-frames {cpu['bframes'][-1]:.3f} "
            f"CPU s per stream, load {os.getloadavg()[0]:.1f}",
            flush=True,
        )
    ratios = [b / p for b, p in zip(cpu["bframes"], cpu["plain"], strict=True) if p]
    return {
        "streams": n,
        "seconds": seconds,
        "repeats": repeats,
        "recorder_processes": processes,
        "plain_cpu_s_per_stream": round(statistics.median(cpu["plain"]), 3),
        "bframes_cpu_s_per_stream": round(statistics.median(cpu["bframes"]), 3),
        "bframes_over_plain": round(statistics.median(ratios), 3) if ratios else None,
        "ratio_each": [round(r, 3) for r in ratios],
        "loss_plain": _sum_loss(losses["plain"]).__dict__,
        "loss_bframes": _sum_loss(losses["bframes"]).__dict__,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, nargs="+", default=[8, 32, 64])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clip", type=Path, default=ROOT / "bench" / "out" / "clip1080p.mov")
    parser.add_argument("--ffmpeg-format", default="mpegts", help="container ffmpeg writes (ours: mpegts)")
    parser.add_argument("--keep", action="store_true", help="keep the recordings")
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="pairs (ours, ffmpeg) per N, order alternating; the ratio is their median",
    )
    parser.add_argument(
        "--write-buffer-seconds",
        type=float,
        default=0.25,
        help="ours: media the muxer may buffer (0: a write per packet, the crash-safest)",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="ours: recorder processes, the cameras dealt round-robin ([recorder] processes)",
    )
    parser.add_argument(
        "--bframes",
        type=int,
        default=0,
        help="instead of ffmpeg: ours on a clip with this many B-frames against ours on the plain "
        "clip (the cost of rebuilding decoding times)",
    )
    args = parser.parse_args()
    args.clip.parent.mkdir(parents=True, exist_ok=True)
    clip = make_clip(args.clip, seconds=args.seconds + 30, width=1920, height=1080, fps=25, bitrate_kbps=4000)
    results = []
    if args.bframes:
        reordered = make_clip(
            args.clip.with_name(f"{args.clip.stem}-b{args.bframes}.mov"),
            seconds=args.seconds + 30,
            width=1920,
            height=1080,
            fps=25,
            bitrate_kbps=4000,
            bframes=args.bframes,
        )
        for n in args.streams:
            work = Path(tempfile.mkdtemp(prefix=f"vaudit-bench-b-{n}-"))
            try:
                res = bframe_cost(
                    n, args.seconds, clip, reordered, work, args.repeats, min(args.processes, n)
                )
            finally:
                shutil.rmtree(work, ignore_errors=True)
            print(json.dumps(res, ensure_ascii=False), flush=True)
            results.append(res)
        (ROOT / "bench" / "out" / "record-bframes.json").write_text(json.dumps(results, indent=2))
        return 0
    for n in args.streams:
        work = Path(tempfile.mkdtemp(prefix=f"vaudit-bench-{n}-"))
        try:
            res = bench(
                n,
                args.seconds,
                clip,
                work,
                args.ffmpeg_format,
                args.write_buffer_seconds,
                args.repeats,
                min(args.processes, n),
            )
        finally:
            if not args.keep:
                shutil.rmtree(work, ignore_errors=True)
        print(json.dumps(res, ensure_ascii=False), flush=True)
        results.append(res)
    out = ROOT / "bench" / "out" / "record.json"
    out.write_text(json.dumps(results, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
