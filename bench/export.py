"""Export benchmark: N hours of footage across several cameras -> master + working disc images.

Footage is built quickly: one pre-encoded 60 s MPEG-TS segment per camera (H.264 + G.711 A-law,
as cameras send), hard-linked as many times as needed under storage keys one minute apart, with
sidecars and a gap in the interrogation camera. The export then runs in a child process so its
peak RSS is its own (Chromium, which prints the statement, is not counted: it is a separate
short-lived process).

Reports: bytes written per second by the export (everything: originals, MP4s, pages, both image
sets) against ``cp`` of the same source bytes on the same disk in the same run; wall time per
hour of footage; peak RSS; the seconds of each phase (copying originals, their G.711 remux,
videos, documents, images) and the remux's bytes; with ``--verify``, the time ``vaudit verify``
takes over all images.

    .venv/bin/python bench/export.py --hours 8 --cameras 4 --kbps 500 --work /tmp/vaudit-bench
    .venv/bin/python bench/export.py --hours 1 --cameras 2 --kbps 2000 --no-g711-remux   # A/B
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from domain.types import (  # noqa: E402
    CameraCoverage,
    CaseEvent,
    ClockSource,
    EventType,
    GapCause,
    GapRecord,
    RoomKind,
    RoomStay,
    SegmentRecord,
    StayFootage,
    StreamInfo,
    TimeRange,
    segment_key,
    sidecar_key,
)

SEGMENT_SECONDS = 60
# The export's progress messages that open each phase, in order.
PHASES = (
    "copying originals",
    "remuxing originals with sound",
    "remuxing",
    "writing statement",
    "writing image",
)
KINDS = [RoomKind.ENTRY, RoomKind.SEARCH, RoomKind.WAITING, RoomKind.INTERROGATION]


def encode_segment(path: Path, kbps: int) -> None:
    """One 60 s 640x360 H.264 + A-law TS via ffmpeg (fast: testsrc, ultrafast)."""
    cmd = [
        "ffmpeg",
        "-v",
        "error",
        "-y",
        "-f",
        "lavfi",
        "-i",
        f"testsrc2=size=640x360:rate=25:duration={SEGMENT_SECONDS}",
        "-f",
        "lavfi",
        "-i",
        f"sine=frequency=440:sample_rate=8000:duration={SEGMENT_SECONDS}",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        "50",
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
    ]
    subprocess.run(cmd, check=True)


def build_store(work: Path, hours: float, cameras: int, kbps: int) -> dict[str, object]:
    import hashlib
    from datetime import UTC, datetime

    store = work / "store"
    shutil.rmtree(store, ignore_errors=True)
    store.mkdir(parents=True)
    template = work / "template.ts"
    if not template.exists() or template.stat().st_size == 0:
        encode_segment(template, kbps)
    digest = hashlib.sha256(template.read_bytes()).hexdigest()
    size = template.stat().st_size
    t0 = datetime(2024, 5, 1, 0, 0, tzinfo=UTC)
    per_cam = int(hours * 3600 / SEGMENT_SECONDS / cameras)
    footage = []
    for c in range(cameras):
        cam = f"cam-{c + 1}"
        kind = KINDS[min(c, len(KINDS) - 1)] if c < cameras - 1 else RoomKind.INTERROGATION
        start = t0 + timedelta(seconds=c * per_cam * SEGMENT_SECONDS)
        segs, gaps = [], []
        prev = None
        for i in range(per_cam):
            s = start + timedelta(seconds=i * SEGMENT_SECONDS)
            if kind is RoomKind.INTERROGATION and i == per_cam // 2:
                gaps.append(GapRecord(cam, s, s + timedelta(seconds=SEGMENT_SECONDS), GapCause.DISCONNECT))
                continue
            key = segment_key(cam, s, i + 1)
            (store / key).parent.mkdir(parents=True, exist_ok=True)
            os.link(template, store / key)
            rec = SegmentRecord(
                cam,
                "run",
                i + 1,
                s,
                s + timedelta(seconds=SEGMENT_SECONDS),
                key,
                size,
                digest,
                prev,
                ClockSource.RTCP,
                StreamInfo("h264", 640, 360, "pcm_alaw", 8000, 1),
            )
            prev = digest
            (store / sidecar_key(key)).write_text(json.dumps(rec.to_json()), encoding="utf-8")
            segs.append(rec)
        end = start + timedelta(seconds=per_cam * SEGMENT_SECONDS)
        rng = TimeRange(start, end)
        footage.append(
            StayFootage(
                RoomStay(1, f"room-{c}", kind, start, end),
                rng,
                (CameraCoverage(cam, rng, tuple(segs), tuple(gaps), ()),),
                (),
            )
        )
    return {
        "footage": footage,
        "store": store,
        "source_bytes": sum(s.size for fp in footage for cov in fp.cameras for s in cov.segments),
        "t0": t0,
    }


def run_child(args: argparse.Namespace) -> None:
    """In the child: build the plan from the store's sidecars and export; print JSON stats."""
    from exporter.job import ExportOptions, run_export
    from exporter.plan import CaseInfo, ExportRequest, Officer, OfficerRole, SubjectInfo, build_plan
    from exporter.signing import generate_signing_key

    work = Path(args.work)
    built = build_store(work, args.hours, args.cameras, args.kbps) if args.build else None
    assert built is not None
    key = work / "key.pem"
    if not key.exists():
        generate_signing_key(key)
    footage = built["footage"]
    last = footage[-1].interval  # type: ignore[index]
    events = [CaseEvent("signed", EventType.TRANSCRIPT_SIGNED, last.end, None, 1)]
    req = ExportRequest(
        CaseInfo("BENCH-0001", "bench", "盗窃"),
        SubjectInfo(1, "测试", "0"),
        (Officer("甲", OfficerRole.INTERROGATOR), Officer("乙", OfficerRole.RECORDER)),
    )
    plan = build_plan(req, footage, events)  # type: ignore[arg-type]
    out = work / "out"
    shutil.rmtree(out, ignore_errors=True)
    from tests.exporter.scenario import DirReader

    t = time.monotonic()
    last_msg = [0.0]
    phase_start: dict[str, float] = {}

    def progress(f: float, msg: str) -> None:
        phase = next((p for p in PHASES if msg.startswith(p)), None)
        if phase is not None and phase not in phase_start:
            phase_start[phase] = time.monotonic()
        if time.monotonic() - last_msg[0] > 10:
            last_msg[0] = time.monotonic()
            print(f"  {f * 100:5.1f}% {msg}", file=sys.stderr, flush=True)

    options = ExportOptions(signing_key=key, media=args.media, g711_remux=not args.no_g711_remux)
    res = run_export(plan, DirReader(built["store"]), out, options, progress)  # type: ignore[arg-type]
    elapsed = time.monotonic() - t
    marks = [*sorted((v, k) for k, v in phase_start.items()), (t + elapsed, "end")]
    phases = {k: round(marks[i + 1][0] - v, 1) for i, (v, k) in enumerate(marks[:-1])}
    verify_seconds = None
    if args.verify:
        from exporter.verify import verify_images

        tv = time.monotonic()
        report = verify_images([*res.master_images, *res.working_images])
        verify_seconds = round(time.monotonic() - tv, 1)
        assert report.ok, report.problems
    written = sum(p.stat().st_size for p in res.directory.rglob("*") if p.is_file())
    # staging was written and removed: originals + MP4s + documents (= the manifest's bytes)
    written += int(res.summary["bytes"])
    rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "elapsed": elapsed,
                "written": written,
                "source_bytes": built["source_bytes"],
                "peak_rss_mb": rss_kb / 1024,
                "images": [str(p) for p in (*res.master_images, *res.working_images)],
                "phase_seconds": phases,
                "verify_seconds": verify_seconds,
                "summary": res.summary,
            }
        )
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hours", type=float, default=8)
    ap.add_argument("--cameras", type=int, default=4)
    ap.add_argument("--kbps", type=int, default=500)
    ap.add_argument("--media", default="bd25")
    ap.add_argument("--work", default="/tmp/vaudit-bench")
    ap.add_argument("--child", action="store_true")
    ap.add_argument("--build", action="store_true", default=True)
    ap.add_argument("--no-g711-remux", action="store_true", help="export without the G.711 remux (A/B)")
    ap.add_argument("--verify", action="store_true", help="also time vaudit verify over all images")
    args = ap.parse_args()
    if args.child:
        run_child(args)
        return
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [
            sys.executable,
            __file__,
            "--child",
            "--hours",
            str(args.hours),
            "--cameras",
            str(args.cameras),
            "--kbps",
            str(args.kbps),
            "--media",
            args.media,
            "--work",
            str(work),
            *(["--no-g711-remux"] if args.no_g711_remux else []),
            *(["--verify"] if args.verify else []),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    sys.stderr.write(proc.stderr[-3000:])
    stats = json.loads(proc.stdout.strip().splitlines()[-1])
    # cp of the same source bytes (dereferencing the hard links: real bytes), same disk, same run
    dst = work / "cp-copy"
    shutil.rmtree(dst, ignore_errors=True)
    subprocess.run(["sync"], check=True)
    t = time.monotonic()
    subprocess.run(["cp", "-r", str(work / "store"), str(dst)], check=True)
    subprocess.run(["sync"], check=True)
    cp_elapsed = time.monotonic() - t
    copied = sum(p.stat().st_size for p in dst.rglob("*") if p.is_file())
    shutil.rmtree(dst, ignore_errors=True)
    export_rate = stats["written"] / stats["elapsed"]
    cp_rate = copied / cp_elapsed
    hours = args.hours
    print(
        json.dumps(
            {
                "footage_hours": hours,
                "cameras": args.cameras,
                "video_kbps": args.kbps,
                "source_bytes": stats["source_bytes"],
                "export_seconds": round(stats["elapsed"], 1),
                "export_bytes_written": stats["written"],
                "export_MBps": round(export_rate / 1e6, 1),
                "cp_MBps": round(cp_rate / 1e6, 1),
                "ratio_vs_cp": round(export_rate / cp_rate, 2),
                "seconds_per_footage_hour": round(stats["elapsed"] / hours, 1),
                "peak_rss_mb": round(stats["peak_rss_mb"], 1),
                "phase_seconds": stats["phase_seconds"],
                "g711_remux_bytes": stats["summary"]["g711_remux_bytes"],
                "g711_remux_bytes_per_footage_hour": round(stats["summary"]["g711_remux_bytes"] / hours),
                "g711_remux_vs_source": round(
                    stats["summary"]["g711_remux_bytes"] / stats["source_bytes"], 3
                ),
                "verify_seconds": stats["verify_seconds"],
                "discs": stats["summary"]["discs"],
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
