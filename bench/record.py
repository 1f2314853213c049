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

    .venv/bin/python bench/record.py --streams 8 32 64 --seconds 60

Targets (issue 2): CPU per stream ≤ 1.0× ffmpeg's with hashing, RSS per stream ≤ 0.15× ffmpeg's,
64 streams on this 2-core machine with zero loss.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
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
    urls: list[str], seconds: float, work: Path, buffer_seconds: float = 0.25
) -> tuple[Usage, Loss, dict[str, int]]:
    spool = work / "ours"
    cmd = [sys.executable, "-m", "recorders", "--spool", str(spool), "--segment-seconds", "10"]
    cmd += ["--write-buffer-seconds", str(buffer_seconds)]
    for i, url in enumerate(urls):
        cmd += ["--camera", f"cam{i:03d}={url}"]
    out = (work / "ours.jsonl").open("wb")
    err = (work / "ours.log").open("wb")
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=err)
    time.sleep(seconds)
    os.kill(proc.pid, signal.SIGTERM)  # not Popen.send_signal: it would reap an exited child first
    usage = _wait_usage(proc, 60)
    out.close()
    err.close()
    events = [json.loads(line) for line in (work / "ours.jsonl").read_text().splitlines() if line.strip()]
    counts = {"segments": 0, "gaps": 0}
    for ev in events:
        counts["segments" if ev["event"] == "segment_closed" else "gaps"] += ev["event"] in (
            "segment_closed",
            "gap_recorded",
        )
    losses = [
        measure_loss(sorted(p for p in (spool / f"cam{i:03d}").rglob("*") if p.suffix in (".mov", ".ts")))
        for i in range(len(urls))
    ]
    return usage, _sum_loss(losses), counts


def run_ffmpeg(urls: list[str], seconds: float, work: Path, fmt: str) -> tuple[Usage, list[Usage], Loss]:
    procs = []
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


def bench(
    n: int, seconds: float, clip: Path, work: Path, fmt: str, buffer_seconds: float = 0.25
) -> dict[str, object]:
    result: dict[str, object] = {"streams": n, "seconds": seconds, "write_buffer_seconds": buffer_seconds}
    with FileCameraServer(clip, n) as server:
        time.sleep(1)
        ours, ours_loss, counts = run_ours(server.urls, seconds, work, buffer_seconds)
    with FileCameraServer(clip, n) as server:
        time.sleep(1)
        ff_total, ff_each, ff_loss = run_ffmpeg(server.urls, seconds, work, fmt)
    ours_cpu = ours.cpu_seconds / n
    ff_cpu = ff_total.cpu_seconds / n
    ours_rss = ours.peak_rss_bytes / n
    ff_rss = sum(u.peak_rss_bytes for u in ff_each) / n
    result.update(
        ours_cpu_s_per_stream=round(ours_cpu, 3),
        ffmpeg_cpu_s_per_stream=round(ff_cpu, 3),
        cpu_ratio=round(ours_cpu / ff_cpu, 3) if ff_cpu else None,
        ours_process_peak_rss_mb=round(ours.peak_rss_bytes / 2**20, 1),
        ours_rss_mb_per_stream=round(ours_rss / 2**20, 2),
        ffmpeg_rss_mb_per_stream=round(ff_rss / 2**20, 2),
        rss_ratio=round(ours_rss / ff_rss, 3) if ff_rss else None,
        ours_loss=ours_loss.__dict__,
        ffmpeg_loss=ff_loss.__dict__,
        ours_events=counts,
    )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, nargs="+", default=[8, 32, 64])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clip", type=Path, default=ROOT / "bench" / "out" / "clip1080p.mov")
    parser.add_argument("--ffmpeg-format", default="mpegts", help="container ffmpeg writes (ours: mpegts)")
    parser.add_argument("--keep", action="store_true", help="keep the recordings")
    parser.add_argument("--write-buffer-seconds", type=float, default=0.25,
                        help="ours: media the muxer may buffer (0: a write per packet, the crash-safest)")
    args = parser.parse_args()
    args.clip.parent.mkdir(parents=True, exist_ok=True)
    clip = make_clip(args.clip, seconds=args.seconds + 30, width=1920, height=1080, fps=25, bitrate_kbps=4000)
    results = []
    for n in args.streams:
        work = Path(tempfile.mkdtemp(prefix=f"vaudit-bench-{n}-"))
        try:
            res = bench(n, args.seconds, clip, work, args.ffmpeg_format, args.write_buffer_seconds)
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
