"""A forger's disc, made as issue 16 describes: edit the disc's ``custody.json``, fix up every
hash that covers it (manifest entry, SHA256SUMS, SM3SUMS), re-sign the manifest with a new key of
one's own (new ``public_key.pem``, its fingerprint in the manifest), and rebuild the ISO. Every
hash and signature on such a disc is consistent: only the key gives it away."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

from exporter import manifest as mf
from exporter.iso_image import ImageFile, build_image
from exporter.signing import generate_signing_key, load_signing_key, public_key_info, sign


def forge_disc(extracted: Path, work: Path, label: str = "FORGED_M_1OF1") -> tuple[Path, Path, str]:
    """From an extracted disc: (the forged disc's folder, its ISO, the forger's key fingerprint)."""
    disc = work / "forged"
    shutil.copytree(extracted, disc)
    for p in disc.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    custody = json.loads((disc / "custody.json").read_text(encoding="utf-8"))
    custody["exported_by"] = "somebody else"
    custody["audit"] = []  # the views and the export request go
    (disc / "custody.json").write_bytes(mf.canonical_json(custody))

    key_path = work / "forger.pem"
    generate_signing_key(key_path)
    key = load_signing_key(key_path)
    pub = public_key_info(key)
    (disc / "public_key.pem").write_bytes(pub.pem)

    doc = json.loads((disc / mf.MANIFEST).read_text(encoding="utf-8"))
    for entry in doc["files"]:
        if entry["path"] in ("custody.json", "public_key.pem"):
            digest = mf.hash_file(disc / entry["path"])
            entry["size"], entry["sha256"], entry["sm3"] = digest.size, digest.sha256, digest.sm3
    doc["public_key"]["fingerprint_sha256"] = pub.fingerprint
    doc["custody"] = {k: v for k, v in custody.items() if k != "audit"}
    manifest_bytes = mf.canonical_json(doc)
    (disc / mf.MANIFEST).write_bytes(manifest_bytes)
    (disc / mf.SIGNATURE).write_bytes(sign(key, manifest_bytes))

    on_disc = sorted(p.relative_to(disc).as_posix() for p in disc.rglob("*") if p.is_file())
    listed = [p for p in on_disc if p not in (mf.SHA256SUMS, mf.SM3SUMS, mf.SIGNATURE)]
    digests = {p: mf.hash_file(disc / p) for p in listed}
    (disc / mf.SHA256SUMS).write_bytes(mf.sums_text((p, d.sha256) for p, d in digests.items()))
    (disc / mf.SM3SUMS).write_bytes(mf.sums_text((p, d.sm3) for p, d in digests.items()))

    image = work / f"{label}.iso"
    files = [ImageFile(p, disc / p) for p in on_disc]
    build_image(image, files, label, datetime(2024, 5, 1, 6, 0, tzinfo=UTC))
    return disc, image, pub.fingerprint
