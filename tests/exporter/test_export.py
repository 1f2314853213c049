"""End to end: real TS segments -> run_export -> images read back by pycdlib, xorriso and 7z."""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import av
import pycdlib
import pytest

from domain.types import parse_iso
from exporter.disc_page import vtt_cues
from exporter.disc_verifier import grouped
from exporter.errors import ExportCancelled
from exporter.job import ExportOptions, run_export
from exporter.plan import build_plan
from exporter.verify import verify_images
from tests.exporter.conftest import TINY_FILE, TINY_MEDIA, Exported, extract
from tests.exporter.scenario import FPS, at

SHANGHAI = timedelta(hours=8)


def videos(m: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for f in m["files"] if f["role"] == "video"]


def count_source_frames(paths: list[Path]) -> int:
    n = 0
    for p in paths:
        with av.open(str(p)) as ic:
            n += sum(1 for pkt in ic.demux(ic.streams.video[0]) if pkt.size)
    return n


def test_every_video_decodes_first_to_last_frame(exported: Exported) -> None:
    root = exported.extracted
    for entry in videos(exported.manifest):
        with av.open(str(root / entry["path"])) as ic:
            decoded = sum(1 for _ in ic.decode(video=0))
        sources = count_source_frames([root / "originals" / s["key"] for s in entry["sources"]])
        assert decoded == sources, entry["path"]
        assert decoded > 0
    renditions = {(v["camera"], v["rendition"]) for v in videos(exported.manifest)}
    assert ("cam-wait", "h264") in renditions and ("cam-wait", "remux") in renditions  # HEVC kept + H.264


def test_h264_video_is_copied_bit_for_bit(exported: Exported) -> None:
    """No re-encoding: the MP4's video packets are the camera's packets (Annex B -> length-prefixed)."""
    root = exported.extracted
    entry = next(v for v in videos(exported.manifest) if v["camera"] == "cam-entry")
    with av.open(str(root / entry["path"])) as ic:
        out = [bytes(p) for p in ic.demux(ic.streams.video[0]) if p.size]
    with av.open(str(root / "originals" / entry["sources"][0]["key"])) as ic:
        src = [bytes(p) for p in ic.demux(ic.streams.video[0]) if p.size]
    assert len(out) == len(src)

    def nals_annexb(b: bytes) -> list[bytes]:
        parts = b.replace(b"\x00\x00\x00\x01", b"\x00\x00\x01").split(b"\x00\x00\x01")
        return [p for p in parts if p]

    def nals_avcc(b: bytes) -> list[bytes]:
        res, i = [], 0
        while i < len(b):
            (n,) = struct.unpack(">I", b[i : i + 4])
            res.append(b[i + 4 : i + 4 + n])
            i += 4 + n
        return res

    for a, b in zip(out, src, strict=True):
        slices = [n for n in nals_annexb(b) if n[0] & 0x1F in (1, 5)]
        assert [n for n in nals_avcc(a) if n[0] & 0x1F in (1, 5)] == slices


def test_subtitle_times_match_the_segments_wall_clock(exported: Exported) -> None:
    root = exported.extracted
    entry = next(v for v in videos(exported.manifest) if v["camera"] == "cam-int")
    start = parse_iso(entry["start"])
    assert start == at(12)
    with av.open(str(root / entry["path"])) as ic:
        sub = ic.streams.subtitles[0]
        cues = []
        for p in ic.demux(sub):
            if p.size > 2 and p.pts is not None:
                n = struct.unpack(">H", bytes(p)[:2])[0]
                cues.append((float(p.pts * p.time_base), bytes(p)[2 : 2 + n].decode()))
        ic.seek(0)
        keys = [float(p.pts * p.time_base) for p in ic.demux(ic.streams.video[0]) if p.is_keyframe and p.size]
    for t, text in cues:
        wall = start + timedelta(seconds=t) + SHANGHAI
        assert text.splitlines()[0] == wall.strftime("%Y-%m-%d %H:%M:%S")
    texts = dict(cues)
    assert "连接中断" in texts[4.0] and "连接中断" not in texts[9.0]  # the 5 s gap [15, 20) is captioned
    assert "讯问开始" in texts[1.0]
    # the second segment (wall clock 01:00:20) starts 8 s into the file: the gap stays a gap
    assert 8.0 in keys and not any(3.0 < k < 8.0 for k in keys)
    vtt = (root / entry["path"]).with_suffix(".vtt").read_text(encoding="utf-8")
    assert "00:00:08.000 --> 00:00:09.000\n2024-05-01 09:00:20" in vtt


def test_gap_is_in_manifest_report_page_and_chapters(exported: Exported) -> None:
    root, m = exported.extracted, exported.manifest
    gap = exported.scenario.gap
    assert [(g["camera_id"], g["cause"], g["start"], g["end"]) for g in m["gaps"]] == [
        ("cam-int", "disconnect", "2024-05-01T01:00:15.000000Z", "2024-05-01T01:00:20.000000Z")
    ]
    report = json.loads((root / "gaps.json").read_text(encoding="utf-8"))
    assert report["gaps"][0]["gap_id"] == gap.gap_id and report["gaps"][0]["seconds"] == 5.0
    assert "连接中断" in (root / "gaps.html").read_text(encoding="utf-8")
    page = (root / "index.html").read_text(encoding="utf-8")
    assert gap.gap_id in page and "2024-05-01 09:00:15" in page
    assert "http://" not in page and "https://" not in page  # nothing fetched from a network
    entry = next(v for v in videos(m) if v["camera"] == "cam-int")
    with av.open(str(root / entry["path"])) as ic:
        chapters = [(c["start"] * c["time_base"], c["metadata"].get("title")) for c in ic.chapters()]
    assert any(t == 3 and "连接中断" in (title or "") for t, title in chapters)
    assert any(t == 8 and "恢复" in (title or "") for t, title in chapters)


def test_each_video_has_its_cues_script_beside_it_with_the_vtt_cues(exported: Exported) -> None:
    """The page's time code (``.cues.js``) is listed in the manifest, kept on the disc of its video,
    and says exactly what the ``.vtt`` beside it says."""
    root, m = exported.extracted, exported.manifest
    by_path = {f["path"]: f for f in m["files"]}
    subtitles = [f for f in m["files"] if f["role"] == "subtitles"]
    assert subtitles
    for sub in subtitles:
        video = sub["path"].removesuffix(".vtt") + ".mp4"
        cues = by_path[sub["path"].removesuffix(".vtt") + ".cues.js"]
        assert cues["role"] == "cues" and cues["discs"] == by_path[video]["discs"] == sub["discs"]
        script = (root / cues["path"]).read_text(encoding="ascii")
        head = f'(window.DISC_CUES = window.DISC_CUES || {{}})["{video}"] = ['
        assert script.startswith(head) and script.endswith("\n];\n")
        listed = json.loads(script[len(head) - 1 : -2])
        with (root / sub["path"]).open(encoding="utf-8") as fh:
            assert listed == [list(c) for c in vtt_cues(fh)]
        assert listed[0][0] == 0 and len(listed) == (root / sub["path"]).read_text().count(" --> ")


def test_manifest_lists_sizes_hashes_and_capture_hashes(exported: Exported) -> None:
    root, m = exported.extracted, exported.manifest
    assert m["case"]["charge"] == "盗窃" and m["subject"]["name"] == "张某"
    assert [o["role"] for o in m["officers"]] == ["interrogator", "interrogator", "recorder"]
    captured = exported.scenario.capture_hashes()
    for f in m["files"]:
        data = (root / f["path"]).read_bytes()
        assert len(data) == f["size"]
        assert hashlib.sha256(data).hexdigest() == f["sha256"]
        assert hashlib.new("sm3", data).hexdigest() == f["sm3"]
        for s in f.get("sources", []):
            assert captured[s["key"]] == s["sha256"]
        if f["role"] == "original":
            assert f["sha256"] == captured[f["sources"][0]["key"]]  # bit for bit
    sidecar = json.loads(
        (root / "originals/cam-int/2024/05/01/20240501T010020000000Z_00000002.json").read_text()
    )
    assert sidecar["prev_sha256"] == captured["cam-int/2024/05/01/20240501T010012000000Z_00000001.ts"]
    sums = (root / "SHA256SUMS").read_text().splitlines()
    assert len(sums) == len(m["files"]) + 3  # + manifest.json, disc.json, disc.js


def test_statement_has_the_rule5_fields(exported: Exported) -> None:
    html = (exported.extracted / "statement.html").read_text(encoding="utf-8")
    for needle in (
        "录音录像说明",
        "讯问人",
        "李警官、王警官",
        "录制人员",
        "赵警官",
        "翻译人员",
        "案由",
        "盗窃",
        "张某",
        "2024-05-01 09:00:00",
        "2024-05-01 09:00:23",
        "提押 2024-05-01 09:00:11",
        "讯问室1",
        grouped(exported.result.summary["fingerprint"]),
    ):
        assert needle in html, needle
    pdf = (exported.extracted / "statement.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and b"D:20240501060000" in pdf


def test_verify_passes_on_master_and_working_copies(exported: Exported) -> None:
    res = exported.result
    report = verify_images([*res.master_images, *res.working_images], exported.scenario.capture_hashes().get)
    assert report.ok, report.problems
    assert report.fingerprint == res.summary["fingerprint"]
    working = verify_images(res.working_images)
    assert working.ok and [d["copy"] for d in working.discs] == ["working"]
    wrong = dict(exported.scenario.capture_hashes())
    key = exported.scenario.segments[0].storage_key
    wrong[key] = "0" * 64
    bad = verify_images(res.master_images, wrong.get)
    assert not bad.ok and any(key in p for p in bad.problems)


def _flip(image: Path, out: Path, disc_path: str) -> None:
    shutil.copyfile(image, out)
    iso = pycdlib.PyCdlib()
    iso.open(str(out))
    rec = iso.get_record(rr_path="/" + disc_path)
    offset = rec.extent_location() * 2048 + min(100, rec.get_data_length() // 2)
    iso.close()
    with out.open("r+b") as fh:
        fh.seek(offset)
        b = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([b[0] ^ 0x01]))


@pytest.mark.parametrize(
    "disc_path",
    [
        "manifest.json",
        "videos/05-interrogation-1/cam-int.mp4",
        "originals/cam-entry/2024/05/01/20240501T010003000000Z_00000001.ts",
        "statement.pdf",
        "index.html",
        "videos/04-waiting/cam-wait.h264.vtt",
        "videos/04-waiting/cam-wait.h264.cues.js",
        "verify.py",
    ],
)
def test_flipping_one_byte_fails_verify_naming_the_file(
    exported: Exported, tmp_path: Path, disc_path: str
) -> None:
    tampered = tmp_path / "tampered.iso"
    _flip(exported.result.master_images[0], tampered, disc_path)
    report = verify_images([tampered])
    assert not report.ok
    assert any(disc_path in p for p in report.problems), report.problems


def test_xorriso_and_7z_read_every_file_identical_to_the_manifest(exported: Exported, tmp_path: Path) -> None:
    image = exported.result.master_images[0]
    m = exported.manifest
    listed = subprocess.run(
        ["xorriso", "-indev", str(image), "-find", "/", "-type", "f"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    names = {n.strip().strip("'").lstrip("/") for n in listed if n.strip()}
    expected = {f["path"] for f in m["files"]} | {
        "manifest.json",
        "manifest.json.sig",
        "SHA256SUMS",
        "SM3SUMS",
        "disc.json",
        "disc.js",
    }
    assert names == expected
    out = tmp_path / "7z"
    subprocess.run(["7z", "x", "-y", f"-o{out}", str(image)], capture_output=True, check=True)
    for f in m["files"]:
        assert hashlib.sha256((out / f["path"]).read_bytes()).hexdigest() == f["sha256"], f["path"]
    label = subprocess.run(
        ["xorriso", "-indev", str(image), "-pvd_info"], capture_output=True, text=True
    ).stdout
    assert "A4401012024050001_M_1OF1" in label


def test_the_disc_verifier_script_runs_from_the_disc(exported: Exported, tmp_path: Path) -> None:
    disc = tmp_path / "disc"
    shutil.copytree(exported.extracted, disc)
    ok = subprocess.run([sys.executable, str(disc / "verify.py")], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "OK" in ok.stdout and grouped(exported.result.summary["fingerprint"]) in ok.stdout
    target = disc / "videos/02-entry/cam-entry.mp4"
    data = bytearray(target.read_bytes())
    data[500] ^= 0xFF
    target.write_bytes(bytes(data))
    bad = subprocess.run([sys.executable, str(disc / "verify.py")], capture_output=True, text=True)
    assert bad.returncode == 1 and "videos/02-entry/cam-entry.mp4" in bad.stdout


@pytest.mark.integration  # split_exports: two whole exports, ~6 s
def test_split_over_discs_with_a_tiny_medium(split_exports: list[Any]) -> None:
    res = split_exports[0]
    assert len(res.master_images) >= 2, res.summary
    assert len(res.working_images) < len(res.master_images)  # the working copy omits the originals
    for img in (*res.master_images, *res.working_images):
        assert img.stat().st_size <= TINY_MEDIA
    report = verify_images([*res.master_images, *res.working_images])
    assert report.ok, report.problems
    assert not any("not given" in n for n in report.notes)
    m = json.loads(res.manifest.read_bytes())
    parts = [f for f in m["files"] if f["role"] == "video" and ".part" in f["path"]]
    assert parts and all(f["size"] < TINY_FILE for f in m["files"] if f["role"] == "video")
    assert not any(f["path"].startswith("originals/") and "working" in f["discs"] for f in m["files"])
    one = verify_images(res.master_images[:1])
    assert one.ok and any("not given" in n for n in one.notes)


@pytest.mark.integration  # split_exports: two whole exports, ~6 s
def test_two_exports_of_the_same_input_are_byte_identical(split_exports: list[Any]) -> None:
    a, b = split_exports
    imgs_a = [*a.master_images, *a.working_images]
    imgs_b = [*b.master_images, *b.working_images]
    assert [p.name for p in imgs_a] == [p.name for p in imgs_b]
    for x, y in zip(imgs_a, imgs_b, strict=True):
        assert x.read_bytes() == y.read_bytes(), x.name


@pytest.mark.integration  # split_exports: two whole exports, ~6 s
def test_split_parts_each_decode(split_exports: list[Any], tmp_path: Path) -> None:
    res = split_exports[0]
    total = 0
    for img in res.master_images:
        root = extract(img, tmp_path / img.stem)
        for mp4 in root.rglob("*.mp4"):
            if "videos" in mp4.parts and "cam-int" in mp4.name:
                with av.open(str(mp4)) as ic:
                    total += sum(1 for _ in ic.decode(video=0))
    assert total == 6 * FPS  # two 3 s segments, split over parts, nothing lost


def test_cancel_removes_partial_output(exported: Exported, tmp_path: Path) -> None:
    cancel = threading.Event()
    seen: list[str] = []

    def progress(fraction: float, message: str) -> None:
        seen.append(message)
        if "remuxing" in message:
            cancel.set()

    sc = exported.scenario
    plan = build_plan(sc.request, sc.footage, sc.events, sc.rooms)
    with pytest.raises(ExportCancelled):
        run_export(plan, sc.reader, tmp_path, ExportOptions(signing_key=exported.key), progress, cancel)
    assert list(tmp_path.iterdir()) == []
    assert any("copying" in s for s in seen)
