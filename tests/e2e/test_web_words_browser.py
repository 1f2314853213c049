"""Every page of the supervisor web in zh-CN in Chromium shows words, not codes: the login page,
a search with results (a room by name and a time range finds a stay; the officer by 警号), a case
page (an open stay marked 在区), the play page, live, alerts, the audit trail, a page the user may
not see, an unknown case. Any visible Latin-script word fails the walk unless it is something the
user typed or made (a case number, a user name, a badge number) or a technical name listed in
:data:`TECHNICAL` — raw event types, roles, room ids, gap causes, English alert messages and error
texts all do. Hash prefixes (``.hash``) are codes shown on purpose and are not read."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from domain.types import iso
from indexer.alert_store import AlertStore, NewAlert
from indexer.database import create_engine_for, upgrade
from indexer.segment_store import SegmentStore
from pipeline.api.app import create_app
from pipeline.settings import Settings
from pipeline.storage import LocalStorage
from tests.exporter.scenario import at, build_scenario, index_scenario
from tests.support.auth import PASSWORD, add_user, bearer
from tests.support.browser import CHROMIUM, FLAGS, keep_to, requires_chromium
from tests.support.live_server import live_server

pytestmark = [pytest.mark.browser, pytest.mark.integration]

ROOMS = [
    {
        "id": "R-WAIT",
        "name": "候问室1",
        "kind": "waiting",
        "cameras": [{"id": "cam-wait", "name": "候问室1全景", "url": "rtsp://10.0.0.3/a"}],
    },
    {
        "id": "R-INT1",
        "name": "讯问室1",
        "kind": "interrogation",
        "cameras": [{"id": "cam-int", "name": "讯问室1主机位", "url": "rtsp://10.0.0.2/a"}],
    },
]
CASE_NUMBER, BADGE, ID_NUMBER = "A4401012024050001", "P-7", "110101199001011234"
# What the user typed or made, shown back: allowed. Proper technical names would go here too.
TYPED = {CASE_NUMBER, "B55", BADGE, "zhang", "admin", "wang"}
TECHNICAL = {"English"}  # the language switch names its language in that language


@dataclass
class Site:
    base: str
    case_id: int
    other_case_id: int
    came: datetime  # when the open stay in 候问室1 began


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("words")
    sc = build_scenario(root / "store")
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
    store.add_gap(sc.gap)
    app = create_app(settings, store, engine=engine, storage=LocalStorage(sc.root))
    came = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    with live_server(app) as server:
        add_user(engine, "admin", "admin")
        add_user(engine, "zhang", "supervisor")
        with httpx.Client(base_url=server.base, timeout=30) as c:
            c.headers.update(bearer(c, "admin"))
            cid = c.post(
                "/api/v1/cases", json={"case_number": CASE_NUMBER, "title": "张某盗窃案", "charge": "盗窃"}
            )
            case_id = cid.json()["id"]
            other = c.post(
                "/api/v1/cases", json={"case_number": "B55", "title": "另案", "charge": "诈骗"}
            ).json()["id"]
            officer = c.post("/api/v1/officers", json={"name": "王警官", "badge_number": BADGE}).json()["id"]
            assert c.post(
                f"/api/v1/cases/{case_id}/officers", json={"officer_id": officer, "role": "lead"}
            ).is_success
            add_user(engine, "wang", "officer", officer_badge=BADGE)
            sid = c.post(
                f"/api/v1/cases/{case_id}/subjects",
                json={"name": "张某", "role": "suspect", "id_number": ID_NUMBER},
            ).json()["id"]
            for n, (room, t) in enumerate([("R-WAIT", 9), ("R-INT1", 12)]):
                obs = {
                    "id": f"o{n}",
                    "room_id": room,
                    "time": iso(at(t)),
                    "source": "wristband",
                    "subject_id": sid,
                }
                assert c.post("/api/v1/observations", json=obs).status_code == 201
            for n, (typ, t, room) in enumerate(
                [
                    ("interrogation_start", 12.5, "R-INT1"),
                    ("interrogation_end", 22.5, "R-INT1"),
                    ("exit", 23, None),
                ]
            ):
                ev = {"id": f"e{n}", "type": typ, "time": iso(at(t)), "room_id": room, "subject_id": sid}
                assert c.post("/api/v1/events", json=ev).status_code == 201
            # a witness in 候问室1 for half an hour now, no reading since: an open stay
            wid = c.post(
                f"/api/v1/cases/{case_id}/subjects", json={"name": "李四", "role": "witness"}
            ).json()["id"]
            obs = {"id": "o-now", "room_id": "R-WAIT", "time": iso(came), "source": "face", "subject_id": wid}
            assert c.post("/api/v1/observations", json=obs).status_code == 201
        alerts = AlertStore(engine)
        now = datetime.now(UTC)
        alerts.raise_or_continue(
            NewAlert(
                "unattended",
                f"unattended:{wid}:R-WAIT",
                "high",
                f"李四 alone in room R-WAIT without an officer since {iso(came)}",
                came,
                case_id=case_id,
                subject_id=wid,
                room_id="R-WAIT",
            ),
            now,
        )
        alerts.raise_or_continue(
            NewAlert(
                "recording_lost",
                "recording_lost:cam-int",
                "high",
                "camera cam-int in room R-INT1: recording gap (disconnect) while occupied",
                at(15),
                at(20),
                case_id=case_id,
                subject_id=sid,
                room_id="R-INT1",
                camera_id="cam-int",
            ),
            now,
        )
        yield Site(server.base, case_id, other, came)
    engine.dispose()


# Visible text of the page (hash prefixes left out), after the page settled.
_VISIBLE = """() => {
    const body = document.body.cloneNode(true);
    body.querySelectorAll('.hash, script, style').forEach((e) => e.remove());
    document.body.append(Object.assign(document.createElement('div'), {id: '__probe'}));
    const probe = document.getElementById('__probe');
    probe.append(body);
    const text = probe.innerText;
    probe.remove();
    return text;
}"""
_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-/:@]*")


def latin_words(text: str) -> list[str]:
    """Tokens with a Latin letter that are neither typed by the user nor a listed technical name."""
    return sorted(
        {t.rstrip(".:") for t in _TOKEN.findall(text) if re.search(r"[A-Za-z]", t)} - TYPED - TECHNICAL
    )


def _settle(page: Any, selector: str) -> None:
    page.wait_for_selector(selector, timeout=30000)
    page.wait_for_timeout(700)  # the page's later fetches (alerts, names) finish


def _words(page: Any) -> list[str]:
    return latin_words(page.evaluate(_VISIBLE))


def test_the_latin_word_check_itself() -> None:
    assert latin_words(f"案件 {CASE_NUMBER} 张某（犯罪嫌疑人）2024/05/01 10:00:12 127.0.0.1 English") == []
    assert latin_words("事件 interrogation_start 房间 R-WAIT 原因 disconnect") == [
        "R-WAIT",
        "disconnect",
        "interrogation_start",
    ]


@requires_chromium
def test_every_page_speaks_chinese(site: Site) -> None:
    from playwright.sync_api import sync_playwright

    found: dict[str, list[str]] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            ctx = browser.new_context(locale="zh-CN")
            foreign = keep_to(ctx, site.base)
            page = ctx.new_page()
            errors: list[str] = []
            missing: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
            page.goto(f"{site.base}/login?next=/search")
            _settle(page, "form")
            found["login"] = _words(page)
            page.fill("input[name=name]", "zhang")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(f"{site.base}/search")
            # search: the open stay in 候问室1 by room (chosen by name) and a range inside it
            page.wait_for_selector("#q-room_id option[value=R-WAIT]", state="attached")
            assert page.inner_text("#q-room_id option[value=R-WAIT]") == "候问室1"
            page.select_option("#q-room_id", "R-WAIT")
            local = "%Y-%m-%dT%H:%M"  # datetime-local inputs hold the centre's wall time (Shanghai)
            centre = ZoneInfo("Asia/Shanghai")
            page.evaluate(
                """([a, b]) => { document.querySelector('#q-start').value = a; document.querySelector('#q-end').value = b; }""",
                [
                    (site.came + timedelta(minutes=5)).astimezone(centre).strftime(local),
                    (site.came + timedelta(minutes=10)).astimezone(centre).strftime(local),
                ],
            )
            page.fill("#q-badge_number", BADGE)
            page.click("#search-form button[type=submit]")
            _settle(page, "a.case-link")
            assert page.inner_text("a.case-link") == CASE_NUMBER
            found["search"] = _words(page)
            # the case page: names, labels, the open stay marked, the case's alerts in Chinese
            page.click("a.case-link")
            page.wait_for_url(f"{site.base}/cases/{site.case_id}")
            _settle(page, "#case-alerts table.alerts tr.alert")
            main = page.inner_text("main")
            assert "在区" in page.inner_text("tr.stay-row.open") and "讯问室1" in main and "候问室1" in main
            assert "讯问开始" in main and "犯罪嫌疑人" in main and "主办" in main
            assert "涉案人员在候问室1无民警看管" in main
            found["case"] = _words(page)
            # play: the interrogation room's camera
            page.goto(
                f"{site.base}/play?room=R-INT1&start={iso(at(12))}&end={iso(at(23))}&case={site.case_id}".replace(
                    "+", "%2B"
                )
            )
            _settle(page, "video.player")
            found["play"] = _words(page)
            page.goto(f"{site.base}/live")
            page.wait_for_timeout(2500)
            found["live"] = _words(page)
            page.goto(f"{site.base}/alerts")
            _settle(page, "table.alerts tr.alert")
            assert "录像中断" in page.inner_text("main")
            found["alerts"] = _words(page)
            # a page a supervisor may not see: a Chinese error page, not JSON
            resp = page.goto(f"{site.base}/admin/audit")
            assert resp is not None and resp.status == 403
            _settle(page, "[role=alert]")
            found["forbidden"] = _words(page)
            # an unknown case
            resp = page.goto(f"{site.base}/cases/999")
            assert resp is not None and resp.status == 404
            _settle(page, "[role=alert]")
            assert "未找到" in page.inner_text("[role=alert]")
            found["unknown case"] = _words(page)
            # the audit trail, as an administrator
            admin = browser.new_context(locale="zh-CN")
            keep_to(admin, site.base, foreign)
            ap = admin.new_page()
            ap.on("pageerror", lambda e: errors.append(str(e)))
            ap.goto(f"{site.base}/login?next=/admin/audit")
            ap.fill("input[name=name]", "admin")
            ap.fill("input[name=password]", PASSWORD)
            ap.click("button[type=submit]")
            ap.wait_for_url(f"{site.base}/admin/audit")
            _settle(ap, "tr.audit-row[data-action=playback]")
            text = ap.inner_text("main")
            assert "回放录像" in text and "摄像机 讯问室1主机位" in text
            found["audit"] = _words(ap)
            admin.close()
            assert not errors and not foreign, (errors, foreign)
            assert not [u for u in missing if u.endswith("/favicon.ico")], missing
        finally:
            browser.close()
    assert {k: v for k, v in found.items() if v} == {}, found
