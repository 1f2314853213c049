"""A camera with B-frames (x264 High, 3 B-frames as a pyramid, 4 slices a frame), recorded by the real ``vaudit run``
and watched in Debian's Chromium the three ways a person does: the live page (fragmented MP4 over
a WebSocket), playback of a range (the playback MP4), and the court disc's MP4 opened from the
extracted disc. Each must play at the camera's 25 frames a second, every frame shown once and in
presentation order: Chromium's ``requestVideoFrameCallback`` reports the media time of every frame
it composes, so frames decoded in the wrong order or with broken timestamps show as media times
that repeat, run backwards or are not whole frame steps apart."""

from __future__ import annotations

import itertools
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from domain.types import iso
from pipeline.simulator.camera import Encoding, SimulatedCamera, free_port
from tests.support.browser import CHROMIUM, FLAGS, requires_chromium
from tests.support.vaudit_proc import VauditRun

pytestmark = [pytest.mark.integration, pytest.mark.browser]
FPS = 25
CAMERA = "bcam"
VIEWER, VIEWER_PASSWORD = "supervisor-li", "桂花-lantern-4471"

# Plays a <video> (the selector's, or one made for `src`) for `ms` and lists the media time of
# every frame Chromium composed.
_WATCH = """async ([selector, src, ms]) => {
    const sleep = (t) => new Promise(r => setTimeout(r, t));
    let v = selector ? null : document.createElement('video');
    if (v) { v.src = src; v.muted = true; document.body.appendChild(v); }
    for (let i = 0; i < 200 && !v; i++) { await sleep(100); v = document.querySelector(selector); }
    if (!v) return {err: 'no video element'};
    v.muted = true;
    try { await v.play(); } catch (e) { return {err: String(e)}; }
    for (let i = 0; i < 150 && !(v.currentTime > 0.3); i++) await sleep(100);
    const times = [];
    await new Promise(done => {
        const t0 = performance.now();
        const cb = (now, meta) => {
            times.push(meta.mediaTime);
            if (performance.now() - t0 < ms) v.requestVideoFrameCallback(cb); else done();
        };
        v.requestVideoFrameCallback(cb);
    });
    const q = v.getVideoPlaybackQuality();
    return {times, decoded: q.totalVideoFrames, dropped: q.droppedVideoFrames, err: v.error && v.error.code};
}"""


def _problems(name: str, seen: dict[str, Any]) -> list[str]:
    """What is wrong with what Chromium showed, if anything."""
    if seen.get("err"):
        return [f"{name}: media error {seen['err']}"]
    times = seen["times"]
    steps = [round((b - a) * FPS, 2) for a, b in itertools.pairwise(times)]
    out = []
    if len(times) < 1.5 * FPS:  # 3 s watched; Chromium may skip compositing some under load
        out.append(f"{name}: only {len(times)} frames shown in 3 s")
    bad = [s for s in steps if s < 0.9 or abs(s - round(s)) > 0.1]
    if bad:
        out.append(f"{name}: frames not whole 1/{FPS} s steps apart in presentation order: {bad[:10]}")
    if steps and sorted(steps)[len(steps) // 2] != 1.0:
        out.append(f"{name}: median step {sorted(steps)[len(steps) // 2]} frames, not 1")
    return out


@pytest.fixture
def recorded(tmp_path: Path) -> Iterator[tuple[VauditRun, SimulatedCamera]]:
    cam = SimulatedCamera(
        CAMERA,
        free_port(),
        audio_codec="alaw",
        width=320,
        height=240,
        bitrate_kbps=400,
        encoding=Encoding(profile="high", bframes=3, b_pyramid=True, slices=4),
    )
    cam.start()
    try:
        config = tmp_path / "centre.toml"
        config.write_text(
            "\n".join(
                [
                    f'[storage]\nkind = "local"\npath = "{tmp_path / "store"}"',
                    f'[database]\nurl = "sqlite:///{tmp_path / "index.db"}"',
                    f'[recorder]\nsegment_seconds = 2\nspool = "{tmp_path / "spool"}"',
                    f'[api]\nupload_tmp = "{tmp_path / "uploads"}"',
                    f'[export]\nout_dir = "{tmp_path / "exports"}"\nsigning_key = "{tmp_path / "key.pem"}"',
                    '[[rooms]]\nid = "int-b"\nname = "讯问室B"\nkind = "interrogation"',
                    f'  [[rooms.cameras]]\n  id = "{CAMERA}"\n  url = "{cam.url}"',
                ]
            )
            + "\n",
            encoding="utf-8",
        )
        with VauditRun(config, tmp_path / "run.log") as run:
            run.create_user(VIEWER, "supervisor", VIEWER_PASSWORD)
            yield run, cam
    finally:
        cam.stop()


def _disc_mp4(run: VauditRun, tmp_path: Path, t0: datetime) -> Path:
    api, h = run.base + "/api/v1", run.headers
    case = httpx.post(
        f"{api}/cases", json={"case_number": "B2026001", "title": "B帧", "charge": "盗窃"}, headers=h
    ).json()
    subject = httpx.post(
        f"{api}/cases/{case['id']}/subjects", json={"name": "赵六", "role": "suspect"}, headers=h
    ).json()
    for n, (event, at) in enumerate((("entry", 1.0), ("exit", 9.0))):
        body = {
            "id": f"b{n}",
            "type": event,
            "room_id": "int-b",
            "subject_id": subject["id"],
            "time": iso(t0 + timedelta(seconds=at)),
        }
        assert httpx.post(f"{api}/events", json=body, headers=h).status_code == 201
    job = httpx.post(
        f"{api}/exports", json={"case": "B2026001", "subject": str(subject["id"])}, headers=h
    ).json()
    while job["state"] in ("queued", "running"):
        time.sleep(0.5)
        job = run.get(f"/api/v1/exports/{job['id']}").json()
    assert job["state"] == "done", job
    master = next(p for p in (tmp_path / "exports" / job["export_id"]).rglob("*.iso") if "master" in str(p))
    subprocess.run(["7z", "x", "-y", f"-o{tmp_path / 'disc'}", str(master)], check=True, capture_output=True)
    return next((tmp_path / "disc").rglob(f"*{CAMERA}*.mp4"))


@requires_chromium
def test_b_frame_camera_plays_at_its_frame_rate_live_in_playback_and_from_the_disc(
    recorded: tuple[VauditRun, SimulatedCamera], tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    run, _cam = recorded
    t0 = datetime.now(UTC)
    time.sleep(11)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        cams = run.get("/api/v1/cameras").json()["cameras"]
        if cams[0]["last_segment_end"] and cams[0]["last_segment_end"] >= iso(t0 + timedelta(seconds=10)):
            break
        time.sleep(0.5)
    disc = _disc_mp4(run, tmp_path, t0)
    playback = (
        f"/api/v1/playback/{CAMERA}.mp4?start={iso(t0 + timedelta(seconds=2))}"
        f"&end={iso(t0 + timedelta(seconds=9))}"
    ).replace("+", "%2B")
    problems: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page()
            page.goto(f"{run.base}/login")
            page.fill("input[name=name]", VIEWER)
            page.fill("input[name=password]", VIEWER_PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_load_state("networkidle")
            page.goto(f"{run.base}/live")
            live = page.evaluate(_WATCH, [f'video.live-video[data-camera="{CAMERA}"]', None, 3000])
            problems += _problems("live fMP4", live)
            page.goto(f"{run.base}/search")  # same origin: the session cookie goes with the request
            problems += _problems("playback MP4", page.evaluate(_WATCH, [None, run.base + playback, 3000]))
            page.goto(disc.parent.as_uri() + "/")
            problems += _problems("disc MP4", page.evaluate(_WATCH, [None, disc.name, 3000]))
            for name, seen in (("live", live),):
                print(name, len(seen.get("times", [])), "frames shown")
        finally:
            browser.close()
    assert not problems, "\n".join(problems)
