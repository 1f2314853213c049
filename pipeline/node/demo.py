"""``vaudit demo``: a simulated centre, recorded by the real pipeline, with one case driven
through the real REST API (officers, case, suspect, a body-camera arrest clip, wristband
readings and procedure events as they happen), ending with a court disc export.

:class:`DemoCentre` keeps the cameras and the centre running until it is stopped, so ``vaudit
demo`` can go on serving what it recorded (the cameras still live) for a newcomer to look around.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import uvicorn

from domain.errors import VauditError
from domain.types import RoomKind, iso
from indexer.users import UserStore
from pipeline.api.app import create_app
from pipeline.node.centre import CentreRuntime
from pipeline.settings import Settings
from pipeline.simulator.camera import SimulatedCamera, free_port
from pipeline.simulator.centre import start_centre, stop_centre

logger = logging.getLogger(__name__)

Say = Callable[[str], None]


@dataclass(frozen=True)
class Step:
    at: float  # seconds after recording started
    kind: str  # "observation" | "event"
    room_kind: RoomKind
    event_type: str = ""


# The suspect's way through the centre (scaled down: real stays last minutes to hours).
SCRIPT = (
    Step(4, "observation", RoomKind.ENTRY),
    Step(4.5, "event", RoomKind.ENTRY, "entry"),
    Step(12, "observation", RoomKind.SEARCH),
    Step(12.5, "event", RoomKind.SEARCH, "search"),
    Step(20, "observation", RoomKind.WAITING),
    Step(20.5, "event", RoomKind.WAITING, "waiting"),
    Step(28, "observation", RoomKind.INTERROGATION),
    Step(28.5, "event", RoomKind.INTERROGATION, "interrogation_start"),
    Step(48, "event", RoomKind.INTERROGATION, "interrogation_end"),
    Step(50, "event", RoomKind.INTERROGATION, "transcript_signed"),
    Step(54, "event", RoomKind.INTERROGATION, "exit"),
)


def make_bodycam_clip(path: Path, start: datetime, seconds: float) -> Path:
    """A small H.264 + AAC MP4 standing in for a body-worn camera's arrest recording."""
    fps = 25
    with av.open(str(path), "w", format="mp4") as out:
        out.metadata["creation_time"] = start.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        video = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast", "g": "25"})
        video.width, video.height, video.pix_fmt = 640, 360, "yuv420p"
        audio = out.add_stream("aac", rate=16000, layout="mono")
        frames = int(seconds * fps)
        for i in range(frames):
            shade = np.full((360, 640, 3), (40 + i * 3) % 200, np.uint8)
            shade[150:210, (i * 8) % 600 : (i * 8) % 600 + 40] = (255, 200, 0)  # a moving figure
            frame = av.VideoFrame.from_ndarray(shade, format="rgb24")
            frame.pts = i
            for packet in video.encode(frame):
                out.mux(packet)
        samples = 1024
        t = np.arange(int(seconds * 16000)) / 16000
        tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        for n, i in enumerate(range(0, len(tone) - samples + 1, samples)):
            aframe = av.AudioFrame.from_ndarray(
                tone[i : i + samples].reshape(1, -1), format="fltp", layout="mono"
            )
            aframe.sample_rate, aframe.pts, aframe.time_base = 16000, n * samples, Fraction(1, 16000)
            for packet in audio.encode(aframe):
                out.mux(packet)
        for stream in (video, audio):
            for packet in stream.encode(None):
                out.mux(packet)
    return path


class _ApiThread:
    """The API served on a free loopback port from a thread, for the demo's client."""

    def __init__(self, app: Any, user: str, password: str) -> None:
        self.user = user
        self.password = password
        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None, proxy_headers=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="demo-api", daemon=True)

    def __enter__(self) -> httpx.Client:
        self.thread.start()
        client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}/api/v1", timeout=30.0)
        for _ in range(100):
            with contextlib.suppress(httpx.HTTPError):
                if client.get(f"http://127.0.0.1:{self.port}/healthz").status_code == 200:
                    # The demo is an API client like any other: it logs in for a bearer token.
                    token = _ok(
                        client.post("/auth/token", json={"name": self.user, "password": self.password})
                    )
                    client.headers["Authorization"] = f"Bearer {token['access_token']}"
                    return client
            time.sleep(0.1)
        raise RuntimeError("demo API did not start")

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def _ok(resp: httpx.Response) -> dict[str, Any]:
    if resp.status_code >= 400:
        raise RuntimeError(f"{resp.request.method} {resp.request.url} -> {resp.status_code}: {resp.text}")
    data: dict[str, Any] = resp.json()
    return data


def _room(settings: Settings, kind: RoomKind) -> str:
    for room in settings.rooms:
        if room.kind is kind and room.cameras:
            return room.id
    raise VauditError(f"the demo centre needs a room of kind {kind.value} with a camera")


@dataclass(frozen=True)
class DemoCase:
    """What the demo recorded and exported."""

    case_id: int
    case_number: str
    subject_id: int
    export_job: str
    images: list[Path]


class DemoCentre:
    """The demo centre live: its simulated cameras, the centre runtime recording them (what
    ``vaudit run`` keeps alive) and the API app on top, from :meth:`start` to :meth:`stop`.

    The accounts it makes (:meth:`login`) are closed at :meth:`stop`: a login printed for a
    newcomer works only while this demo runs."""

    def __init__(self, settings: Settings, picture: tuple[int, int] = (1280, 720)) -> None:
        self.settings = settings
        self.picture = picture
        self.cams: list[SimulatedCamera] = []
        self._runtime: CentreRuntime | None = None
        self._app: Any = None
        self._accounts: list[int] = []

    @property
    def runtime(self) -> CentreRuntime:
        if self._runtime is None:
            raise RuntimeError("the demo centre is not running")
        return self._runtime

    @property
    def app(self) -> Any:
        """The centre's FastAPI app (recording, playback, live view, exports)."""
        if self._app is None:
            raise RuntimeError("the demo centre is not running")
        return self._app

    def start(self) -> DemoCentre:
        self.cams = start_centre(self.settings, width=self.picture[0], height=self.picture[1])
        try:
            self._runtime = CentreRuntime(self.settings)
            self._runtime.start()
            self._app = create_app(self.settings, self._runtime.store, runtime=self._runtime)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Close the demo's accounts, stop recording (open segments closed and stored), stop
        every camera process; each step runs even when one before it fails."""
        try:
            if self._runtime is not None:
                try:
                    users = UserStore(self._runtime.engine)
                    for user_id in self._accounts:
                        users.set_active(user_id, False)  # also revokes its sessions and tokens
                    self._accounts.clear()
                finally:
                    self._runtime.stop()
        finally:
            self._runtime = self._app = None
            stop_centre(self.cams)
            self.cams = []

    def __enter__(self) -> DemoCentre:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def login(self, role: str) -> tuple[str, str]:
        """A new account of ``role`` with a random password, for this run only: (name, password)."""
        password = secrets.token_urlsafe(18)
        name = f"demo-{role}-{datetime.now(UTC):%Y%m%d%H%M%S}-{secrets.token_hex(2)}"
        who = UserStore(self.runtime.engine).create_user(name, role, password)
        self._accounts.append(who.user_id)
        return name, password

    def record_case(
        self,
        seconds: float,
        say: Say,
        progress: Say,
        on_step: Callable[[Step, list[SimulatedCamera]], None] | None = None,
    ) -> DemoCase:
        """Drive the demo case through the REST API while the centre records it, then export the
        suspect's disc.

        ``on_step`` is called after each scripted step with the running cameras (tests use it to
        cause an outage at a chosen moment)."""
        settings = self.settings
        duration = max(seconds, SCRIPT[-1].at + 4)
        work = settings.export.out_dir.parent / "demo"
        work.mkdir(parents=True, exist_ok=True)
        t0 = datetime.now(UTC)
        stamp = t0.strftime("%Y%m%d%H%M%S")
        user, password = self.login("admin")
        with _ApiThread(self.app, user, password) as api:
            case_number = f"A{stamp}"
            lead = _ok(api.post("/officers", json={"name": "李明", "badge_number": f"110{stamp[-6:]}1"}))
            second = _ok(api.post("/officers", json={"name": "王芳", "badge_number": f"110{stamp[-6:]}2"}))
            case = _ok(
                api.post(
                    "/cases",
                    json={
                        "case_number": case_number,
                        "title": "张某盗窃案",
                        "charge": "盗窃",
                        "serious": False,
                    },
                )
            )
            _ok(
                api.post(
                    f"/cases/{case['id']}/officers", json={"officer_id": lead["id"], "role": "interrogator"}
                )
            )
            _ok(
                api.post(
                    f"/cases/{case['id']}/officers", json={"officer_id": second["id"], "role": "recorder"}
                )
            )
            subject = _ok(
                api.post(
                    f"/cases/{case['id']}/subjects",
                    json={"name": "张三", "role": "suspect", "id_number": f"11010119900101{stamp[-4:]}"},
                )
            )
            say(f"case {case_number}: suspect 张三 (subject {subject['id']}), officers 李明, 王芳")

            clip = make_bodycam_clip(work / "bodycam-arrest.mp4", t0 - timedelta(seconds=4), seconds=8.5)
            with clip.open("rb") as fh:
                _ok(
                    api.post(
                        "/bodycam/clips",
                        data={
                            "device_id": "BWC-0007",
                            "officer_id": str(lead["id"]),
                            "subject_ids": str(subject["id"]),
                            "start_time": iso(t0 - timedelta(seconds=4)),
                            "evidence": "true",
                        },
                        files={"file": ("arrest.mp4", fh, "video/mp4")},
                    )
                )
            say("body-camera arrest clip imported")

            for n, step in enumerate(SCRIPT):
                while (datetime.now(UTC) - t0).total_seconds() < step.at:
                    progress(f"recording {(datetime.now(UTC) - t0).total_seconds():.0f}/{duration:.0f} s")
                    time.sleep(0.25)
                when = t0 + timedelta(seconds=step.at)
                room = _room(settings, step.room_kind)
                if step.kind == "observation":
                    body = {
                        "id": f"{case_number}-o{n}",
                        "room_id": room,
                        "time": iso(when),
                        "source": "wristband",
                        "subject_id": subject["id"],
                    }
                    _ok(api.post("/observations", json=body))
                else:
                    body = {
                        "id": f"{case_number}-e{n}",
                        "type": step.event_type,
                        "time": iso(when),
                        "room_id": room,
                        "subject_id": subject["id"],
                        "officer_ids": [lead["id"], second["id"]],
                    }
                    _ok(api.post("/events", json=body))
                say(f"+{step.at:4.1f} s  {step.event_type or 'wristband'} in {room}")
                if on_step is not None:
                    on_step(step, self.cams)

            # The footage of the last stay must be closed, stored and indexed before export.
            ends = t0 + timedelta(seconds=SCRIPT[-1].at + 1)
            deadline = time.monotonic() + duration + 60
            while time.monotonic() < deadline:
                cams_now = _ok(api.get("/cameras"))["cameras"]
                if all(c["last_segment_end"] and c["last_segment_end"] >= iso(ends) for c in cams_now):
                    break
                progress("waiting for the last segments to be stored")
                time.sleep(0.5)
            job = _ok(api.post("/exports", json={"case": case_number, "subject": str(subject["id"])}))
            say(f"export job {job['id']} started")
            while job["state"] in ("queued", "running"):
                progress(f"export {job['progress'] * 100:.0f}% {job['message']}")
                time.sleep(0.5)
                job = _ok(api.get(f"/exports/{job['id']}"))
            if job["state"] != "done":
                raise RuntimeError(f"export {job['state']}: {job['error']}")
            images = sorted((settings.export.out_dir / job["export_id"]).rglob("*.iso"))
        return DemoCase(case["id"], case_number, subject["id"], job["id"], images)


def run_demo(
    settings: Settings,
    seconds: float,
    say: Say,
    progress: Say,
    on_step: Callable[[Step, list[SimulatedCamera]], None] | None = None,
    picture: tuple[int, int] = (1280, 720),
) -> list[Path]:
    """Record the demo centre and export the demo suspect's disc, then stop; the image paths."""
    with DemoCentre(settings, picture) as centre:
        return centre.record_case(seconds, say, progress, on_step).images
