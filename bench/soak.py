"""Soak (issue 8): the load centre at a sustainable size for ``--minutes`` (default 30), sampling
the ``vaudit run`` process's RSS, open file descriptors (/proc/PID/fd) and threads every minute,
with a least-squares slope per hour and a growth verdict for each.

The centre, viewers and export loop are ``bench/centre_load.py`` (module doc); defaults here:
16 cameras, 4 paced viewers, an export every 3 minutes.

Verdict rule, per quantity, over the samples after ``--settle`` minutes (caches and pools fill
first): **growth** when the slope is positive, at least 3 standard errors from zero, *and* the
fitted rise over the fitted span exceeds a floor (RSS 8 MB, fds 4, threads 2: what one extra
export, viewer connection or reconnect may hold at the moment of a sample); otherwise **no growth**
(slope within noise).

    nice -n 10 .venv/bin/python bench/soak.py --minutes 30 --json bench/out/soak.json
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.centre_load import CentreOptions, run_centre, summarise_exports, summarise_loss  # noqa: E402

FLOORS = {"rss_mb": 8.0, "rss_less_cache_mb": 8.0, "fds": 4.0, "threads": 2.0}


def trend(t_seconds: list[float], values: list[float], floor: float) -> dict[str, Any]:
    """Least-squares line through (t, value); slope per hour, its standard error, verdict."""
    n = len(values)
    if n < 3:
        return {"n": n, "slope_per_hour": None, "verdict": "too few samples"}
    hours = [t / 3600 for t in t_seconds]
    mt, mv = sum(hours) / n, sum(values) / n
    sxx = sum((h - mt) ** 2 for h in hours)
    slope = sum((h - mt) * (v - mv) for h, v in zip(hours, values, strict=True)) / sxx
    resid = [v - (mv + slope * (h - mt)) for h, v in zip(hours, values, strict=True)]
    sigma = math.sqrt(sum(r * r for r in resid) / (n - 2))
    se = sigma / math.sqrt(sxx)
    span = hours[-1] - hours[0]
    rise = slope * span
    significant = slope > 0 and (se == 0 or slope / se >= 3)
    growth = significant and rise > floor
    return {
        "n": n,
        "first": values[0],
        "last": values[-1],
        "slope_per_hour": round(slope, 3),
        "stderr_per_hour": round(se, 3),
        "rise_over_span": round(rise, 2),
        "floor": floor,
        "verdict": "growth" if growth else "no growth",
    }


def analyse(samples: dict[str, list[Any]], settle_seconds: float) -> dict[str, Any]:
    keep = [i for i, t in enumerate(samples["t"]) if t >= settle_seconds]
    ts = [samples["t"][i] for i in keep]
    return {
        q: trend(ts, [float(samples[q][i]) for i in keep], floor)
        for q, floor in FLOORS.items()
        if samples.get(q)  # older result files have no cache column
    }


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cameras", type=int, default=16)
    ap.add_argument("--viewers", type=int, default=4)
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--export-every", type=float, default=180.0, help="seconds between exports")
    ap.add_argument("--speed", type=float, default=2.0)
    ap.add_argument("--kbps", type=int, default=4000)
    ap.add_argument("--sample-seconds", type=float, default=60.0)
    ap.add_argument("--settle", type=float, default=5.0, help="minutes of samples left out of the fit")
    ap.add_argument("--db-url", help="PostgreSQL maintenance URL (default: SQLite in the work directory)")
    ap.add_argument(
        "--work", type=Path, default=Path("/tmp/vaudit-soak"), help="wiped at start and at the end"
    )
    ap.add_argument("--keep", action="store_true")
    ap.add_argument(
        "--demux-loss",
        action="store_true",
        help="also count timestamp holes by demuxing every segment (slow: ~20 GB); default: sidecars and gap records",
    )
    ap.add_argument(
        "--recorder-processes",
        type=int,
        default=0,
        help="[recorder] processes: record in N child processes (0: threads of vaudit run)",
    )
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    if args.cameras < 4 or args.minutes <= 0 or args.sample_seconds <= 0 or args.settle < 0:
        ap.error("need --cameras ≥ 4, --minutes > 0, --sample-seconds > 0, --settle ≥ 0")
    return args


def report(result: dict[str, Any]) -> str:
    s = result["samples"]
    lines = ["| t (min) | RSS MB | fds | threads | load (1 min) |", "|---|---|---|---|---|"]
    for i, t in enumerate(s["t"]):
        lines.append(
            f"| {t / 60:.1f} | {s['rss_mb'][i]:.0f} | {s['fds'][i]} | {s['threads'][i]} | {s['load1'][i]} |"
        )
    lines += [
        "",
        "| quantity | samples fitted | slope / h | ± s.e. | rise over span | verdict |",
        "|---|---|---|---|---|---|",
    ]
    for q, tr in result["trend"].items():
        lines.append(
            f"| {q} | {tr['n']} | {tr.get('slope_per_hour')} | {tr.get('stderr_per_hour')} | "
            f"{tr.get('rise_over_span')} (floor {tr.get('floor')}) | **{tr['verdict']}** |"
        )
    loss = result["summary"]["loss"]
    exp = result["summary"]["exports"]
    pb = result["playback"]
    lines += [
        "",
        (
            f"Loss: {loss['video_frames_missing']} video frames, {loss['audio_seconds_missing']} s audio, "
            if loss["video_frames_missing"] is not None
            else "Loss (sidecars; timestamp holes not demuxed): "
        )
        + f"{loss['unrecorded_in_span_s']} s unrecorded in spans, {loss['gap_records']} gap records "
        f"({loss['cameras']} cameras). Exports: {exp['done']} done, {exp['failed']} failed, "
        f"median {exp['median_footage_MBps']} MB/s of footage. Playback open p95 {pb['open']['p95_ms']} ms, "
        f"seek p95 {pb['seek']['p95_ms']} ms, errors {pb['errors'] or 0}. "
        f"Pipeline CPU {result['phase']['pipeline_cpu_cores']} cores.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    opts = CentreOptions(
        cameras=args.cameras, viewers=args.viewers, minutes=args.minutes, export_every=args.export_every,
        speed=args.speed, kbps=args.kbps, sample_seconds=args.sample_seconds, db_url=args.db_url,
        work=args.work, keep=args.keep, baseline_exports=0,  # throughput is load.py's question
        demux_loss=args.demux_loss, recorder_processes=args.recorder_processes,
    )  # fmt: skip
    try:
        result = run_centre(opts, say=lambda m: print(m, file=sys.stderr, flush=True))
    except KeyboardInterrupt:
        print("interrupted: every process started was stopped", file=sys.stderr)
        return 130
    result["trend"] = analyse(result["samples"], args.settle * 60)
    result["summary"] = {"loss": summarise_loss(result["cameras"]), "exports": summarise_exports(result)}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1, ensure_ascii=False))
    print(report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
