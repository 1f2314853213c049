"""Camera conformance: the matrix of ``matrix.py`` recorded together by the real ``vaudit run``.

One centre, twelve cameras (each a gst-rtsp-server with GStreamer's own encoders), recorded for
about 25 s with two faults on the way (a camera restarting its stream at another resolution, a
camera whose audio stops for 10 s). Everything is checked from the outside: the REST API, the
stored files read by the system's ffmpeg/ffprobe and PyAV, the cameras' own logs, and a court disc
exported through the API and extracted by 7z. The index is SQLite here: the suite is about
cameras; the index's own suites run on both databases.

On failure the test prints the matrix, one line per camera, naming every problem found.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from domain.types import from_unix, iso, parse_iso, to_unix
from pipeline.simulator.camera import SimulatedCamera, free_port
from tests.conformance.matrix import (
    AUDIO_KEPT,
    FPS,
    MATRIX,
    RESIZED,
    WALL_TOLERANCE,
    CameraLog,
    Variant,
    audio_seconds,
    ffmpeg_errors,
    ffprobe_video,
    video_frames,
)
from tests.support.vaudit_proc import VauditRun

pytestmark = pytest.mark.integration

SEGMENT_SECONDS = 4
MJPEG = "mjpeg-cam"
RECORD_SECONDS = 22.0  # the checked window, after every camera's first segment
AUDIO_OFF, RESIZE_AT, AUDIO_ON = 2.0, 4.0, 12.0  # seconds into the window


def _start(v: Variant, tmp_path: Path) -> SimulatedCamera:
    cam = SimulatedCamera(
        v.camera_id,
        free_port(),
        video_codec=v.video,
        audio_codec=v.audio,
        width=v.width,
        height=v.height,
        fps=FPS,
        gop=round(v.gop_seconds * FPS),
        bitrate_kbps=800 if v.width > 320 else 400,
        events_log=tmp_path / "cams" / f"{v.camera_id}.jsonl",
        onvif_port=free_port(),
        encoding=dataclasses.replace(v.encoding, log_frames=True),
    )
    return cam.start(timeout=30)


def _centre(tmp_path: Path, cams: dict[str, SimulatedCamera]) -> Path:
    lines = [
        f'[storage]\nkind = "local"\npath = "{tmp_path / "store"}"',
        f'[database]\nurl = "sqlite:///{tmp_path / "index.db"}"',
        f'[recorder]\nsegment_seconds = {SEGMENT_SECONDS}\nspool = "{tmp_path / "spool"}"',
        f'[api]\nupload_tmp = "{tmp_path / "uploads"}"',
        f'[export]\nout_dir = "{tmp_path / "exports"}"\nsigning_key = "{tmp_path / "keys" / "ed25519.pem"}"',
    ]
    for room in sorted({v.room_id for v in MATRIX}):
        lines.append(f'[[rooms]]\nid = "{room}"\nname = "讯问室 {room}"\nkind = "interrogation"')
        for v in (v for v in MATRIX if v.room_id == room):
            cam = cams[v.camera_id]
            lines.append(
                f'  [[rooms.cameras]]\n  id = "{v.camera_id}"\n  url = "{cam.url}"\n'
                f'  onvif_url = "{cam.onvif_url}"'
            )
        if room == "conf-x":
            lines.append(f'  [[rooms.cameras]]\n  id = "{MJPEG}"\n  url = "{cams[MJPEG].url}"')
    path = tmp_path / "centre.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def centre(tmp_path: Path) -> Iterator[tuple[VauditRun, dict[str, SimulatedCamera]]]:
    with ExitStack() as stack:
        cams: dict[str, SimulatedCamera] = {}
        for v in MATRIX:
            cams[v.camera_id] = _start(v, tmp_path)
            stack.callback(cams[v.camera_id].stop)
        # a camera no recorder can store as sent: refused in plain words, the others record on
        cams[MJPEG] = SimulatedCamera(
            MJPEG, free_port(), video_codec="mjpeg", audio_codec="alaw", width=320, height=240
        ).start(timeout=30)
        stack.callback(cams[MJPEG].stop)
        run = VauditRun(_centre(tmp_path, cams), tmp_path / "run.log")
        run.start()
        stack.callback(run.stop)
        yield run, cams


def _ok(resp: httpx.Response) -> Any:
    assert resp.status_code < 300, (resp.status_code, resp.text[:500])
    return resp.json()


def _wait(run: VauditRun, what: str, predicate: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}:\n{run.log.read_text(errors='replace')[-3000:]}")


def _stored_until(run: VauditRun, when: datetime) -> bool:
    cams = _ok(run.get("/api/v1/cameras"))["cameras"]
    return all(
        c["last_segment_end"] and parse_iso(c["last_segment_end"]) >= when for c in cams if c["id"] != MJPEG
    )


def _check_refused(run: VauditRun) -> list[str]:
    """The MJPEG camera: not recorded, and the camera list and the alerts say why in plain words."""
    why = "no recordable video stream (H.264/H.265) in the camera's offer: video:mjpeg"
    cam = next(c for c in _ok(run.get("/api/v1/cameras"))["cameras"] if c["id"] == MJPEG)
    problems = []
    if cam["connected"] or cam["last_segment_end"] or why not in (cam["last_error"] or ""):
        problems.append(f"camera list: connected {cam['connected']}, last error {cam['last_error']!r}")
    alerts = _ok(run.get("/healthz"))["alerts"]
    if not any(why in str(a.get("message")) for a in alerts):
        problems.append(f"no open alert says {why!r}: {alerts}")
    return problems


def _check_camera(
    v: Variant, run: VauditRun, cam: SimulatedCamera, store: Path, lo: datetime, hi: datetime
) -> list[str]:
    """Every problem found with one camera's recording in [lo, hi]."""
    problems: list[str] = []
    log = CameraLog.read(cam.events())
    window = {"start": iso(lo), "end": iso(hi)}
    segs = _ok(run.get(f"/api/v1/cameras/{v.camera_id}/segments", **window))["segments"]
    gaps = _ok(run.get(f"/api/v1/cameras/{v.camera_id}/gaps", **window))["gaps"]
    if len(segs) < 2:
        return [f"only {len(segs)} segment(s) in the window"]
    # gaps: only those the variant causes, with their bounds
    expected_gaps = {"resize": 1, "audio_stop": 1}.get(v.action, 0)
    if len(gaps) != expected_gaps:
        problems.append(
            f"{len(gaps)} gap(s), expected {expected_gaps}: "
            + "; ".join(f"{g['cause']} {g['start']}..{g['end']} {g['detail'][:80]}" for g in gaps)
        )
    for g in gaps:
        if v.action == "audio_stop":
            off, on = log.at("audio off"), log.at("audio on")
            start, end = to_unix(parse_iso(g["start"])), to_unix(parse_iso(g["end"]))
            if (
                g["cause"] != "audio_lost"
                or abs(start - off) > WALL_TOLERANCE
                or abs(end - on) > WALL_TOLERANCE
            ):
                problems.append(
                    f"audio gap {g['cause']} {start - off:+.2f} s .. {end - on:+.2f} s from the "
                    "camera's audio off/on"
                )
        elif v.action == "resize" and (
            g["cause"] not in ("disconnect", "stall")
            or not -3.0 <= to_unix(parse_iso(g["start"])) - log.at("resize") <= WALL_TOLERANCE
        ):
            # what sat unread in the socket when the camera reset the session is lost with it: up
            # to the read pause, more on a loaded machine
            problems.append(
                f"resize gap {g['cause']} at {g['start']}, resize at {from_unix(log.at('resize'))}"
            )
    # tiling: a segment ends where the next begins, unless a recorded gap lies between
    for a, b in itertools.pairwise(segs):
        if a["end"] != b["start"] and not any(
            g["start"] <= a["end"] and g["end"] >= b["start"] and g["cause"] != "audio_lost" for g in gaps
        ):
            problems.append(f"hole {a['end']} .. {b['start']} without a gap")
    # frames, wall clock, audio, decoding, stream description
    runs: dict[str, list[int]] = {}
    if v.encoding.intra_refresh:
        # No frame of such a stream is a clean place to start decoding: a segment alone begins at a
        # recovery point with its first refresh wave reconstructed from nothing (libavcodec may say
        # "Missing reference picture" there). Decoded after its predecessor, as playback and the
        # disc decode it, the run must be clean (docs/design/recorder.md "Intra refresh").
        joined = "concat:" + "|".join(str(store / s["storage_key"]) for s in segs)
        err = ffmpeg_errors(joined)
        if err:
            problems.append(f"the run's segments decoded in order: ffmpeg: {err}")
    for s in segs:
        path = store / s["storage_key"]
        err = "" if v.encoding.intra_refresh else ffmpeg_errors(path)
        if err:
            problems.append(f"{Path(s['storage_key']).name}: ffmpeg: {err}")
        tails = video_frames(path, v.codec)
        run_so_far = runs.get(s["run_id"])
        sent = log.match(tails, after=run_so_far[-1] if run_so_far else 0)
        unknown = sum(1 for f in sent if f is None)
        if unknown:
            problems.append(
                f"{Path(s['storage_key']).name}: {unknown} of {len(tails)} frames not sent by the camera"
            )
        known = [f for f in sent if f is not None]
        if known:
            when = "capture" if s["clock_source"] == "rtcp" else "sent"
            off = to_unix(parse_iso(s["start"])) - float(known[0][when])
            if abs(off) > WALL_TOLERANCE:
                problems.append(
                    f"{Path(s['storage_key']).name} starts {off:+.3f} s from when its first frame was {when}"
                )
            runs.setdefault(s["run_id"], []).extend(int(f["n"]) for f in known)
        size = (s["width"], s["height"])
        resized = v.action == "resize" and parse_iso(s["start"]) > from_unix(log.at("resize"))
        if size != (RESIZED if resized else (v.width, v.height)) or s["video_codec"] != v.codec:
            problems.append(f"stream described as {s['video_codec']} {size}")
        if s["audio_codec"] != v.audio_codec:
            problems.append(f"audio described as {s['audio_codec']}, sent {v.audio_codec}")
        seconds = to_unix(parse_iso(s["end"])) - to_unix(parse_iso(s["start"]))
        quiet = (
            v.action == "audio_stop"
            and to_unix(parse_iso(s["end"])) > log.at("audio off") - 0.5
            and to_unix(parse_iso(s["start"])) < log.at("audio on") + 0.5
        )
        if v.audio_codec is not None and not quiet:
            got = audio_seconds(path, v.audio_codec)
            if got < AUDIO_KEPT * seconds:
                problems.append(f"{Path(s['storage_key']).name}: {got:.2f} s of audio in {seconds:.2f} s")
    for run_id, numbers in runs.items():
        missing = sorted(set(range(numbers[0], numbers[-1] + 1)) - set(numbers))
        doubled = len(numbers) - len(set(numbers))
        if missing or doubled or numbers != sorted(numbers):
            problems.append(
                f"run {run_id[:6]}: {len(missing)} frame(s) of the camera missing "
                f"({missing[:5]}), {doubled} twice, order kept: {numbers == sorted(numbers)}"
            )
    return problems


def _check_audio_alert(run: VauditRun, cam: SimulatedCamera) -> list[str]:
    """The suspect was in conf-a while audio-stops had no sound: the recording alert, for that time."""
    log = CameraLog.read(cam.events())
    items = _ok(run.get("/api/v1/alerts", room_id="conf-a"))["items"]
    found = [a for a in items if a["dedup_key"] == "recording_lost:audio-stops:audio"]
    if len(found) != 1:
        return [f"{len(found)} audio recording alert(s) for audio-stops: {[a['message'] for a in items]}"]
    off = to_unix(parse_iso(found[0]["start"])) - log.at("audio off")
    return (
        [] if abs(off) <= WALL_TOLERANCE else [f"audio alert starts {off:+.2f} s from the camera's audio off"]
    )


def _case(run: VauditRun, t0: datetime) -> tuple[str, int]:
    """A suspect in conf-a from t0+1 s, in conf-b from t0+11 s, out at t0+20 s."""
    api = run.base + "/api/v1"
    h = run.headers
    stamp = t0.strftime("%H%M%S")
    officer = _ok(
        httpx.post(f"{api}/officers", json={"name": "李明", "badge_number": f"C{stamp}"}, headers=h)
    )
    case = _ok(
        httpx.post(
            f"{api}/cases",
            json={"case_number": f"C{stamp}", "title": "一致性测试", "charge": "盗窃"},
            headers=h,
        )
    )
    _ok(
        httpx.post(
            f"{api}/cases/{case['id']}/officers",
            json={"officer_id": officer["id"], "role": "interrogator"},
            headers=h,
        )
    )
    subject = _ok(
        httpx.post(f"{api}/cases/{case['id']}/subjects", json={"name": "张三", "role": "suspect"}, headers=h)
    )
    steps = [("entry", "conf-a", 1.0), (None, "conf-b", 11.0), ("exit", "conf-b", 20.0)]
    for n, (event, room, at) in enumerate(steps):
        when = iso(t0 + timedelta(seconds=at))
        body: dict[str, Any] = {
            "id": f"C{stamp}-{n}",
            "room_id": room,
            "time": when,
            "subject_id": subject["id"],
        }
        if event is None:
            _ok(httpx.post(f"{api}/observations", json={**body, "source": "wristband"}, headers=h))
        else:
            _ok(
                httpx.post(
                    f"{api}/events", json={**body, "type": event, "officer_ids": [officer["id"]]}, headers=h
                )
            )
    return case["case_number"], subject["id"]


def _check_disc(run: VauditRun, out: Path, tmp_path: Path, case: str, subject: int) -> list[str]:
    problems: list[str] = []
    job = _ok(
        httpx.post(
            f"{run.base}/api/v1/exports", json={"case": case, "subject": str(subject)}, headers=run.headers
        )
    )
    deadline = time.monotonic() + 240
    while job["state"] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(0.5)
        job = _ok(run.get(f"/api/v1/exports/{job['id']}"))
    if job["state"] != "done":
        return [f"export {job['state']}: {job.get('error')}"]
    master = next(p for p in sorted((out / job["export_id"]).rglob("*.iso")) if "master" in str(p))
    disc = tmp_path / "disc"
    subprocess.run(["7z", "x", "-y", f"-o{disc}", str(master)], check=True, capture_output=True, timeout=300)
    mp4s = sorted(disc.rglob("*.mp4"))
    exported = {v.camera_id for v in MATRIX if v.room_id in ("conf-a", "conf-b")}
    for cam_id in sorted(exported):
        files = [p for p in mp4s if cam_id in p.name]
        if not files:
            problems.append(f"disc: no MP4 of {cam_id} among {[p.name for p in mp4s]}")
        for p in files:
            err = ffmpeg_errors(p)
            if err:
                problems.append(f"disc {p.name}: ffmpeg: {err}")
            info = ffprobe_video(p)
            rate = info["r_frame_rate"]
            if rate != f"{FPS}/1":
                problems.append(f"disc {p.name}: frame rate {rate}")
    gaps = json.loads(next(disc.rglob("gaps.json")).read_text(encoding="utf-8"))["gaps"]
    audio = [g for g in gaps if g["camera_id"] == "audio-stops" and g["cause"] == "audio_lost"]
    if len(audio) != 1:
        problems.append(f"disc gaps.json: {len(audio)} audio_lost gap(s) of audio-stops: {gaps}")
    return problems


def _check_playback(run: VauditRun, log: CameraLog, tmp_path: Path, t0: datetime) -> list[str]:
    """The playback MP4 of a B-frame camera: decodes cleanly, at the camera's frame rate, with
    every frame the camera sent in its span."""
    start, end = t0 + timedelta(seconds=14), t0 + timedelta(seconds=20)
    resp = httpx.get(
        f"{run.base}/api/v1/playback/high-b2-640.mp4",
        params={"start": iso(start), "end": iso(end)},
        headers=run.headers,
        timeout=60,
    )
    if resp.status_code != 200:
        return [f"playback: HTTP {resp.status_code} {resp.text[:200]}"]
    path = tmp_path / "playback.mp4"
    path.write_bytes(resp.content)
    problems = []
    err = ffmpeg_errors(path)
    if err:
        problems.append(f"playback MP4: ffmpeg: {err}")
    info = ffprobe_video(path)
    frames = int(info["nb_read_frames"])
    # the MP4 starts at the keyframe at or before the range (up to a GOP earlier)
    if not 6 <= info["duration"] <= 8.5 or info["r_frame_rate"] != f"{FPS}/1":
        problems.append(
            f"playback MP4: {frames} frames at {info['r_frame_rate']} in {info['duration']:.2f} s"
        )
    # Every frame the camera sent in that span, once, in order: counted against what the camera
    # sent, not against the nominal rate, since a starved encoder on a loaded machine sends fewer.
    sent = [f for f in log.match(video_frames(path, "h264")) if f is not None]
    numbers = [int(f["n"]) for f in sent]
    if len(sent) != frames or numbers != list(range(numbers[0], numbers[0] + len(numbers))):
        problems.append(
            f"playback MP4: {frames} frames, {len(sent)} of them sent by the camera, "
            f"not one run of consecutive frames: {numbers[:3]}..{numbers[-3:]}"
        )
    return problems


def test_every_camera_of_the_matrix_recorded_whole(
    centre: tuple[VauditRun, dict[str, SimulatedCamera]], tmp_path: Path
) -> None:
    run, cams = centre
    _wait(
        run,
        "every camera's first segment",
        lambda: all(
            c["last_segment_end"] for c in _ok(run.get("/api/v1/cameras"))["cameras"] if c["id"] != MJPEG
        ),
        60,
    )
    t0 = datetime.now(UTC)
    case, subject = _case(run, t0)
    actions = [
        (AUDIO_OFF, lambda: cams["audio-stops"].set_audio(False)),
        (RESIZE_AT, lambda: cams["resize"].resize(*RESIZED)),
        (AUDIO_ON, lambda: cams["audio-stops"].set_audio(True)),
    ]
    for at, act in actions:
        time.sleep(max(0.0, at - (datetime.now(UTC) - t0).total_seconds()))
        act()
    time.sleep(max(0.0, RECORD_SECONDS - (datetime.now(UTC) - t0).total_seconds()))
    t_end = t0 + timedelta(seconds=RECORD_SECONDS)
    _wait(run, "the window's footage stored", lambda: _stored_until(run, t_end), 60)

    report: dict[str, list[str]] = {}
    for v in MATRIX:
        report[v.camera_id] = _check_camera(v, run, cams[v.camera_id], tmp_path / "store", t0, t_end)
    report[MJPEG] = _check_refused(run)
    report["audio alert"] = _check_audio_alert(run, cams["audio-stops"])
    report["court disc"] = _check_disc(run, tmp_path / "exports", tmp_path, case, subject)
    report["playback"] = _check_playback(run, CameraLog.read(cams["high-b2-640"].events()), tmp_path, t0)

    what = {v.camera_id: v.what for v in MATRIX} | {MJPEG: "MJPEG: refused, saying why"}
    lines = [
        f"{name:18} {'ok' if not p else 'FAILED'}  {what.get(name, '')}"
        + "".join(f"\n{'':20}- {x}" for x in p)
        for name, p in report.items()
    ]
    print("\n".join(lines))
    assert not any(report.values()), "\n".join(lines)
