"""The supervisor web in Debian's Chromium (Playwright): log in, search, open a case, play a
range (currentTime advances, no media error), seek, jump to an event, open the live page (a
real simulated camera recorded into the spool plays as live video: currentTime advances, no
media error, latency shown ≤ 3 s; without MSE the stills arrive instead), start an export and
watch it reach done; every view left an audit row."""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from domain.types import iso, sidecar_key
from indexer.audit import AuditLog, load_audit_key
from indexer.database import create_engine_for, upgrade
from indexer.segment_store import SegmentStore
from pipeline.api.app import create_app
from pipeline.settings import Settings
from pipeline.simulator.camera import SimulatedCamera, free_port
from pipeline.storage import LocalStorage
from pipeline.viewing.live_frames import LiveFrames
from pipeline.viewing.live_video import LiveVideo
from recorders.options import RecorderOptions
from recorders.worker import CameraWorker
from tests.exporter.scenario import at, build_scenario, index_scenario
from tests.support.auth import PASSWORD, add_user, bearer
from tests.support.browser import CHROMIUM, FLAGS, keep_to, requires_chromium
from tests.support.live_server import live_server
from tests.support.recording import CollectingSink, running

pytestmark = pytest.mark.browser
ROOMS = [
    {
        "id": "R-WAIT",
        "name": "候问室1",
        "kind": "waiting",
        "cameras": [{"id": "cam-wait", "url": "rtsp://10.0.0.3/a"}],
    },
    {
        "id": "R-INT1",
        "name": "讯问室1",
        "kind": "interrogation",
        "cameras": [
            {"id": "cam-int", "url": "rtsp://10.0.0.2/a"},
            {"id": "cam-int2", "url": "rtsp://10.0.0.4/a"},
        ],
    },
]


@dataclass
class Site:
    base: str
    engine: Engine
    case_id: int
    subject_id: int
    other_case_id: int  # not the officer's
    audit_key: Path


@contextlib.contextmanager
def _recording(spool: Path) -> Iterator[None]:
    """cam-int live: a real simulated RTSP camera recorded by the real recorder into the spool."""
    cam = SimulatedCamera(
        "cam-int", free_port(), video_codec="h264", audio_codec="alaw", width=320, height=240
    )
    cam.start()
    try:
        worker = CameraWorker(
            "cam-int",
            cam.url,
            spool,
            RecorderOptions(segment_seconds=2.0, stall_seconds=3.0),
            CollectingSink(),
        )
        with running([worker]):
            yield
    finally:
        cam.stop()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("web")
    sc = build_scenario(root / "store")
    # cam-int2: a second camera of the interrogation room, same footage, for side-by-side sync
    extra = [s for s in sc.segments if s.camera_id == "cam-int"]
    engine = create_engine_for(f"sqlite:///{root / 'index.db'}")
    upgrade(engine)
    settings = Settings(
        rooms=ROOMS,
        api={"upload_tmp": root / "up"},
        export={"out_dir": root / "exports", "signing_key": root / "key.pem"},
        audit={"key_file": root / "audit.key"},
    )
    store = SegmentStore(engine)
    store.sync_rooms(settings.room_rows())
    index_scenario(store, sc)
    from dataclasses import replace

    for rec in extra:
        key = rec.storage_key.replace("cam-int/", "cam-int2/", 1)
        (sc.root / key).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(sc.root / rec.storage_key, sc.root / key)
        copy = replace(rec, camera_id="cam-int2", prev_sha256=None, storage_key=key)
        # its sidecar too, as the recorder stores one beside every segment (playback checks it)
        (sc.root / sidecar_key(key)).write_text(json.dumps(copy.to_json()), encoding="utf-8")
        store.add_segment(copy)
    store.add_gap(sc.gap)
    from domain.types import GapRecord

    store.add_gap(GapRecord("cam-int2", at(15), at(20), sc.gap.cause, "camera rebooted"))
    app = create_app(settings, store, engine=engine, storage=LocalStorage(sc.root))
    app.state.live_frames = LiveFrames(root / "spool")
    app.state.live_video = LiveVideo(root / "spool")
    with contextlib.ExitStack() as stack:  # closed in reverse: the server, the live video, the recording
        stack.enter_context(_recording(root / "spool"))
        stack.callback(app.state.live_video.stop)
        base = stack.enter_context(live_server(app)).base
        add_user(engine, "admin", "admin")
        add_user(engine, "zhang", "supervisor")
        with httpx.Client(base_url=base, timeout=30) as c:
            c.headers.update(bearer(c, "admin"))
            case = c.post(
                "/api/v1/cases",
                json={"case_number": "A4401012024050001", "title": "张某盗窃案", "charge": "盗窃"},
            )
            cid = case.json()["id"]
            # officer wang is on this case, not on the other one
            other = c.post(
                "/api/v1/cases", json={"case_number": "B5501012024050002", "title": "另案", "charge": "诈骗"}
            )
            officer = c.post("/api/v1/officers", json={"name": "王警官", "badge_number": "P-7"}).json()["id"]
            assert c.post(f"/api/v1/cases/{cid}/officers", json={"officer_id": officer}).is_success
            add_user(engine, "wang", "officer", officer_badge="P-7")
            sid = c.post(f"/api/v1/cases/{cid}/subjects", json={"name": "张某", "role": "suspect"}).json()[
                "id"
            ]
            obs = [("R-WAIT", 9), ("R-INT1", 12)]
            for n, (room, t) in enumerate(obs):
                r = c.post(
                    "/api/v1/observations",
                    json={
                        "id": f"o{n}",
                        "room_id": room,
                        "time": iso(at(t)),
                        "source": "wristband",
                        "subject_id": sid,
                    },
                )
                assert r.status_code == 201, r.text
            for n, (typ, t, room) in enumerate(
                [
                    ("interrogation_start", 12.5, "R-INT1"),
                    ("interrogation_end", 22.5, "R-INT1"),
                    ("exit", 23, None),
                ]
            ):
                r = c.post(
                    "/api/v1/events",
                    json={"id": f"e{n}", "type": typ, "time": iso(at(t)), "room_id": room, "subject_id": sid},
                )
                assert r.status_code == 201, r.text
            # someone in the interrogation room right now, for the live page's occupancy
            now_sid = c.post(
                f"/api/v1/cases/{cid}/subjects", json={"name": "李四", "role": "witness"}
            ).json()["id"]
            r = c.post(
                "/api/v1/observations",
                json={
                    "id": "o-now",
                    "room_id": "R-INT1",
                    "time": iso(datetime.now(UTC)),
                    "source": "face",
                    "subject_id": now_sid,
                },
            )
            assert r.status_code == 201, r.text
        yield Site(base, engine, cid, sid, other.json()["id"], settings.audit.key_file)
    engine.dispose()


_WATCH_LIVE = """async () => {
    const sleep = (ms) => new Promise(r => setTimeout(r, ms));
    const q = (sel) => document.querySelector(sel);
    let v = null;
    for (let i = 0; i < 150 && !(v && v.currentTime > 0); i++) { await sleep(100); v = q('video.live-video[data-camera="cam-int"]'); }
    if (!v) return {err: "no video element"};
    const t0 = v.currentTime, lat = [];
    for (let i = 0; i < 10; i++) {
        await sleep(200);
        const ms = q('.latency[data-camera="cam-int"]').dataset.ms;
        if (ms !== undefined) lat.push(Number(ms));
    }
    return {t0, t1: v.currentTime, err: v.error && v.error.code, lat,
            mode: q('figure.live-tile[data-camera="cam-int"]').dataset.mode};
}"""


@requires_chromium
def test_supervisor_session_in_a_real_browser(site: Site) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            ctx = browser.new_context()
            foreign = keep_to(ctx, site.base)
            page = ctx.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            # not logged in: redirected to the login page
            page.goto(f"{site.base}/search")
            assert "/login" in page.url
            assert page.locator("html").get_attribute("lang") == "zh-CN"
            page.fill("input[name=name]", "zhang")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(f"{site.base}/search")
            # search
            page.fill("#q-case_number", "A44")
            page.click("#search-form button[type=submit]")
            page.wait_for_selector("a.case-link")
            page.click("a.case-link")
            page.wait_for_url(f"{site.base}/cases/{site.case_id}")
            page.wait_for_selector("svg.lane")
            assert "张某" in page.inner_text("main")
            # the events and readings admin entered for 2024 came long after: late entries, marked
            late_events = page.locator("table.events tr.late")
            assert late_events.count() == 3 and "补录: admin" in late_events.first.inner_text()
            late_readings = page.locator("section.subject:has-text('张某') table.late-readings tr.late")
            assert late_readings.count() == 2 and "admin" in late_readings.first.inner_text()
            # play the interrogation room: both cameras side by side
            page.click('section.subject:has-text("张某") a.play-link >> nth=-1')
            page.wait_for_selector("video.player")
            assert page.locator("video.player").count() == 2
            played = page.evaluate("""async () => {
                const vs = [...document.querySelectorAll('video.player')];
                const v = vs[0];
                // both playing: the player starts a room's cameras together, on one media axis
                // (a camera's currentTime is placed on the axis before its stream has come)
                for (let i = 0; i < 150 && !(vs.every(x => !x.paused && x.currentTime > 1.0)); i++)
                    await new Promise(r => setTimeout(r, 100));
                return {t: v.currentTime, err: v.error && v.error.code, other: vs[1].currentTime,
                        otherErr: vs[1].error && vs[1].error.code};
            }""")
            assert played["err"] is None and played["otherErr"] is None, played
            assert played["t"] > 1.0, played
            assert abs(played["other"] - played["t"]) < 0.6, played
            # seek: past the gap (outside what is buffered: a new stream from that time)
            seeked = page.evaluate(
                """async (target) => {
                    window.vauditSeek(target);
                    const v = document.querySelector('video.player');
                    for (let i = 0; i < 100; i++) {
                        await new Promise(r => setTimeout(r, 100));
                        const clock = document.getElementById('wall-clock').textContent;
                        if (clock.includes(':21') || clock.includes(':22')) return {clock, err: v.error && v.error.code};
                    }
                    return {clock: document.getElementById('wall-clock').textContent, err: v.error && v.error.code};
                }""",
                at(21).timestamp() * 1000,
            )
            assert seeked["err"] is None and (":21" in seeked["clock"] or ":22" in seeked["clock"]), seeked
            assert page.locator("button.jump-event").count() >= 1
            page.locator("button.jump-event").first.click()
            # live page: the recording camera plays as video, its latency shown
            page.goto(f"{site.base}/live")
            live = page.evaluate(_WATCH_LIVE)
            assert live["err"] is None and live["mode"] == "video", live
            assert live["t1"] > live["t0"] + 1.0, live  # currentTime advances: frames keep arriving
            assert live["lat"] and max(live["lat"]) <= 3000, live  # camera wall time to frame shown
            lat = sorted(live["lat"])
            print(f"live latency in Chromium: p50 {lat[len(lat) // 2]} ms, max {lat[-1]} ms, n={len(lat)}")
            assert "李四" in page.inner_text("[data-room=R-INT1]")  # in the interrogation room now
            # without Media Source Extensions the page falls back to keyframe stills
            stills = ctx.new_page()
            stills.add_init_script("Object.defineProperty(window, 'MediaSource', {value: undefined})")
            stills.on("pageerror", lambda e: errors.append(str(e)))
            stills.goto(f"{site.base}/live")
            frames = stills.evaluate("""async () => {
                for (let i = 0; i < 100; i++) {
                    const img = document.querySelector('img.live-frame[data-camera="cam-int"]');
                    if (img && Number(img.dataset.frames || 0) >= 2 && img.naturalWidth > 0) return Number(img.dataset.frames);
                    await new Promise(r => setTimeout(r, 100));
                }
                return 0;
            }""")
            assert frames >= 2
            stills.close()
            # export from the case page and watch it reach done
            page.goto(f"{site.base}/cases/{site.case_id}")
            page.click("button.export")
            page.click("dialog.export-dialog button.export-start")  # the dialog: default range and disc
            page.wait_for_selector("tr.job[data-state=done]", timeout=90000)
            # language switch
            page.goto(f"{site.base}/search?lang=en")
            assert page.locator("html").get_attribute("lang") == "en"
            assert "Search" in page.inner_text("nav")
            # an officer: plays their own case's room from the case page; another case is 403
            officer = browser.new_context()
            keep_to(officer, site.base, foreign)
            op = officer.new_page()
            op.on("pageerror", lambda e: errors.append(str(e)))
            refused: list[str] = []
            op.on("response", lambda r: refused.append(r.url) if r.status == 403 else None)
            op.goto(f"{site.base}/login?next=/cases/{site.case_id}")
            op.fill("input[name=name]", "wang")
            op.fill("input[name=password]", PASSWORD)
            op.click("button[type=submit]")
            op.wait_for_url(f"{site.base}/cases/{site.case_id}")
            op.click('section.subject:has-text("张某") a.play-link >> nth=-1')
            op.wait_for_selector("video.player")
            own = op.evaluate("""async () => {
                const v = document.querySelector('video.player');
                for (let i = 0; i < 100 && !(v.currentTime > 0.5); i++) await new Promise(r => setTimeout(r, 100));
                return {t: v.currentTime, err: v.error && v.error.code, n: document.querySelectorAll('video.player').length};
            }""")
            assert own["err"] is None and own["t"] > 0.5 and own["n"] == 2, own
            assert not [u for u in refused if "/playback/" in u], refused  # played under case_id
            resp = op.goto(f"{site.base}/cases/{site.other_case_id}")
            assert resp is not None and resp.status == 403  # the page answers as the API would
            op.wait_for_selector("[role=alert]")
            assert any(u.endswith(f"/cases/{site.other_case_id}") for u in refused), refused
            officer.close()
            assert not errors and not foreign, (errors, foreign)
        finally:
            browser.close()
    actions = {(r.user, r.action) for r in AuditLog(site.engine).rows(limit=1000)}
    for action in ("login", "search", "view_case", "playback", "live_view", "export"):
        assert ("zhang", action) in actions, action
    assert ("wang", "playback") in actions
    assert AuditLog(site.engine, load_audit_key(site.audit_key)).verify().ok
