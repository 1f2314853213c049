"""Disc images: ISO 9660 (level 4 names) + Joliet + Rock Ridge + UDF 2.60, via pycdlib.

Reproducible: pycdlib stamps ``time.time()`` and a random UDF unique id into its structures, so
while an image is built those module globals are replaced by the export's reference time and a
seeded generator (under a lock: pycdlib is not re-entrant about this). Files are added in sorted
order with fixed modes and times. The same inputs therefore give byte-identical images.

Windows reads UDF or Joliet, Linux Rock Ridge, anything else plain ISO 9660; level 4 keeps the
original (long, lower-case) names on the ISO 9660 side too. UDF 2.60 carries files of 4 GiB and
more, though the remuxer keeps every video below that anyway.
"""

from __future__ import annotations

import contextlib
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pycdlib

from exporter.errors import DiscCapacityError, ExportCancelled

log = logging.getLogger(__name__)

SECTOR = 2048
MEDIA_BYTES: dict[str, int] = {
    "dvd5": 4_707_319_808,
    "dvd9": 8_547_991_552,
    "bd25": 25_025_314_816,
    "bd50": 50_050_629_632,
}
# ISO/Joliet/RR/UDF descriptors, path tables, anchors and a safety margin, per image.
FIXED_OVERHEAD = 2 * 1024 * 1024
PER_ENTRY_OVERHEAD = 3 * SECTOR  # UDF file entry + ISO/Joliet directory record space (generous)

_LOCK = threading.Lock()
_PATCHED = (
    "pycdlib.pycdlib",
    "pycdlib.headervd",
    "pycdlib.udf",
    "pycdlib.dates",
    "pycdlib.inplaceeditor",
    "pycdlib.dr",
    "pycdlib.rockridge",
)


def media_capacity(media: str | int) -> int:
    if isinstance(media, int):
        return media
    if media.isdigit():
        return int(media)
    try:
        return MEDIA_BYTES[media.lower()]
    except KeyError:
        raise DiscCapacityError(
            f"unknown disc medium {media!r}; use one of {sorted(MEDIA_BYTES)} or a byte count"
        ) from None


def disc_footprint(size: int) -> int:
    return -(-size // SECTOR) * SECTOR + PER_ENTRY_OVERHEAD


def volume_label(case_number: str, copy: str, disc: int, discs: int) -> str:
    """ISO 9660 d-characters, at most 32: case number, copy letter, disc n of N (e.g. A2024_001_M_1OF2)."""
    base = re.sub(r"[^A-Z0-9_]", "_", case_number.upper())
    tail = f"_{copy[0].upper()}_{disc}OF{discs}"
    return base[: 32 - len(tail)] + tail


@dataclass(frozen=True, slots=True)
class ImageFile:
    disc_path: str  # POSIX path on the disc
    local: Path


@contextlib.contextmanager
def _frozen_clock(reference: datetime, seed: int) -> Iterator[None]:
    import importlib

    stamp = reference.timestamp()
    fake_time = SimpleNamespace(
        time=lambda: stamp,
        localtime=time.gmtime,
        gmtime=time.gmtime,
        mktime=time.mktime,
        timezone=0,
        altzone=0,
        daylight=0,
        strftime=time.strftime,
    )
    rng = random.Random(seed)
    with _LOCK:
        saved: list[tuple[Any, str, Any]] = []
        for name in _PATCHED:
            try:
                mod = importlib.import_module(name)
            except ImportError:
                continue
            for attr, value in (("time", fake_time), ("random", rng)):
                if hasattr(mod, attr):
                    saved.append((mod, attr, getattr(mod, attr)))
                    setattr(mod, attr, value)
        try:
            yield
        finally:
            for mod, attr, value in saved:
                setattr(mod, attr, value)


def _widen_label(iso: Any, label: str) -> None:
    from pycdlib import udf as udfmod

    iso.pvd.volume_identifier = label.encode("ascii").ljust(32, b" ")[:32]
    pad = udfmod._ostaunicode_zero_pad
    for descs in (iso.udf_main_descs, iso.udf_reserve_descs):
        for pvd in descs.pvds:
            pvd.vol_ident = pad(label[:30], 32)
        for lv in descs.logical_volumes:
            lv.logical_vol_ident = pad(label, 128)


def build_image(
    out: Path,
    files: Sequence[ImageFile],
    label: str,
    reference: datetime,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Write one image; returns its size. ``progress(done, total)`` may raise to cancel."""
    stamp = reference.timestamp()
    seed = int.from_bytes(label.encode()[:8].ljust(8, b"\0"), "big") ^ int(stamp)
    ordered = sorted(files, key=lambda f: f.disc_path)
    dirs = sorted(
        {"/".join(f.disc_path.split("/")[:i]) for f in ordered for i in range(1, f.disc_path.count("/") + 1)},
        key=lambda d: (d.count("/"), d),
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    with _frozen_clock(reference, seed):
        iso = pycdlib.PyCdlib()
        # Joliet's volume identifier holds 16 UCS-2 characters; ISO 9660 and UDF hold 32. pycdlib uses
        # one string for all, so create with the short form and widen the ISO/UDF descriptors after.
        iso.new(
            interchange_level=4,
            joliet=3,
            rock_ridge="1.09",
            udf="2.60",
            vol_ident=label[-16:],
            sys_ident="LINUX",
            app_ident_str="VIDEO-AUDIT",
            preparer_ident_str="VIDEO-AUDIT EXPORTER",
        )
        _widen_label(iso, label)
        try:
            for d in dirs:
                name = d.rsplit("/", 1)[-1]
                iso.add_directory(
                    f"/{d}",
                    rr_name=name,
                    joliet_path=f"/{d}",
                    udf_path=f"/{d}",
                    file_mode=0o040555,
                    creation_time=stamp,
                )
            for f in ordered:
                name = f.disc_path.rsplit("/", 1)[-1]
                iso.add_file(
                    str(f.local),
                    f"/{f.disc_path}",
                    rr_name=name,
                    joliet_path=f"/{f.disc_path}",
                    udf_path=f"/{f.disc_path}",
                    file_mode=0o100444,
                    creation_time=stamp,
                )

            def cb(done: int, total: int, _opaque: Any) -> None:
                if progress is not None:
                    progress(done, total)

            iso.write(str(out), blocksize=1024 * 1024, progress_cb=cb)
        except ExportCancelled:
            out.unlink(missing_ok=True)
            raise
        finally:
            iso.close()
    return out.stat().st_size


def assign_discs(sizes: Sequence[int], fixed_bytes: int, capacity: int, names: Sequence[str]) -> list[int]:
    """Disc number (1-based) per file, in the given order (stage order keeps a stage together).

    ``fixed_bytes`` is what every disc carries anyway (page, statement, manifest, ...). A file that
    cannot fit on an empty disc is refused with its name rather than silently split.
    """
    room = capacity - FIXED_OVERHEAD - fixed_bytes
    out: list[int] = []
    disc, used = 1, 0
    for size, name in zip(sizes, names, strict=True):
        need = disc_footprint(size)
        if need > room:
            raise DiscCapacityError(
                f"{name} ({size} bytes) does not fit on one disc of {capacity} bytes "
                f"({max(room, 0)} bytes free after the per-disc files); choose a larger medium",
                path=name,
                size=size,
                capacity=capacity,
            )
        if used + need > room:
            disc, used = disc + 1, 0
        used += need
        out.append(disc)
    return out
