"""Picture checks benchmark: CPU of the picture watcher per camera-minute, against decoding every
frame of the same stream with PyAV (the named baseline), and against the recorder's own CPU.

The stream is the recorder benchmark's camera-like clip (``make_clip``: 1080p25 H.264 ~4 Mbps,
a keyframe every second, G.711 A-law), cut into 10 s MPEG-TS segments as the recorder writes
them. The watcher's situation is replayed exactly: every ``--interval`` seconds of media time the
open segment is the current segment *truncated at that instant* (a copy written before the
clock starts), and the watcher's own code reads it (``newest_keyframe``: demux everything,
decode the last complete keyframe alone) and checks it (``CameraWatch.observe``: the checks, a
JPEG when a fault or a person count is there). Measured with the process's CPU clock (all
threads: OpenCV's too), once with the HOG people detector off and once on (every 10 s).

In the same run:

- baseline: every frame of the same segments decoded with PyAV (default decoder threading);
- recorder (``--recorder``): ``python -m recorders`` recording the same clip from the simulator's
  RTSP file server for ``--seconds`` (CPU from the kernel's rusage, as ``bench/record.py``).

    .venv/bin/python bench/picture.py --seconds 60 [--recorder]

Prints one JSON object; figures are CPU seconds per camera-minute and ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import av

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from pipeline.pictures.checks import CheckThresholds  # noqa: E402
from pipeline.pictures.watcher import CameraWatch, SegmentReader, thresholds_from  # noqa: E402
from pipeline.settings import PictureChecksConfig  # noqa: E402
from pipeline.simulator.camera import FileCameraServer, make_clip  # noqa: E402

SEGMENT_SECONDS = 10.0


def cpu() -> float:
    return time.process_time()


def cut_segments(clip: Path, out: Path) -> list[tuple[Path, float, list[tuple[float, int]]]]:
    """Video of ``clip`` remuxed into MPEG-TS segments cut at the first keyframe after each 10 s;
    for each: its path, start (s) and (packet pts, byte offset where the packet starts)."""
    out.mkdir(parents=True, exist_ok=True)
    segments: list[tuple[Path, float]] = []
    with av.open(str(clip)) as ic:
        vin = ic.streams.video[0]
        oc = None
        vout = None
        seg_start = 0.0
        for packet in ic.demux(vin):
            if packet.pts is None or packet.size == 0:
                continue
            t = float(packet.pts * packet.time_base)
            if packet.is_keyframe and (oc is None or t - seg_start >= SEGMENT_SECONDS):
                if oc is not None:
                    oc.close()
                path = out / f"seg{len(segments):04d}.ts"
                oc = av.open(str(path), "w", format="mpegts")
                vout = oc.add_stream_from_template(vin)
                seg_start = t
                segments.append((path, t))
            assert oc is not None and vout is not None
            packet.stream = vout
            oc.mux(packet)
        if oc is not None:
            oc.close()
    result = []
    for path, start in segments:
        with av.open(str(path)) as ic:
            vs = ic.streams.video[0]
            offsets = [
                (float(p.pts * p.time_base), int(p.pos))
                for p in ic.demux(vs)
                if p.pts is not None and p.size and p.pos is not None and p.pos >= 0
            ]
        result.append((path, start, offsets))
    return result


def watcher_cpu(
    segments: list[tuple[Path, float, list[tuple[float, int]]]],
    seconds: float,
    interval: float,
    thresholds: CheckThresholds,
    work: Path,
) -> dict[str, float]:
    """CPU of the watcher's read + check for one camera over ``seconds`` of media time."""
    watch = CameraWatch("bench", thresholds)
    reader = SegmentReader()
    t0 = datetime.now(UTC)
    read_cpu = check_cpu = 0.0
    samples = 0
    first = segments[0][1]
    # Samples fall anywhere in a GOP in real life; start off the segment boundaries (a sample
    # in the first 40 ms of a segment finds no complete keyframe yet and is skipped).
    t = first + interval / 2 + 0.37
    while t < first + seconds:
        seg = max((s for s in segments if s[1] <= t), key=lambda s: s[1])
        path, _start, offsets = seg
        cut = next((pos for pts, pos in offsets if pts > t), path.stat().st_size)
        open_ts = work / f"open-{path.name}"  # the open segment, as far as written at t
        with path.open("rb") as src, open_ts.open("wb") as dst:  # not timed: the recorder's write
            dst.write(src.read(cut))
        c0 = cpu()
        key = reader.newest(open_ts, t0)
        c1 = cpu()
        if key is not None:
            watch.observe(key, t0 + timedelta(seconds=t))
            samples += 1
        c2 = cpu()
        read_cpu += c1 - c0
        check_cpu += c2 - c1
        t += interval
    minutes = seconds / 60
    return {
        "samples": samples,
        "tail_reads": reader.tail_reads,
        "full_reads": reader.full_reads,
        "read_cpu_s_per_min": round(read_cpu / minutes, 4),
        "check_cpu_s_per_min": round(check_cpu / minutes, 4),
        "cpu_s_per_min": round((read_cpu + check_cpu) / minutes, 4),
        "ms_per_sample": round(1000 * (read_cpu + check_cpu) / max(samples, 1), 2),
    }


def full_decode_cpu(
    segments: list[tuple[Path, float, list[tuple[float, int]]]], seconds: float
) -> dict[str, float]:
    """Baseline: every frame of the segments covering ``seconds`` decoded with PyAV."""
    frames = 0
    first = segments[0][1]
    covering = [s for s in segments if s[1] < first + seconds]
    c0 = cpu()
    for path, _start, _offsets in covering:
        with av.open(str(path)) as ic:
            for _frame in ic.decode(ic.streams.video[0]):
                frames += 1
    used = cpu() - c0
    media = frames / 25.0  # the clip is 25 fps: the media time decoded
    return {"frames": frames, "media_s": media, "cpu_s_per_min": round(used / (media / 60), 4)}


def recorder_cpu(clip: Path, seconds: float, work: Path) -> dict[str, float]:
    from record import run_ours  # bench/record.py: the recorder benchmark's own runner

    work.mkdir(parents=True, exist_ok=True)
    with FileCameraServer(clip, 1) as server:
        time.sleep(1)
        usage, _loss, counts = run_ours(server.urls, seconds, work)
    return {"cpu_s_per_min": round(usage.cpu_seconds / (seconds / 60), 4), "segments": counts["segments"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="media time per measurement")
    parser.add_argument("--interval", type=float, default=PictureChecksConfig().interval_seconds)
    parser.add_argument("--clip", type=Path, default=ROOT / "bench" / "out" / "clip1080p_picture.mov")
    parser.add_argument(
        "--recorder", action="store_true", help="also record the clip for --seconds (real time)"
    )
    args = parser.parse_args()
    args.clip.parent.mkdir(parents=True, exist_ok=True)
    clip = make_clip(args.clip, seconds=args.seconds + 30, width=1920, height=1080, fps=25, bitrate_kbps=4000)
    work = Path(tempfile.mkdtemp(prefix="vaudit-bench-picture-"))
    try:
        segments = cut_segments(clip, work / "segments")
        base = thresholds_from(PictureChecksConfig())
        no_hog = thresholds_from(PictureChecksConfig(hog_every_seconds=0))
        result: dict[str, object] = {
            "stream": "1920x1080 25 fps H.264 ~4 Mbps, keyframe every 1 s",
            "seconds": args.seconds,
            "interval_s": args.interval,
            "cpus": os.cpu_count(),
            "load_before": os.getloadavg()[0],
        }
        off = watcher_cpu(segments, args.seconds, args.interval, no_hog, work)
        on = watcher_cpu(segments, args.seconds, args.interval, base, work)
        full = full_decode_cpu(segments, args.seconds)
        result.update(watcher_hog_off=off, watcher_hog_on=on, baseline_pyav_full_decode=full)
        result["ratio_hog_off_vs_full_decode"] = round(off["cpu_s_per_min"] / full["cpu_s_per_min"], 4)
        result["ratio_hog_on_vs_full_decode"] = round(on["cpu_s_per_min"] / full["cpu_s_per_min"], 4)
        if args.recorder:
            rec = recorder_cpu(clip, args.seconds, work / "rec")
            result["recorder"] = rec
            result["ratio_hog_off_vs_recorder"] = round(off["cpu_s_per_min"] / rec["cpu_s_per_min"], 4)
            result["ratio_hog_on_vs_recorder"] = round(on["cpu_s_per_min"] / rec["cpu_s_per_min"], 4)
        result["load_after"] = os.getloadavg()[0]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
