"""Local storage cost per segment: ``LocalStorage.put_file`` + ``verify`` (what the uploader does for
every closed segment), CPU seconds and bytes read per stored MB.

    .venv/bin/python bench/store_local.py --files 40 --mb 5

Baseline in the same run: a plain ``shutil.copyfile`` + fsync of the same files (the least any
durable copy costs). Reported: CPU s per GB for both and their ratio, and what /proc/self/io counts
as read from files (rchar) per stored byte (1.0 would be reading each source once and nothing else).
The files are in the page cache (written just before), as a just-closed segment is.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.storage import LocalStorage


def _rchar() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    return 0


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument(
        "--mb", type=float, default=5.0, help="size of each file (a 10 s 4 Mbit/s segment is 5 MB)"
    )
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vaudit-store-bench-"))
    try:
        src = work / "spool"
        src.mkdir()
        files = []
        for i in range(args.files):
            p = src / f"seg{i:04d}.ts"
            p.write_bytes(os.urandom(int(args.mb * 2**20)))
            files.append((p, hashlib.sha256(p.read_bytes()).hexdigest()))
        total = sum(p.stat().st_size for p, _ in files)
        ours_cpu, base_cpu, ours_read = [], [], []
        for r in range(args.rounds):
            store = LocalStorage(work / f"store{r}")
            c0, r0 = _cpu(), _rchar()
            for p, sha in files:
                store.put_file(f"cam/{p.name}", p, sha)
                store.verify(f"cam/{p.name}", p.stat().st_size, sha)
            ours_cpu.append(_cpu() - c0)
            ours_read.append((_rchar() - r0) / total)
            dest = work / f"plain{r}"
            dest.mkdir()
            c0 = _cpu()
            for p, _ in files:
                shutil.copyfile(p, dest / p.name)
                fd = os.open(dest / p.name, os.O_RDONLY)
                os.fsync(fd)
                os.close(fd)
            base_cpu.append(_cpu() - c0)
        gb = total / 2**30
        ours, base = min(ours_cpu) / gb, min(base_cpu) / gb
        print(
            f"{args.files} files x {args.mb} MB, best of {args.rounds} rounds ({time.strftime('%H:%M:%S')}, "
            f"load {os.getloadavg()[0]:.1f})"
        )
        print(
            f"  LocalStorage put_file + verify: {ours:.2f} CPU s per GB, {min(ours_read):.2f} bytes read per byte stored"
        )
        print(f"  plain copy + fsync (baseline):  {base:.2f} CPU s per GB")
        print(f"  ratio: {ours / base:.2f}x the baseline's CPU")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
