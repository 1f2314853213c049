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

Where the manifest records a file's G.711 sound (originals and their Matroska remux in
originals-with-sound/), the sound is also re-derived from the file itself (MPEG-TS private PES,
Matroska audio blocks) and compared with the manifest, and each remux with its originals: the
playable copy cannot carry other sound than the original recording.

本脚本校验光盘上每个文件的大小、SHA-256 与 SM3 值以及清单签名，并核对带声音的原始录像转封装文件
（originals-with-sound/）中的 G.711 声音与原始录像逐字节相同。签名有效只说明光盘自签名后未被改动；
是否由办案中心签名要看公钥指纹：用 --expect-key 给出中心的公钥指纹（见纸质录音录像说明），
其他公钥签名的光盘校验失败。退出码 0 表示全部一致。
This file is also the exporter's checking core (exporter/verify.py feeds it files read from an
ISO image), so what the court runs and what the system runs are the same code.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import io
import json
import os
import struct
import sys
from collections.abc import Callable, Iterable
from typing import IO, Any

PER_DISC = ("manifest.json", "manifest.json.sig", "SHA256SUMS", "SM3SUMS", "disc.json", "disc.js")
CHUNK = 1024 * 1024


def _digests(fh: IO[bytes], sink: Callable[[bytes], None] | None = None) -> dict[str, Any]:
    """Size, SHA-256 and SM3 of a file in one pass; ``sink`` sees every chunk too."""
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
        if sink is not None:
            sink(chunk)
    return {"size": size, "sha256": sha.hexdigest(), "sm3": sm3.hexdigest() if sm3 is not None else None}


def key_fingerprint(pem: bytes) -> str:
    body = b"".join(line for line in pem.splitlines() if line and not line.startswith(b"-----"))
    return hashlib.sha256(base64.b64decode(body)).hexdigest()


def grouped(fingerprint: str) -> str:
    """The fingerprint in groups of four hex digits, for comparing by eye with a printed one."""
    return " ".join(fingerprint[i : i + 4] for i in range(0, len(fingerprint), 4))


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


# --- G.711 sound: re-derived from the files themselves ------------------------------------------

TS_PACKET = 188
PRIVATE_DATA = 0x06  # stream_type the recorder's TS muxer gives G.711
WAVE_TAGS = {6: "pcm_alaw", 7: "pcm_mulaw"}  # WAVEFORMATEX format tags in Matroska's A_MS/ACM


class TsPrivateStream:
    """The payload of an MPEG-TS's first private-data PES stream, fed in chunks.

    What a TS demuxer hands out for it (libavformat's ``bin_data`` packets): PAT -> PMT -> the
    first elementary stream of stream_type 0x06, its PES packets without their headers. A PES
    header split over TS packets and multi-packet PSI sections are reassembled.
    """

    def __init__(self, sink: Callable[[bytes], None]) -> None:
        self.sink = sink
        self._rest = b""
        self._pmt_pids: set[int] = set()
        self._sections: dict[int, bytearray] = {}
        self.pid: int | None = None
        self._head: bytearray | None = None  # PES bytes until its header is complete
        self._left = -1  # payload bytes the PES length still allows (-1: unbounded)
        self.error: Exception | None = None

    def feed(self, chunk: bytes) -> None:
        """Called while the file is hashed: a parse error is kept for ``close``, not raised."""
        if self.error is not None:
            return
        data = self._rest + chunk
        end = len(data) - len(data) % TS_PACKET
        view = memoryview(data)
        try:
            for off in range(0, end, TS_PACKET):
                if data[off] != 0x47:
                    raise ValueError("not an MPEG-TS packet (sync byte lost)")
                # Most packets are video: skip them without a call (this runs while hashing).
                pid = ((data[off + 1] & 0x1F) << 8) | data[off + 2]
                if pid == self.pid or pid == 0 or (self.pid is None and pid in self._pmt_pids):
                    self._packet(pid, view[off : off + TS_PACKET])
        except (ValueError, IndexError) as exc:
            self.error = exc
        self._rest = data[end:]

    def _packet(self, pid: int, p: memoryview) -> None:
        start = bool(p[1] & 0x40)
        control = (p[3] >> 4) & 3
        i = 5 + p[4] if control & 2 else 4
        if not control & 1 or i >= TS_PACKET:
            return
        payload = p[i:]
        if pid == self.pid:
            self._pes(payload, start)
        else:
            self._psi(pid, payload, start)

    def _psi(self, pid: int, payload: memoryview, start: bool) -> None:
        if start:
            self._sections[pid] = bytearray(payload[1 + payload[0] :])
        elif pid in self._sections:
            self._sections[pid] += payload
        sec = self._sections.get(pid)
        if sec is None or len(sec) < 3 or len(sec) < 3 + (((sec[1] & 0x0F) << 8) | sec[2]):
            return
        del self._sections[pid]
        end = 3 + (((sec[1] & 0x0F) << 8) | sec[2]) - 4  # CRC_32 excluded
        if sec[0] == 0x00:  # PAT: program_number, PMT PID
            for j in range(8, end, 4):
                if (sec[j] << 8) | sec[j + 1]:
                    self._pmt_pids.add(((sec[j + 2] & 0x1F) << 8) | sec[j + 3])
        elif sec[0] == 0x02:  # PMT: the elementary streams after the program descriptors
            j = 12 + (((sec[10] & 0x0F) << 8) | sec[11])
            while j + 5 <= end and self.pid is None:
                if sec[j] == PRIVATE_DATA:
                    self.pid = ((sec[j + 1] & 0x1F) << 8) | sec[j + 2]
                j += 5 + (((sec[j + 3] & 0x0F) << 8) | sec[j + 4])

    def _pes(self, payload: memoryview, start: bool) -> None:
        if start:
            self._head, self._left = bytearray(), -1
        if self._head is not None:
            self._head += payload
            if len(self._head) < 9 or len(self._head) < 9 + self._head[8]:
                return
            head, self._head = self._head, None
            if head[:3] != b"\x00\x00\x01":
                raise ValueError(f"PID {self.pid}: PES packet without a start code")
            length = (head[4] << 8) | head[5]
            self._left = length - 3 - head[8] if length else -1
            payload = memoryview(bytes(head[9 + head[8] :]))
        if self._left >= 0:
            payload = payload[: self._left]
            self._left -= len(payload)
        if len(payload):
            self.sink(bytes(payload))

    def close(self) -> None:
        if self.error is not None:
            raise ValueError(str(self.error))
        if self._rest:
            raise ValueError(f"{len(self._rest)} bytes after the last whole TS packet")
        if self.pid is None:
            raise ValueError("no private-data stream (stream_type 0x06) in the PMT")


_MKV_MASTERS = {0x18538067, 0x1654AE6B, 0xAE, 0xE1, 0x1F43B675, 0xA0}  # Segment .. BlockGroup
_MKV_BLOCKS = {0xA3, 0xA1}  # SimpleBlock, Block
_MKV_TRACK_FIELDS = {0xD7: "number", 0x83: "type", 0x86: "codec_id", 0x63A2: "private", 0xB5: "rate"}


def _vint(fh: IO[bytes], keep_marker: bool) -> tuple[int, int] | None:
    first = fh.read(1)
    if not first:
        return None
    b = first[0]
    length = 1
    while length <= 8 and not b & (0x80 >> (length - 1)):
        length += 1
    if length > 8:
        raise ValueError("invalid EBML length")
    rest = fh.read(length - 1)
    if len(rest) != length - 1:
        raise ValueError("file ends inside an EBML element header")
    value = b if keep_marker else b & (0xFF >> length)
    for x in rest:
        value = (value << 8) | x
    return value, length


def _read(fh: IO[bytes], n: int) -> bytes:
    data = fh.read(n)
    if len(data) != n:
        raise ValueError("file ends inside an EBML element")
    return data


def mkv_audio(fh: IO[bytes], sink: Callable[[bytes], None]) -> dict[str, Any]:
    """Walk a Matroska file; every frame of its first audio track goes to ``sink`` in file order.

    Returns the audio track's codec (``pcm_alaw``/``pcm_mulaw`` for A_MS/ACM G.711, else its
    CodecID) and sample rate. Video blocks are skipped with seeks, so this reads little more
    than the sound.
    """
    tracks: list[dict[str, Any]] = []
    audio: dict[str, Any] | None = None
    while True:
        head = _vint(fh, keep_marker=True)
        if head is None:
            break
        eid = head[0]
        size_v = _vint(fh, keep_marker=False)
        if size_v is None:
            raise ValueError("file ends inside an EBML element header")
        size, size_len = size_v
        unknown = size == (1 << (7 * size_len)) - 1
        if eid in _MKV_MASTERS:
            if eid == 0xAE:
                tracks.append({})
            continue  # descend: children follow (a master of unknown size is fine too)
        if unknown:
            raise ValueError(f"EBML element 0x{eid:X} of unknown size")
        if eid in _MKV_TRACK_FIELDS and tracks:
            raw = _read(fh, size)
            key = _MKV_TRACK_FIELDS[eid]
            if key == "codec_id":
                tracks[-1][key] = raw.rstrip(b"\x00").decode("ascii", "replace")
            elif key == "private":
                tracks[-1][key] = raw
            elif key == "rate":
                tracks[-1][key] = int(struct.unpack(">f" if size == 4 else ">d", raw)[0])
            else:
                tracks[-1][key] = int.from_bytes(raw, "big")
        elif eid in _MKV_BLOCKS:
            if audio is None:
                audio = next((t for t in tracks if t.get("type") == 2), None)
                if audio is None:
                    raise ValueError("a block before any audio track is declared")
            track = _vint(fh, keep_marker=False)
            if track is None:
                raise ValueError("file ends inside a block")
            flags = _read(fh, 3)[2]
            frame = size - track[1] - 3
            if track[0] != audio.get("number"):
                fh.seek(frame, 1)
                continue
            if flags & 0x06:
                raise ValueError("laced audio blocks (this verifier reads unlaced blocks only)")
            sink(_read(fh, frame))
        else:
            fh.seek(size, 1)
    if audio is None:
        audio = next((t for t in tracks if t.get("type") == 2), None)
    if audio is None:
        raise ValueError("no audio track")
    codec = audio.get("codec_id", "")
    private = audio.get("private", b"")
    if codec == "A_MS/ACM" and len(private) >= 8:
        tag, channels, rate = struct.unpack("<HHI", private[:8])
        codec = WAVE_TAGS.get(tag, f"A_MS/ACM tag {tag}")
        return {"codec": codec, "sample_rate": rate, "channels": channels}
    return {"codec": codec, "sample_rate": audio.get("rate"), "channels": None}


class _Slices:
    """Hashes a byte stream in consecutive slices of the given sizes (the last takes any excess)."""

    def __init__(self, sizes: list[int]) -> None:
        self.sizes = sizes or [0]
        self.done: list[tuple[int, str]] = []
        self._sha, self._n = hashlib.sha256(), 0
        self.whole, self.total = hashlib.sha256(), 0

    def feed(self, data: bytes) -> None:
        self.whole.update(data)
        self.total += len(data)
        while data:
            i = len(self.done)
            room = self.sizes[i] - self._n if i < len(self.sizes) - 1 else len(data)
            take = data[:room]
            self._sha.update(take)
            self._n += len(take)
            data = data[room:]
            if data or (i < len(self.sizes) - 1 and self._n == self.sizes[i]):
                self._next()

    def _next(self) -> None:
        self.done.append((self._n, self._sha.hexdigest()))
        self._sha, self._n = hashlib.sha256(), 0

    def result(self) -> list[tuple[int, str]]:
        out = list(self.done)
        while len(out) < len(self.sizes):
            out.append((self._n, self._sha.hexdigest()))
            self._sha, self._n = hashlib.sha256(), 0
        return out


def _g711_sink(entry: dict[str, Any]) -> tuple[_Slices, TsPrivateStream] | None:
    """For an original MPEG-TS whose sound the manifest records: a parser fed while hashing."""
    if not entry.get("g711") or entry.get("role") != "original":
        return None
    slices = _Slices([int(entry["g711"]["bytes"])])
    return slices, TsPrivateStream(slices.feed)


def _check_g711(
    entry: dict[str, Any],
    by_path: dict[str, dict[str, Any]],
    open_file: Callable[[str], IO[bytes]],
    ts: tuple[_Slices, TsPrivateStream] | None,
    pre: str,
) -> list[str]:
    """Problems with the G.711 sound of one file on this disc (an original or its remux)."""
    g, path = entry["g711"], entry["path"]
    try:
        if ts is not None:
            ts[1].close()
            slices = ts[0]
        else:
            slices = _Slices([int(p["bytes"]) for p in g.get("parts", [])])
            with open_file(path) as fh:
                # An image reader's raw file reads a block per call: the walk's small reads and
                # short skips need a buffer (3.5x faster through pycdlib, measured).
                info = mkv_audio(
                    io.BufferedReader(fh, CHUNK) if isinstance(fh, io.RawIOBase) else fh, slices.feed
                )
            if (info["codec"], info["sample_rate"]) != (g["codec"], g["sample_rate"]):
                return [
                    f"{pre}{path}: audio is {info['codec']} at {info['sample_rate']} Hz, the manifest says "
                    f"{g['codec']} at {g['sample_rate']} Hz"
                ]
    except (ValueError, IndexError, KeyError, struct.error, OSError) as exc:
        return [f"{pre}{path}: cannot read its G.711 sound ({exc})"]
    problems = []
    if (slices.total, slices.whole.hexdigest()) != (g["bytes"], g["sha256"]):
        problems.append(f"{pre}{path}: G.711 sound ({slices.total} bytes) differs from the manifest's")
    got = slices.result()  # one slice per part (zip(strict=) is not in the Python 3.8 this runs on)
    for i, part in enumerate(g.get("parts", [])):
        if got[i] != (part["bytes"], part["sha256"]):
            problems.append(f"{pre}{path}: G.711 sound from {part['key']} differs from the manifest's")
    return problems + _g711_against_originals(entry, by_path, pre)


def _g711_against_originals(entry: dict[str, Any], by_path: dict[str, dict[str, Any]], pre: str) -> list[str]:
    """A remux's sound, source by source, against the sound the manifest records for each original
    (on whichever disc it is)."""
    problems = []
    for part in entry["g711"].get("parts", []):
        original = by_path.get("originals/" + part["key"], {}).get("g711")
        if original is None:
            problems.append(f"{pre}{entry['path']}: the manifest records no G.711 sound for {part['key']}")
        elif (original["bytes"], original["sha256"]) != (part["bytes"], part["sha256"]):
            problems.append(
                f"{pre}{entry['path']}: its sound from {part['key']} differs from that original's"
            )
    return problems


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
    by_path = {f["path"]: f for f in manifest.get("files", [])}
    for entry in expected:
        path = entry["path"]
        if path not in present:
            problems.append(f"{pre}{path}: missing from this disc")
            continue
        ts = _g711_sink(entry)
        with open_file(path) as fh:
            got = hashed[path] = _digests(fh, ts[1].feed if ts else None)
        result["files_checked"] += 1
        if entry.get("g711"):
            problems.extend(_check_g711(entry, by_path, open_file, ts, pre))
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
        del args[at : at + 2]
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
                print(
                    "   note: compare it with the fingerprint on the paper recording statement, or give it with "
                    "--expect-key / 请与纸质录音录像说明上的公钥指纹核对，或用 --expect-key 给出"
                )
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
