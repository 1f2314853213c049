"""``verify_images``: check disc images the way a court would, without mounting them.

Each image is read with pycdlib (through its UDF view, falling back to Rock Ridge/Joliet
names) and handed to the same checking core that ships on the disc as ``verify.py``
(exporter/disc_verifier.py): sizes, SHA-256 and SM3 against the signed manifest, SHA256SUMS and
SM3SUMS, and the Ed25519 signature. With ``index_lookup`` (storage key -> capture-time SHA-256,
e.g. from the index), each original's hash and each video's source hashes are also checked
against what the index holds; with ``record_lookup`` (storage key -> the SHA-256 in the
segment's own stored sidecar), against what the recorder wrote when it captured the footage:
the index alone can be edited.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import pycdlib
from pycdlib.pycdlibexception import PyCdlibException

from exporter import disc_verifier

log = logging.getLogger(__name__)

IndexLookup = Callable[[str], str | None]


@dataclass(slots=True)
class VerifyReport:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    files_checked: int = 0
    discs: list[dict[str, Any]] = field(default_factory=list)
    fingerprint: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


class _Image:
    """Read-only file access to one ISO image through pycdlib."""

    def __init__(self, path: Path) -> None:
        self.iso = pycdlib.PyCdlib()
        self.iso.open(str(path))
        self.facade_kind = "udf" if self.iso.has_udf() else "rr" if self.iso.has_rock_ridge() else "joliet"

    def _facade(self) -> Any:
        if self.facade_kind == "udf":
            return self.iso.get_udf_facade()
        if self.facade_kind == "rr":
            return self.iso.get_rock_ridge_facade()
        return self.iso.get_joliet_facade()

    def list(self) -> list[str]:
        facade = self._facade()
        out: list[str] = []
        for base, _dirs, files in facade.walk("/"):
            for name in files:
                full = f"{base.rstrip('/')}/{name}"
                out.append(full.lstrip("/"))
        return out

    def open(self, rel: str) -> IO[bytes]:
        """pycdlib's reader for the file's extent (a context manager with read())."""
        handle: IO[bytes] = self._facade().open_file_from_iso("/" + rel)
        return handle

    def close(self) -> None:
        self.iso.close()


def verify_images(
    paths: Sequence[Path | str],
    index_lookup: IndexLookup | None = None,
    record_lookup: IndexLookup | None = None,
    expected_key: str | None = None,
) -> VerifyReport:
    """Check every image; every problem in the report names its image and file. With
    ``expected_key`` (a fingerprint, normalised by :func:`disc_verifier.normal_fingerprint`) a
    disc signed by any other key fails: a valid signature by an unknown key proves nothing."""
    report = VerifyReport()
    manifests: dict[bytes, list[str]] = {}
    for p in paths:
        path = Path(p)
        try:
            img = _Image(path)
        except (OSError, PyCdlibException) as exc:
            report.problems.append(f"{path.name}: cannot read the image ({exc})")
            continue
        try:
            res = disc_verifier.check_disc(img.list, img.open, path.name, expected_key)
            report.problems.extend(res["problems"])
            report.notes.extend(res["notes"])
            report.files_checked += res["files_checked"]
            if res["disc"]:
                report.discs.append(
                    {
                        "image": str(path),
                        **{k: v for k, v in res["disc"].items() if k not in ("set", "files")},
                    }
                )
            report.fingerprint = report.fingerprint or res["fingerprint"]
            if res["manifest"] is not None:
                with img.open("manifest.json") as fh:
                    manifests.setdefault(fh.read(), []).append(path.name)
                if index_lookup is not None:
                    _check_capture(
                        res["manifest"], res["disc"] or {}, index_lookup, path.name, report, record_lookup
                    )
        except PyCdlibException as exc:
            report.problems.append(f"{path.name}: unreadable image structure ({exc})")
        finally:
            img.close()
    if len(manifests) > 1:
        report.problems.append(
            "the images carry different manifests: " + "; ".join(", ".join(v) for v in manifests.values())
        )
    _check_set(report)
    return report


def _check_capture(
    manifest: dict[str, Any],
    disc: dict[str, Any],
    lookup: IndexLookup,
    image: str,
    report: VerifyReport,
    record_lookup: IndexLookup | None = None,
) -> None:
    copy, number = disc.get("copy"), disc.get("disc")
    for entry in manifest.get("files", []):
        if copy not in entry.get("discs", {}) or entry["discs"][copy] not in (0, number):
            continue
        for src in entry.get("sources", []):
            recorded = record_lookup(src["key"]) if record_lookup is not None else None
            if recorded is not None and recorded != src["sha256"]:
                report.problems.append(
                    f"{image}: {entry['path']}: source {src['key']} capture hash {src['sha256']} differs "
                    f"from the recorder's stored sidecar ({recorded})"
                )
            captured = lookup(src["key"])
            if captured is None:
                report.notes.append(f"{image}: {entry['path']}: source {src['key']} unknown to the index")
            elif captured != src["sha256"]:
                report.problems.append(
                    f"{image}: {entry['path']}: source {src['key']} capture hash "
                    f"{src['sha256']} differs from the index ({captured})"
                )
            elif entry["role"] == "original" and entry["sha256"] != captured:
                report.problems.append(f"{image}: {entry['path']}: differs from its capture hash")


def _check_set(report: VerifyReport) -> None:
    """When every disc of a copy is given, say if one is missing or given twice."""
    by_copy: dict[str, list[dict[str, Any]]] = {}
    for d in report.discs:
        by_copy.setdefault(str(d.get("copy")), []).append(d)
    for copy, discs in by_copy.items():
        numbers = sorted(int(d["disc"]) for d in discs)
        total = int(discs[0].get("discs", 0))
        if len(numbers) != len(set(numbers)):
            report.problems.append(f"{copy} copy: a disc was given twice ({numbers})")
        missing = sorted(set(range(1, total + 1)) - set(numbers))
        if missing:
            report.notes.append(
                f"{copy} copy: disc(s) {missing} of {total} not given; their files were not checked"
            )
