"""The alerts page in a real browser (Chromium via Playwright): the list, acknowledge with a note,
a new alert arriving live through the SSE stream, and the case page's list of its alerts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from domain.types import EventType, PictureFault, PictureObservation
from indexer.case_records import NewCase, NewEvent, NewSubject
from indexer.case_store import CaseStore
from indexer.database import create_engine_for, upgrade
from indexer.segment_store import SegmentStore
from pipeline.api.app import create_app
from pipeline.risk.engine import RiskEngine, rooms_of
from pipeline.settings import Settings
from pipeline.storage import LocalStorage
from recorders.clock import SystemClock
from tests.support.auth import PASSWORD, add_user
from tests.support.browser import CHROMIUM, FLAGS
from tests.support.live_server import live_server

pytestmark = pytest.mark.browser
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 32 + b"\xff\xd9"


@pytest.fixture
def site(tmp_path: Path) -> Iterator[tuple[str, RiskEngine, int]]:
    eng: Engine = create_engine_for(f"sqlite:///{tmp_path / 'index.db'}")
    upgrade(eng)
    settings = Settings.model_validate(
        {
            "rooms": [
                {
                    "id": "wait",
                    "name": "候问室",
                    "kind": "waiting",
                    "cameras": [{"id": "w-a", "url": "rtsp://h/a"}],
                }
            ]
        }
    )
    store = SegmentStore(eng)
    store.sync_rooms(settings.room_rows())
    risk = RiskEngine(settings.risk, rooms_of(settings), eng, SystemClock())
    risk.load()
    cases = CaseStore(eng)
    case, _ = cases.create_case(NewCase("B1", "案", "盗窃"))
    now = datetime.now(UTC) - timedelta(seconds=2)
    for n, name in enumerate(("甲", "乙")):
        sub, _ = cases.create_subject(NewSubject(case.id, name, "suspect"))
        risk.observe_events(cases.add_events([NewEvent(f"e{n}", EventType.ENTRY, now, "wait", None, sub.id)]))
    add_user(eng, "zhang", "supervisor")
    app = create_app(settings, store, engine=eng, storage=LocalStorage(tmp_path / "store"))
    app.state.risk = risk
    try:
        with live_server(app) as server:
            try:
                yield server.base, risk, case.id
            finally:
                risk.stop()  # ends the page's stream so the server can stop
    finally:
        eng.dispose()


def test_alerts_page_acknowledges_and_updates_live(site: tuple[str, RiskEngine, int]) -> None:
    from playwright.sync_api import sync_playwright

    base, risk, case_id = site
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            ctx = browser.new_context()
            page = ctx.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{base}/alerts")  # not logged in: the login page, then back here
            assert "/login" in page.url
            page.fill("input[name=name]", "zhang")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(f"{base}/alerts")
            row = page.locator("tr.alert[data-rule=co_suspects]")
            row.wait_for()
            assert "同案犯同室" in row.inner_text()

            def answer(dialog: Any) -> None:
                dialog.accept("已分开看管")

            page.once("dialog", answer)
            row.locator("button.ack").click()
            page.wait_for_selector("tr.alert[data-rule=co_suspects][data-state=acknowledged]")
            assert "已分开看管" in page.locator("tr.alert[data-rule=co_suspects]").inner_text()

            # raised after the page loaded: arrives through the stream, with its snapshot
            risk.observe_picture(
                PictureObservation("w-a", datetime.now(UTC), frozenset({PictureFault.COVERED}), 0, JPEG)
            )
            page.wait_for_selector("tr.alert[data-rule=picture_covered] img.alert-snap", timeout=15000)

            # the case page lists the case's alerts
            page.goto(f"{base}/cases/{case_id}")
            page.wait_for_selector("#case-alerts tr.alert[data-rule=co_suspects]")
            assert page.locator("#case-alerts tr.alert").count() == 2

            # the live page's room and camera carry badges of their active alerts
            page.goto(f"{base}/live")
            page.wait_for_selector('[data-alerts-for="room:wait"] a.alert-badge[data-rule=co_suspects]')
            page.wait_for_selector('[data-alerts-for="camera:w-a"] a.alert-badge[data-rule=picture_covered]')
            assert errors == []
        finally:
            browser.close()
