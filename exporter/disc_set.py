"""The disc set: on which disc of each copy every file goes, and each disc's own files
(``disc.json``, ``disc.js``, the manifest and its signature, ``SHA256SUMS``, ``SM3SUMS``) and its
ISO/UDF image.

Files are packed in the order given (stage order keeps a stage together); the files of a group
stay on one disc; the per-disc files (page, statement, reports, verifier, key) are on every disc.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from exporter import manifest
from exporter.errors import DiscCapacityError
from exporter.iso_image import ImageFile, assign_discs, build_image, disc_footprint, volume_label
from exporter.manifest import FileEntry

log = logging.getLogger(__name__)


@dataclass(slots=True)
class FileGroup:
    """Files that must sit on the same disc (a video with its text tracks; a segment with its sidecar)."""

    kind: str  # "video" | "original" (originals and their remux go only on copies with originals)
    entries: list[FileEntry]


def assign(
    groups: Sequence[FileGroup],
    common: Sequence[FileEntry],
    with_originals: Mapping[str, bool],
    capacity: int,
    fixed: int,
) -> dict[str, int]:
    """Set each entry's disc number per copy (0: every disc); returns the number of discs per copy."""
    copies: dict[str, int] = {}
    for copy, originals in with_originals.items():
        chosen = [g for g in groups if g.kind == "video" or originals]
        sizes = [sum(disc_footprint(e.size) for e in g.entries) for g in chosen]
        numbers = assign_discs(sizes, fixed, capacity, [g.entries[0].path for g in chosen])
        for g, n in zip(chosen, numbers, strict=True):
            for e in g.entries:
                e.discs[copy] = n
        copies[copy] = max(numbers, default=1)
        for e in common:
            e.discs[copy] = 0
    return copies


def write_images(
    copies: Mapping[str, int],
    entries: Sequence[FileEntry],
    manifest_bytes: bytes,
    signature: bytes,
    content: Path,
    staging: Path,
    out_dir: Path,
    ids: tuple[str, str],
    ref: datetime,
    capacity: int,
    progress: Callable[[float, str], None],
) -> dict[str, list[Path]]:
    """Every disc image of every copy; ``ids`` is (case number, export id).

    ``progress(fraction of all images, message)`` is also where the caller cancels.
    """
    case_number, export_id = ids
    images: dict[str, list[Path]] = {"master": [], "working": []}
    total_discs = sum(copies.values())
    built = 0
    for copy, count in copies.items():
        for n in range(1, count + 1):
            label = volume_label(case_number, copy, n, count)
            disc_dir = staging / f"{copy}-{n}"
            disc_dir.mkdir(parents=True)
            on_disc = [e for e in entries if copy in e.discs and e.discs[copy] in (0, n)]
            where = {e.path: e.discs[copy] for e in entries if copy in e.discs}
            disc_info = {
                "label": label,
                "copy": copy,
                "disc": n,
                "discs": count,
                "export_id": export_id,
                "case_number": case_number,
                "files": sorted(e.path for e in on_disc),
                "set": [
                    {
                        "disc": i,
                        "label": volume_label(case_number, copy, i, count),
                        "files": sorted(e.path for e in entries if e.discs.get(copy) == i),
                    }
                    for i in range(1, count + 1)
                ],
            }
            (disc_dir / manifest.DISC_JSON).write_bytes(manifest.canonical_json(disc_info))
            disc_js = {"copy": copy, "disc": n, "discs": count, "label": label, "where": where}
            (disc_dir / manifest.DISC_JS).write_text(
                "window.DISC = " + json.dumps(disc_js, ensure_ascii=False, sort_keys=True) + ";\n",
                encoding="utf-8",
            )
            (disc_dir / manifest.MANIFEST).write_bytes(manifest_bytes)
            (disc_dir / manifest.SIGNATURE).write_bytes(signature)
            extra = [manifest.MANIFEST, manifest.DISC_JSON, manifest.DISC_JS]
            local = {p: manifest.hash_file(disc_dir / p) for p in extra}
            rows256 = [(e.path, e.sha256) for e in on_disc] + [(p, d.sha256) for p, d in local.items()]
            rows_sm3 = [(e.path, e.sm3) for e in on_disc] + [(p, d.sm3) for p, d in local.items()]
            (disc_dir / manifest.SHA256SUMS).write_bytes(manifest.sums_text(rows256))
            (disc_dir / manifest.SM3SUMS).write_bytes(manifest.sums_text(rows_sm3))
            files = [ImageFile(e.path, content / e.path) for e in on_disc]
            files += [ImageFile(p, disc_dir / p) for p in manifest.PER_DISC_FILES]
            out = out_dir / copy / f"{label}.iso"

            def img_progress(done: int, total: int, b: int = built, lbl: str = label) -> None:
                progress((b + done / max(total, 1)) / total_discs, f"writing image {lbl}")

            size = build_image(out, files, label, ref, img_progress)
            if size > capacity:
                raise DiscCapacityError(
                    f"{out.name} is {size} bytes, over the medium's {capacity}",
                    image=str(out),
                    size=size,
                    capacity=capacity,
                )
            images[copy].append(out)
            built += 1
    return images
