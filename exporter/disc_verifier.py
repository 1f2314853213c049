#!/usr/bin/env python3
"""Verify this disc: every file against manifest.json and SHA256SUMS, and the manifest's signature.

Usage: python3 verify.py [DISC_ROOT]      (default: the folder this script is in)
       python3 verify.py --all DIR...       (every disc of a set, each folder one disc)
       python3 verify.py --expect-key FINGERPRINT [DISC_ROOT...]

Needs only Python 3.8+; the Ed25519 signature is checked when the ``cryptography`` package is
installed (pip install cryptography), otherwise the script says it was not checked.

A valid signature only says the disc is unchanged since someone signed it; whether that someone
is the centre is said by the key. Give the centre's key fingerprint (printed on the paper
recording statement 录音录像说明 handed over with the disc, or published by the centre) with
``--expect-key`` (spaces and colons are ignored): a disc signed by any other key fails. Without
it the fingerprint is printed, to be compared by eye.
Exit status 0: everything matches; 1: a problem was found (each problem names the file).

本脚本校验光盘上每个文件的大小、SHA-256 与 SM3 值以及清单签名。签名有效只说明光盘自签名后未被改动；
是否由办案中心签名要看公钥指纹：用 --expect-key 给出中心的公钥指纹（见纸质录音录像说明），
其他公钥签名的光盘校验失败。退出码 0 表示全部一致。
This file is also the exporter's checking core (exporter/verify.py feeds it files read from an
ISO image), so what the court runs and what the system runs are the same code.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import os
import sys
from collections.abc import Callable, Iterable
from typing import IO, Any

PER_DISC = ("manifest.json", "manifest.json.sig", "SHA256SUMS", "SM3SUMS", "disc.json", "disc.js")
CHUNK = 1024 * 1024


def _digests(fh: IO[bytes]) -> dict[str, Any]:
    sha = hashlib.sha256()
    try:
        sm3: Any = hashlib.new("sm3")
    except ValueError:  # OpenSSL without SM3: SHA-256 still decides
        sm3 = None
    size = 0
    while True:
        chunk = fh.read(CHUNK)
        if not chunk:
            break
        size += len(chunk)
        sha.update(chunk)
        if sm3 is not None:
            sm3.update(chunk)
    return {"size": size, "sha256": sha.hexdigest(), "sm3": sm3.hexdigest() if sm3 is not None else None}


def key_fingerprint(pem: bytes) -> str:
    body = b"".join(line for line in pem.splitlines() if line and not line.startswith(b"-----"))
    return hashlib.sha256(base64.b64decode(body)).hexdigest()


def grouped(fingerprint: str) -> str:
    """The fingerprint in groups of four hex digits, for comparing by eye with a printed one."""
    return " ".join(fingerprint[i:i + 4] for i in range(0, len(fingerprint), 4))


def normal_fingerprint(text: str) -> str | None:
    """A fingerprint as typed (any case; spaces, colons, dashes ignored), or None if it is not
    64 hex digits."""
    digits = "".join(c for c in text.lower() if c not in " :-\t")
    if len(digits) != 64 or any(c not in "0123456789abcdef" for c in digits):
        return None
    return digits


def check_signature(public_pem: bytes, manifest: bytes, sig: bytes) -> str | None:
    """None if valid; a message otherwise; 'unchecked' text if cryptography is missing."""
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
        from cryptography.hazmat.primitives.serialization import load_pem_public_key
    except ImportError:
        return "UNCHECKED: install the 'cryptography' package to check the Ed25519 signature"
    try:
        key = load_pem_public_key(public_pem)
        if not isinstance(key, Ed25519PublicKey):
            return "public_key.pem: not an Ed25519 key"
        key.verify(base64.b64decode(sig.strip()), manifest)
    except (InvalidSignature, ValueError):
        return "manifest.json: signature does not match (manifest.json.sig, public_key.pem)"
    return None


def _sums(text: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.decode("utf-8", "replace").splitlines():
        if "  " in line:
            digest, path = line.split("  ", 1)
            out[path.lstrip("*")] = digest.strip()
    return out


def check_disc(
    list_files: Callable[[], Iterable[str]],
    open_file: Callable[[str], IO[bytes]],
    label: str = "",
    expected_key: str | None = None,
) -> dict[str, Any]:
    """Check one disc given a way to list its files (POSIX paths) and open them; with
    ``expected_key`` (a normalised fingerprint) a disc signed by another key is a problem.

    Returns {"problems": [...], "notes": [...], "manifest": dict|None, "disc": dict|None,
    "files_checked": int, "fingerprint": str|None}.
    """
    pre = f"{label}: " if label else ""
    problems: list[str] = []
    notes: list[str] = []
    present = set(list_files())

    def read(path: str) -> bytes | None:
        if path not in present:
            problems.append(f"{pre}{path}: missing")
            return None
        with open_file(path) as fh:
            return fh.read()

    result: dict[str, Any] = {
        "problems": problems,
        "notes": notes,
        "manifest": None,
        "disc": None,
        "files_checked": 0,
        "fingerprint": None,
    }
    raw = read("manifest.json")
    if raw is None:
        return result
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except ValueError as exc:
        problems.append(f"{pre}manifest.json: not valid JSON ({exc})")
        return result
    result["manifest"] = manifest
    sig, pem = read("manifest.json.sig"), read("public_key.pem")
    if sig is not None and pem is not None:
        result["fingerprint"] = key_fingerprint(pem)
        expected_fp = manifest.get("public_key", {}).get("fingerprint_sha256")
        if expected_fp and expected_fp != result["fingerprint"]:
            problems.append(f"{pre}public_key.pem: fingerprint differs from the one in manifest.json")
        msg = check_signature(pem, raw, sig)
        if msg and msg.startswith("UNCHECKED"):
            notes.append(msg)
        elif msg:
            problems.append(pre + msg)
        if expected_key is not None and result["fingerprint"] != expected_key:
            problems.append(
                f"{pre}signed by key {grouped(result['fingerprint'])}, not by the expected key "
                f"{grouped(expected_key)}: this disc was not signed by the centre, or was re-signed "
                "(签名公钥与预期的中心公钥不一致)"
            )
    disc_raw = read("disc.json")
    disc: dict[str, Any] = json.loads(disc_raw.decode("utf-8")) if disc_raw else {}
    result["disc"] = disc
    copy, number = disc.get("copy"), disc.get("disc")
    hashed: dict[str, dict[str, Any]] = {}
    expected = [
        f
        for f in manifest.get("files", [])
        if copy in f.get("discs", {}) and (f.get("common") or f["discs"][copy] == number)
    ]
    for entry in expected:
        path = entry["path"]
        if path not in present:
            problems.append(f"{pre}{path}: missing from this disc")
            continue
        with open_file(path) as fh:
            got = hashed[path] = _digests(fh)
        result["files_checked"] += 1
        if got["size"] != entry["size"]:
            problems.append(f"{pre}{path}: size {got['size']} differs from manifest {entry['size']}")
        if got["sha256"] != entry["sha256"]:
            problems.append(f"{pre}{path}: SHA-256 differs from manifest")
        if got["sm3"] is not None and got["sm3"] != entry["sm3"]:
            problems.append(f"{pre}{path}: SM3 differs from manifest")
    listed = {f["path"] for f in expected}
    for path in sorted(present - listed - set(PER_DISC)):
        problems.append(f"{pre}{path}: on the disc but not in the manifest")
    if disc and sorted(disc.get("files", [])) != sorted(listed):
        problems.append(f"{pre}disc.json: its file list differs from the manifest's for this disc")
    for name, algo in (("SHA256SUMS", "sha256"), ("SM3SUMS", "sm3")):
        sums_raw = read(name)
        if sums_raw is None:
            continue
        sums = _sums(sums_raw)
        for path in sorted(set(sums) | listed | {"manifest.json", "disc.json", "disc.js"}):
            if path not in sums:
                problems.append(f"{pre}{path}: not listed in {name}")
                continue
            if path not in present:
                continue  # already reported
            if path not in hashed:
                with open_file(path) as fh:
                    hashed[path] = _digests(fh)
            digest = hashed[path][algo]
            if digest is not None and digest != sums[path]:
                problems.append(f"{pre}{path}: {algo.upper()} differs from {name}")
    return result


def _walk(root: str) -> list[str]:
    out = []
    for base, _dirs, names in os.walk(root):
        for name in names:
            full = os.path.join(base, name)
            out.append(os.path.relpath(full, root).replace(os.sep, "/"))
    return out


def _open(root: str, rel: str) -> IO[bytes]:
    return open(os.path.join(root, rel), "rb")


def main(argv: list[str]) -> int:
    args = list(argv)
    expected: str | None = None
    if "--expect-key" in args:
        at = args.index("--expect-key")
        given = args[at + 1] if at + 1 < len(args) else ""
        expected = normal_fingerprint(given)
        if expected is None:
            print(f"--expect-key wants the 64 hex digits of a SHA-256 key fingerprint, not {given!r}")
            return 2
        del args[at:at + 2]
    roots = [a for a in args if a != "--all"] or [os.path.dirname(os.path.abspath(__file__))]
    failed = False
    for root in roots:
        res = check_disc(functools.partial(_walk, root), functools.partial(_open, root), root, expected)
        disc = res["disc"] or {}
        print(
            f"== {root}: {disc.get('label', '?')} ({disc.get('copy', '?')} copy, disc "
            f"{disc.get('disc', '?')}/{disc.get('discs', '?')}), {res['files_checked']} files checked"
        )
        if res["fingerprint"]:
            print(f"   key fingerprint / 公钥指纹 SHA-256: {grouped(res['fingerprint'])}")
            if expected is None:
                print("   note: compare it with the fingerprint on the paper recording statement, or give it with "
                      "--expect-key / 请与纸质录音录像说明上的公钥指纹核对，或用 --expect-key 给出")
            elif res["fingerprint"] == expected:
                print("   the centre's key / 与中心公钥一致")
        for note in res["notes"]:
            print(f"   note: {note}")
        for problem in res["problems"]:
            print(f"   PROBLEM / 问题: {problem}")
        failed = failed or bool(res["problems"])
    print("RESULT / 结果: " + ("FAILED 校验失败" if failed else "OK 校验通过"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
