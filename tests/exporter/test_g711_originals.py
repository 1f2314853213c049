"""Originals with their sound (issue 15, point 3): the G.711 remux beside the originals on the disc.

The disc is read back with an independent reader (7z), the remux checked with Debian's own
``ffprobe``/``ffmpeg`` (what a court expert has), its sound compared byte for byte with the
originals' (both demuxed with PyAV), and both verifiers shown to catch a remux that was tampered
with, even one whose manifest was re-signed to match.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import av
import pytest

from exporter import disc_verifier, manifest
from exporter.errors import ExportCancelled, ToolMissing
from exporter.iso_image import ImageFile, build_image
from exporter.job import ExportOptions, run_export
from exporter.plan import build_plan
from exporter.signing import load_signing_key, sign
from exporter.verify import verify_images
from tests.exporter.conftest import REF, TINY_FILE, Exported, export, extract
from tests.exporter.scenario import FPS

pytestmark = pytest.mark.integration

# camera -> (audio codec the sidecar names, video codec): A-law and µ-law, H.264 and H.265
G711_CAMERAS = {
    "cam-entry": ("pcm_alaw", "h264"),
    "cam-search": ("pcm_mulaw", "h264"),
    "cam-wait": ("pcm_alaw", "hevc"),
    "cam-int": ("pcm_alaw", "h264"),
}


def remuxes(m: dict[str, Any], camera: str | None = None) -> list[dict[str, Any]]:
    """The remux files (of one camera), in file order."""
    found = [f for f in m["files"] if f["role"] == "original_remux" and camera in (None, f["camera"])]
    return sorted(found, key=lambda f: f["start"])


@pytest.fixture(scope="module")
def with_7z(exported: Exported, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The master image as 7-Zip reads it (not the pycdlib that wrote it)."""
    out = tmp_path_factory.mktemp("7z")
    subprocess.run(
        ["7z", "x", "-y", f"-o{out}", str(exported.result.master_images[0])], capture_output=True, check=True
    )
    return out


def ffprobe(path: Path) -> list[dict[str, Any]]:
    proc = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-of", "json", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    streams: list[dict[str, Any]] = json.loads(proc.stdout)["streams"]
    return streams


def payload(path: Path, kind: str) -> bytes:
    """Every packet of the file's first ``kind`` stream (audio, or data: G.711 in TS), concatenated."""
    with av.open(str(path)) as ic:
        stream = next(s for s in ic.streams if s.type == kind)
        return b"".join(bytes(p) for p in ic.demux(stream) if p.size)


def test_system_ffmpeg_5_1_is_what_the_tests_use() -> None:
    version = subprocess.run(["ffprobe", "-version"], capture_output=True, text=True, check=True).stdout
    assert version.startswith("ffprobe version 5.1"), version.splitlines()[0]


def test_originals_alone_have_no_audio_stream_for_ffprobe(exported: Exported, with_7z: Path) -> None:
    """Why the remux exists: the stored TS gives Debian's ffprobe a data stream, not audio."""
    for f in exported.manifest["files"]:
        if f["role"] == "original" and f.get("g711"):
            kinds = [(s["codec_type"], s["codec_name"]) for s in ffprobe(with_7z / f["path"])]
            assert ("data", "bin_data") in kinds and not any(k == "audio" for k, _ in kinds), kinds


def test_every_g711_camera_has_a_remux_with_labelled_g711_audio(exported: Exported, with_7z: Path) -> None:
    assert {f["camera"] for f in remuxes(exported.manifest)} == set(G711_CAMERAS)  # the AAC clip: none
    for cam, (codec, vcodec) in G711_CAMERAS.items():
        for entry in remuxes(exported.manifest, cam):
            assert entry["path"].startswith("originals-with-sound/") and f"/{cam}." in entry["path"]
            streams = ffprobe(with_7z / entry["path"])
            audio = [s for s in streams if s["codec_type"] == "audio"]
            video = [s for s in streams if s["codec_type"] == "video"]
            assert [(s["codec_name"], s["sample_rate"], s["channels"]) for s in audio] == [(codec, "8000", 1)]
            assert [s["codec_name"] for s in video] == [vcodec]
            assert entry["g711"]["codec"] == codec and entry["g711"]["sample_rate"] == 8000


@pytest.mark.parametrize("camera", sorted(G711_CAMERAS))
def test_remux_sound_is_the_originals_g711_byte_for_byte(
    exported: Exported, with_7z: Path, camera: str
) -> None:
    segments = [s.storage_key for s in exported.scenario.segments if s.camera_id == camera]
    entries = remuxes(exported.manifest, camera)
    assert [s["key"] for e in entries for s in e["sources"]] == segments  # every segment, in order
    for entry in entries:
        originals = [with_7z / "originals" / s["key"] for s in entry["sources"]]
        expected = b"".join(payload(p, "data") for p in originals)
        got = payload(with_7z / entry["path"], "audio")
        assert len(expected) == 8000 * 3 * len(originals)  # 3 s of 8 kHz G.711 per segment
        assert got == expected
        assert hashlib.sha256(got).hexdigest() == entry["g711"]["sha256"]
        with av.open(str(with_7z / entry["path"])) as ic:
            frames = sum(1 for p in ic.demux(video=0) if p.size)
        assert frames == FPS * 3 * len(originals)  # and every picture, none dropped


@pytest.mark.parametrize("camera", sorted(G711_CAMERAS))
def test_debian_ffmpeg_decodes_the_remux_without_a_word(
    exported: Exported, with_7z: Path, camera: str
) -> None:
    for entry in remuxes(exported.manifest, camera):
        proc = subprocess.run(
            ["ffmpeg", "-nostdin", "-v", "error", "-i", str(with_7z / entry["path"]), "-f", "null", "-"],
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0 and proc.stdout == "" and proc.stderr == "", proc.stderr


def test_a_recording_gap_starts_the_next_file_and_each_file_runs_on(
    exported: Exported, with_7z: Path
) -> None:
    """cam-int: segments at 01:00:12 and 01:00:20 with a 5 s disconnect between them: two files,
    each continuous from 0 (no hole for a player to stumble on), titled with its local start."""
    entries = remuxes(exported.manifest, "cam-int")
    assert [(e["path"].rsplit("/", 1)[1], e["start"], e["end"]) for e in entries] == [
        ("cam-int.mkv", "2024-05-01T01:00:12.000000Z", "2024-05-01T01:00:15.000000Z"),
        ("cam-int.part02.mkv", "2024-05-01T01:00:20.000000Z", "2024-05-01T01:00:23.000000Z"),
    ]
    for entry, local in zip(entries, ("2024-05-01 09:00:12", "2024-05-01 09:00:20"), strict=True):
        times: dict[str, list[float]] = {"video": [], "audio": []}
        with av.open(str(with_7z / entry["path"])) as ic:
            for p in ic.demux():
                if p.size:
                    times[p.stream.type].append(float(p.pts * p.time_base))
        for kind, step in (("video", 1 / FPS), ("audio", 0.02)):
            ts = sorted(times[kind])
            assert ts[0] == pytest.approx(0, abs=0.001) and ts[-1] == pytest.approx(3 - step, abs=0.002)
            assert max(b - a for a, b in itertools.pairwise(ts)) <= step + 0.0015, kind
        title = subprocess.run(
            [
                "ffprobe",
                "-v",
                "error",
                "-show_entries",
                "format_tags=title",
                "-of",
                "csv=p=0",
                str(with_7z / entry["path"]),
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert local in title and "原始录像" in title
        assert "G.711" in ffprobe(with_7z / entry["path"])[1]["tags"]["title"]  # the sound track says it


def test_manifest_records_each_originals_sound_and_the_remux_shares(exported: Exported) -> None:
    by_path = {f["path"]: f for f in exported.manifest["files"]}
    for entry in remuxes(exported.manifest):
        assert entry["format"].startswith("matroska")
        parts = entry["g711"]["parts"]
        assert [p["key"] for p in parts] == [s["key"] for s in entry["sources"]]
        assert sum(p["bytes"] for p in parts) == entry["g711"]["bytes"]
        for p in parts:
            original = by_path["originals/" + p["key"]]["g711"]
            assert (original["bytes"], original["sha256"]) == (p["bytes"], p["sha256"])
    first, second = (e["g711"]["parts"][0] for e in remuxes(exported.manifest, "cam-int"))
    assert first["sha256"] != second["sha256"]  # two tones: a swap would show


def test_statement_and_page_say_how_to_hear_the_originals(exported: Exported, with_7z: Path) -> None:
    statement = (with_7z / "statement.html").read_text(encoding="utf-8")
    assert "原始录像的声音" in statement and "originals-with-sound/" in statement and "VLC" in statement
    page = (with_7z / "index.html").read_text(encoding="utf-8")
    assert "原始录像（含原始声音）" in page and "Originals with their sound" in page
    assert "originals-with-sound/05-interrogation-1/cam-int.mkv" in page


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_flipping_a_byte_of_the_remux_fails_both_verifiers(exported: Exported, tmp_path: Path) -> None:
    rel = "originals-with-sound/03-search/cam-search.mkv"
    disc = tmp_path / "disc"
    shutil.copytree(exported.extracted, disc)
    _flip(disc / rel, (disc / rel).stat().st_size // 2)
    script = subprocess.run([sys.executable, str(disc / "verify.py")], capture_output=True, text=True)
    assert script.returncode == 1 and rel in script.stdout, script.stdout
    report = verify_images([_image(disc, tmp_path / "tampered.iso")])
    assert not report.ok and any(rel in p for p in report.problems), report.problems


def _image(disc: Path, out: Path) -> Path:
    files = [ImageFile(p.relative_to(disc).as_posix(), p) for p in sorted(disc.rglob("*")) if p.is_file()]
    build_image(out, files, "A4401012024050001_M_1OF1", REF)
    return out


def _reseal(disc: Path, key: Path, edit: Any) -> None:
    """What an exporter bug would produce: the manifest re-hashed over the changed files and signed
    with the real key, the checksum lists rewritten: every hash and the signature are right."""
    m = json.loads((disc / manifest.MANIFEST).read_text(encoding="utf-8"))
    edit(m)
    for f in m["files"]:
        d = manifest.hash_file(disc / f["path"])
        f["size"], f["sha256"], f["sm3"] = d.size, d.sha256, d.sm3
    raw = manifest.canonical_json(m)
    (disc / manifest.MANIFEST).write_bytes(raw)
    (disc / manifest.SIGNATURE).write_bytes(sign(load_signing_key(key), raw))
    listed = [f["path"] for f in m["files"]] + [manifest.MANIFEST, manifest.DISC_JSON, manifest.DISC_JS]
    for name, algo in ((manifest.SHA256SUMS, "sha256"), (manifest.SM3SUMS, "sm3")):
        rows = [(p, getattr(manifest.hash_file(disc / p), algo)) for p in listed]
        (disc / name).write_bytes(manifest.sums_text(rows))


def _change_sound(mkv: Path) -> None:
    """Change one G.711 byte inside the remux: in the first block that holds its first audio packet."""
    before = payload(mkv, "audio"), payload(mkv, "video")
    _flip(mkv, mkv.read_bytes().index(before[0][:160]) + 10)
    after = payload(mkv, "audio"), payload(mkv, "video")
    assert after[1] == before[1] and len(after[0]) == len(before[0]) and after[0] != before[0]


def test_a_remux_with_other_sound_fails_both_verifiers_even_when_resealed(
    exported: Exported, tmp_path: Path
) -> None:
    rel = "originals-with-sound/05-interrogation-1/cam-int.mkv"
    disc = tmp_path / "disc"
    shutil.copytree(exported.extracted, disc)
    entry = next(f for f in remuxes(exported.manifest) if f["path"] == rel)
    _change_sound(disc / rel)
    _reseal(disc, exported.key, lambda m: None)
    script = subprocess.run([sys.executable, str(disc / "verify.py")], capture_output=True, text=True)
    assert script.returncode == 1, script.stdout
    problems = [line for line in script.stdout.splitlines() if "PROBLEM" in line]
    assert problems and all(rel in p and "G.711" in p for p in problems), problems
    assert any(entry["sources"][0]["key"] in p for p in problems)  # names the segment it came from
    assert not any("signature" in p or "SHA-256 differs" in p for p in problems)
    report = verify_images([_image(disc, tmp_path / "resealed.iso")])
    assert not report.ok and all(rel in p and "G.711" in p for p in report.problems), report.problems

    # ... and a manifest rewritten to record the changed sound for the remux still disagrees with
    # the original's own record (which its capture hash vouches for)
    def record_changed_sound(m: dict[str, Any]) -> None:
        f = next(x for x in m["files"] if x["path"] == rel)
        slices = disc_verifier._Slices([p["bytes"] for p in f["g711"]["parts"]])
        with (disc / rel).open("rb") as fh:
            disc_verifier.mkv_audio(fh, slices.feed)
        f["g711"]["sha256"] = slices.whole.hexdigest()
        for p, (_n, digest) in zip(f["g711"]["parts"], slices.result(), strict=True):
            p["sha256"] = digest

    _reseal(disc, exported.key, record_changed_sound)
    script = subprocess.run([sys.executable, str(disc / "verify.py")], capture_output=True, text=True)
    assert script.returncode == 1 and "differs from that original's" in script.stdout, script.stdout

    # ... and one that also rewrites the original's record: the original's own bytes say otherwise
    first = "originals/" + entry["sources"][0]["key"]

    def record_it_for_the_original_too(m: dict[str, Any]) -> None:
        record_changed_sound(m)
        part = next(x for x in m["files"] if x["path"] == rel)["g711"]["parts"][0]
        next(x for x in m["files"] if x["path"] == first)["g711"]["sha256"] = part["sha256"]

    _reseal(disc, exported.key, record_it_for_the_original_too)
    script = subprocess.run([sys.executable, str(disc / "verify.py")], capture_output=True, text=True)
    problems = [line for line in script.stdout.splitlines() if "PROBLEM" in line]
    assert script.returncode == 1 and problems == [
        f"   PROBLEM / 问题: {disc}: {first}: G.711 sound (24000 bytes) differs from the manifest's"
    ], problems


def test_verifier_reads_the_ts_sound_in_any_chunking(exported: Exported) -> None:
    """The on-disc verifier's own TS reader against PyAV's demuxer, fed in odd-sized pieces."""
    for f in exported.manifest["files"]:
        if f["role"] != "original" or not f.get("g711"):
            continue
        data = (exported.extracted / f["path"]).read_bytes()
        got = bytearray()
        reader = disc_verifier.TsPrivateStream(got.extend)
        for i in range(0, len(data), 1317):
            reader.feed(data[i : i + 1317])
        reader.close()
        assert bytes(got) == payload(exported.extracted / f["path"], "data"), f["path"]


def test_split_parts_and_discs_still_verify(split_exports: list[Any], tmp_path: Path) -> None:
    """Tiny files and discs: cam-int's remux splits at the segment boundary, parts and originals
    land on different discs, and each disc's check still holds each part to its originals."""
    res = split_exports[0]
    m = json.loads(res.manifest.read_bytes())
    parts = sorted(f["path"] for f in remuxes(m) if f["camera"] == "cam-int")
    assert parts == [
        "originals-with-sound/05-interrogation-1/cam-int.mkv",
        "originals-with-sound/05-interrogation-1/cam-int.part02.mkv",
    ]
    assert all(f["size"] < TINY_FILE for f in remuxes(m))
    assert all("working" not in f["discs"] for f in remuxes(m))  # beside the originals: master only
    assert verify_images([*res.master_images, *res.working_images]).ok
    roots = [extract(img, tmp_path / img.stem) for img in res.master_images]

    def on_some_disc(rel: str) -> Path:
        return next(r / rel for r in roots if (r / rel).exists())

    keys = [p["key"] for f in remuxes(m) if f["camera"] == "cam-int" for p in f["g711"]["parts"]]
    assert len(keys) == 2
    got = b"".join(payload(on_some_disc(p), "audio") for p in parts)
    assert got == b"".join(payload(on_some_disc("originals/" + k), "data") for k in keys)


def test_setting_off_leaves_the_remux_out_and_says_how_to_listen(exported: Exported, tmp_path: Path) -> None:
    sc = exported.scenario
    _plan, res = export(sc, exported.key, tmp_path, g711_remux=False)
    m = json.loads(res.manifest.read_bytes())
    assert not remuxes(m) and res.summary["g711_remux_bytes"] == 0
    assert not any(f.get("g711") for f in m["files"])
    root = extract(res.master_images[0], tmp_path / "x")
    statement = (root / "statement.html").read_text(encoding="utf-8")
    assert "-f data - | ffplay -f alaw" in statement and "originals-with-sound" not in statement


def test_without_ffmpeg_the_export_says_so_and_leaves_nothing(exported: Exported, tmp_path: Path) -> None:
    sc = exported.scenario
    plan = build_plan(sc.request, sc.footage, sc.events, sc.rooms)
    with pytest.raises(ToolMissing, match="g711_remux"):
        export(sc, exported.key, tmp_path, ffmpeg=str(tmp_path / "no-ffmpeg"))
    assert plan.stages and list(tmp_path.iterdir()) == []


def _ffmpeg_children() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                status = (entry / "status").read_text()
            except OSError:
                continue
            fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
            if (
                fields.get("PPid", "").strip() == str(os.getpid())
                and fields.get("Name", "").strip() == "ffmpeg"
            ):
                pids.append(int(entry.name))
    return pids


def test_cancel_during_the_remux_stops_ffmpeg_and_removes_everything(
    exported: Exported, tmp_path: Path
) -> None:
    cancel = threading.Event()
    seen: list[str] = []

    def progress(_fraction: float, message: str) -> None:
        seen.append(message)
        if "originals with sound" in message:
            assert _ffmpeg_children()  # a part is being written right now
            cancel.set()

    sc = exported.scenario
    plan = build_plan(sc.request, sc.footage, sc.events, sc.rooms)
    with pytest.raises(ExportCancelled):
        run_export(plan, sc.reader, tmp_path, ExportOptions(signing_key=exported.key), progress, cancel)
    assert list(tmp_path.iterdir()) == [] and _ffmpeg_children() == []
    assert any("originals with sound" in s for s in seen)
