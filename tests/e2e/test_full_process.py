"""The whole product once, as a court clerk would use it: a simulated centre recorded by the
real pipeline, a case driven through the REST API (body-camera arrest clip, four rooms, an
interrogation with a 5 s camera outage), exported through the API, verified with the CLI."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pipeline.node.demo import Step, run_demo
from pipeline.settings import load_settings
from pipeline.simulator.camera import SimulatedCamera, free_port

pytestmark = pytest.mark.integration

VAUDIT = str(Path(sys.executable).with_name("vaudit"))


def _centre(tmp_path: Path) -> Path:
    rooms = [
        ("entry-1", "入区登记室", "entry"),
        ("search-1", "人身检查室", "search"),
        ("wait-1", "候问室", "waiting"),
    ]
    lines = [
        f'[storage]\nkind = "local"\npath = "{tmp_path / "store"}"',
        f'[database]\nurl = "sqlite:///{tmp_path / "index.db"}"',
        f'[recorder]\nsegment_seconds = 4\nspool = "{tmp_path / "spool"}"',
        f'[api]\nupload_tmp = "{tmp_path / "uploads"}"',
        f'[export]\nout_dir = "{tmp_path / "exports"}"\nsigning_key = "{tmp_path / "keys" / "ed25519.pem"}"',
    ]
    for rid, name, kind in rooms:
        lines.append(f'[[rooms]]\nid = "{rid}"\nname = "{name}"\nkind = "{kind}"')
        lines.append(
            f'  [[rooms.cameras]]\n  id = "{rid}-a"\n  url = "rtsp://127.0.0.1:{free_port()}/{rid}-a"'
        )
    lines.append('[[rooms]]\nid = "int-1"\nname = "讯问室1"\nkind = "interrogation"')
    lines.append(f'  [[rooms.cameras]]\n  id = "int-1-a"\n  url = "rtsp://127.0.0.1:{free_port()}/int-1-a"')
    lines.append(
        f'  [[rooms.cameras]]\n  id = "int-1-b"\n  url = "rtsp://127.0.0.1:{free_port()}/int-1-b"\n'
        '  video_codec = "h265"\n  audio_codec = "aac"'
    )
    path = tmp_path / "centre.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_full_process_export_with_outage(tmp_path: Path) -> None:
    config = _centre(tmp_path)
    settings = load_settings(config)
    outage: dict[str, float] = {}

    def on_step(step: Step, cams: list[SimulatedCamera]) -> None:
        if step.event_type != "interrogation_start":
            return
        cam = next(c for c in cams if c.camera_id == "int-1-a")

        def drop() -> None:
            time.sleep(3)
            outage["killed"] = time.time()
            cam.kill()
            time.sleep(5)
            cam.restart()
            outage["back"] = time.time()

        threading.Thread(target=drop, daemon=True).start()

    images = run_demo(
        settings, 60, say=lambda _t: None, progress=lambda _t: None, on_step=on_step, picture=(640, 360)
    )
    assert {p.parent.name for p in images} == {"master", "working"}
    export_dir = images[0].parent.parent
    manifest = json.loads((export_dir / "manifest.json").read_text(encoding="utf-8"))

    # the outage is on the disc as a gap with its cause, close to the real one
    gaps = [g for g in manifest["gaps"] if g["camera_id"] == "int-1-a"]
    assert len(gaps) == 1, manifest["gaps"]
    assert gaps[0]["cause"] == "disconnect"
    assert manifest["unexplained"] == []
    kinds = [s["kind"] for s in manifest["stages"]]
    assert kinds == ["arrest", "entry", "search", "waiting", "interrogation"]
    assert any(f["role"] == "original" for f in manifest["files"])

    # anyone can verify it: our CLI (with the index's capture hashes) ...
    master = [p for p in images if p.parent.name == "master"]
    done = subprocess.run(
        [VAUDIT, "verify", "-c", str(config), *map(str, master)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # ... and an independent reader lists every file of the manifest on the disc
    if shutil.which("xorriso"):
        listing = subprocess.run(
            ["xorriso", "-indev", str(master[0]), "-find", "/", "-type", "f"],
            capture_output=True,
            text=True,
            timeout=120,
        ).stdout
        on_disc = {line.strip().strip("'").lstrip("/") for line in listing.splitlines() if line.strip()}
        for entry in manifest["files"]:
            if entry["discs"].get("master") is not None:
                assert entry["path"] in on_disc, entry["path"]

    # a tampered copy fails and names the file
    tampered = tmp_path / "tampered.iso"
    shutil.copy(master[0], tampered)
    data = bytearray(tampered.read_bytes())
    mp4 = next(f for f in manifest["files"] if f["path"].endswith(".mp4"))
    needle = bytes.fromhex("6d646174")  # an 'mdat' box: inside some video's media data
    at = data.find(needle, 64 * 2048)
    assert at > 0
    data[at + 100] ^= 0xFF
    tampered.write_bytes(bytes(data))
    bad = subprocess.run([VAUDIT, "verify", str(tampered)], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1
    assert ".mp4" in bad.stdout and "PROBLEM" in bad.stdout, bad.stdout
    assert mp4["path"]  # the manifest lists videos
