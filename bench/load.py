"""Load benchmark (issue 8): N cameras recording, paced playback viewers and a looping export,
together, in one real ``vaudit run`` process, for ``--minutes``.

What runs and what is measured: ``bench/centre_load.py`` (module doc). Reported: packets lost per
camera (holes in the written video/audio timestamps, seconds unrecorded inside each camera's span,
gap records), playback first byte ("open") and seek p50/p95, export throughput in MB/s of footage
(the originals' bytes / wall time from POST to done) against two baselines measured in the same
run right after the phase — the same export with no viewers, and ``cp`` + ``sync`` of the same
segment files — and the pipeline process's CPU (cores) and RSS.

    nice -n 10 .venv/bin/python bench/load.py --cameras 64 --viewers 20 --minutes 10 --json bench/out/load.json

``--db-url postgresql://postgres@127.0.0.1:5432/postgres`` runs the index on PostgreSQL: a fresh
database is created on that server and dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.centre_load import CentreOptions, run_centre, summarise_exports, summarise_loss  # noqa: E402


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cameras", type=int, default=64)
    ap.add_argument("--viewers", type=int, default=20)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--speed", type=float, default=2.0, help="viewers read at this × real time")
    ap.add_argument(
        "--export-every", type=float, default=0.0, help="seconds between exports (0: back to back)"
    )
    ap.add_argument("--kbps", type=int, default=4000, help="camera video bit rate (1080p25 clip)")
    ap.add_argument(
        "--case-scale", type=float, default=1.5, help="stretch pipeline.node.demo.SCRIPT (54 s) by this"
    )
    ap.add_argument("--sample-seconds", type=float, default=5.0)
    ap.add_argument("--db-url", help="PostgreSQL maintenance URL (default: SQLite in the work directory)")
    ap.add_argument(
        "--work", type=Path, default=Path("/tmp/vaudit-load"), help="wiped at start and at the end"
    )
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument(
        "--recorder-processes",
        type=int,
        default=0,
        help="[recorder] processes: record in N child processes (0: threads of vaudit run)",
    )
    ap.add_argument(
        "--read-pause-seconds",
        type=float,
        default=None,
        help="[recorder] read_pause_seconds (default: the recorder's own, 0.2 s; 0: no read pacing)",
    )
    ap.add_argument("--json", type=Path, help="write the full result here")
    args = ap.parse_args(argv)
    if args.cameras < 4 or args.viewers < 0 or args.minutes <= 0 or args.speed <= 0:
        ap.error("need --cameras ≥ 4, --viewers ≥ 0, --minutes > 0, --speed > 0")
    return args


def options(args: argparse.Namespace) -> CentreOptions:
    return CentreOptions(
        cameras=args.cameras, viewers=args.viewers, minutes=args.minutes, export_every=args.export_every,
        speed=args.speed, kbps=args.kbps, case_scale=args.case_scale, sample_seconds=args.sample_seconds,
        db_url=args.db_url, work=args.work, keep=args.keep, recorder_processes=args.recorder_processes,
        read_pause_seconds=args.read_pause_seconds,
    )  # fmt: skip


def table(result: dict[str, Any]) -> str:
    loss = summarise_loss(result["cameras"])
    exp = summarise_exports(result)
    pb = result["playback"]
    s = result["samples"]
    use = result.get("pipeline_usage") or {}
    o = result["options"]
    rows = [
        ("cameras recording / viewers / minutes", f"{o['cameras']} / {o['viewers']} / {o['minutes']}"),
        ("database", "PostgreSQL" if o["db_url"] else "SQLite"),
        (
            "load average (1 min) during phase: median / max",
            f"{statistics.median(s['load1']):.1f} / {max(s['load1']):.1f}",
        ),
        (
            "video frames missing (all cameras)",
            f"{loss['video_frames_missing']} ({loss['cameras_with_holes']} cameras with holes)",
        ),
        ("audio seconds missing (all cameras)", f"{loss['audio_seconds_missing']}"),
        (
            "seconds unrecorded inside spans / gap records",
            f"{loss['unrecorded_in_span_s']} / {loss['gap_records']}",
        ),
        ("shortest camera span / longest tail", f"{loss['min_span_s']} s / {loss['max_tail_s']} s"),
        (
            "playback open first byte p50 / p95 (n)",
            f"{pb['open']['p50_ms']} / {pb['open']['p95_ms']} ms ({pb['open']['n']})",
        ),
        (
            "playback seek first byte p50 / p95 (n)",
            f"{pb['seek']['p50_ms']} / {pb['seek']['p95_ms']} ms ({pb['seek']['n']})",
        ),
        ("playback errors", json.dumps(pb["errors"]) if pb["errors"] else "0"),
        ("exports done / failed (footage each)", f"{exp['done']} / {exp['failed']} ({exp['footage_MB']} MB)"),
        (
            "export under load: median s, MB/s of footage",
            f"{exp['median_seconds']} s, {exp['median_footage_MBps']} MB/s",
        ),
        (
            "baseline: same export, no viewers",
            f"{exp['alone_footage_MBps']} MB/s → ratio {exp['ratio_vs_alone']}",
        ),
        ("baseline: cp + sync of the same segments", f"{exp['cp_MBps']} MB/s → ratio {exp['ratio_vs_cp']}"),
        (
            "uploader backlog: max / last pending sidecars (max spool MB)",
            f"{max(s.get('upload_pending') or [0])} / {(s.get('upload_pending') or [0])[-1]}"
            f" ({max(s.get('spool_mb') or [0])})",
        ),
        ("pipeline CPU during phase (cores)", f"{result['phase']['pipeline_cpu_cores']}"),
        (
            "pipeline RSS during phase: median / max",
            f"{statistics.median(s['rss_mb']):.0f} / {max(s['rss_mb']):.0f} MB",
        ),
        (
            "pipeline whole run: CPU s / peak RSS (wait4)",
            f"{use.get('cpu_seconds')} s / {use.get('peak_rss_mb')} MB",
        ),
    ]
    lines = ["| metric | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    try:
        result = run_centre(options(args), say=lambda m: print(m, file=sys.stderr, flush=True))
    except KeyboardInterrupt:
        print("interrupted: every process started was stopped", file=sys.stderr)
        return 130
    result["summary"] = {"loss": summarise_loss(result["cameras"]), "exports": summarise_exports(result)}
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1, ensure_ascii=False))
    print(table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
